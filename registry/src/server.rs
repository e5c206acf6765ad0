//! Configuration, listening socket, connections (plain or TLS, HTTP/1.1 and HTTP/2).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLog;
use crate::auth::Auth;
use crate::body::{self, Body};
use crate::connections::{connections_that_fit, AcceptErrors, Admitted, Connections, Limits, Watched};
use crate::contents_page::ContentsPage;
use crate::storage::{BundleStore, LayoutStore, S3Location, Storage, Stores};
use crate::tls::{server_config, TlsConfig};

/// Where pushed content is kept.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// A directory on this machine.
    Dir(PathBuf),
    /// An S3-compatible bucket, which several replicas may share.
    S3(Box<S3Location>),
}

/// Everything a server needs, built from flags by [`crate::cli::ServeArgs::config`] or by hand.
#[derive(Clone)]
pub struct ServeConfig {
    /// Bundles served in place, read-only; later ones win on the same tag (a delta after its base).
    pub bundles: Vec<PathBuf>,
    /// Storage for pushes; without it the registry serves the bundles only.
    pub storage: Option<StorageConfig>,
    /// Address and port; port 0 picks a free one (see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// HTTPS; without it the server speaks plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `htpasswd -B` users; without it anyone may pull and push.
    pub htpasswd: Option<PathBuf>,
    /// The users allowed to push; `None` lets every htpasswd user push.
    pub push_users: Option<Vec<String>>,
    /// With `htpasswd`: whether clients without credentials may pull.
    pub anonymous_pull: bool,
    /// Refuses every push and delete even where storage would take them.
    pub read_only: bool,
    /// Whether the API's deletes are served (content management); off, they answer UNSUPPORTED.
    pub delete_enabled: bool,
    /// Lets a push change what a tag carried by the bundles serves.
    pub allow_overwrite: bool,
    /// The largest manifest a push may put; a manifest is read whole into memory.
    pub max_manifest_bytes: u64,
    /// Where each request's line goes.
    pub access_log: AccessLog,
    /// Caps and timeouts on connections, against clients that hold sockets.
    pub limits: Limits,
    /// An upload session that receives nothing for this long is ended and its content removed.
    pub upload_expiry: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bundles: Vec::new(),
            storage: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            tls: None,
            htpasswd: None,
            push_users: None,
            anonymous_pull: false,
            read_only: false,
            delete_enabled: true,
            allow_overwrite: false,
            max_manifest_bytes: 4 << 20,
            access_log: AccessLog::Stderr,
            limits: Limits::default(),
            upload_expiry: Duration::from_secs(4 * 3600),
        }
    }
}

pub(crate) struct State {
    pub stores: Stores,
    pub auth: Option<Auth>,
    pub read_only: bool,
    pub delete_enabled: bool,
    pub allow_overwrite: bool,
    pub max_manifest_bytes: u64,
    pub log: AccessLog,
    pub limits: Limits,
    pub upload_expiry: Duration,
    /// Member offsets of git repository tars, by layer digest.
    pub git_indexes: Mutex<HashMap<String, Arc<crate::git::TarIndex>>>,
    pub contents: Arc<ContentsPage>,
}

/// A bound server with its stores open: start-up errors show before [`Server::run`].
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    max_connections: usize,
}

impl Server {
    /// Opens the stores and binds; `listen` may use port 0, see [`Server::local_addr`].
    pub async fn bind(cfg: ServeConfig) -> anyhow::Result<Server> {
        let (bundle_dirs, storage) = (cfg.bundles.clone(), cfg.storage.clone());
        let stores = tokio::task::spawn_blocking(move || -> anyhow::Result<Stores> {
            let mut layers: Vec<Arc<dyn Storage>> = Vec::new();
            match storage {
                Some(StorageConfig::Dir(dir)) => layers.push(Arc::new(LayoutStore::dir(&dir)?)),
                Some(StorageConfig::S3(location)) => layers.push(Arc::new(LayoutStore::s3(&location)?)),
                None => {}
            }
            if !bundle_dirs.is_empty() {
                layers.push(Arc::new(BundleStore::open(&bundle_dirs)?));
            }
            Ok(Stores::new(layers))
        })
        .await??;
        let auth = match &cfg.htpasswd {
            Some(file) => Some(Auth::load(file, cfg.push_users.clone(), cfg.anonymous_pull)?),
            None => None,
        };
        let tls = match &cfg.tls {
            Some(t) => Some(TlsAcceptor::from(server_config(t)?)),
            None => None,
        };
        let listener =
            TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let state = State {
            stores,
            auth,
            read_only: cfg.read_only,
            delete_enabled: cfg.delete_enabled,
            allow_overwrite: cfg.allow_overwrite,
            max_manifest_bytes: cfg.max_manifest_bytes,
            log: cfg.access_log,
            limits: cfg.limits.clone(),
            upload_expiry: cfg.upload_expiry,
            git_indexes: Mutex::default(),
            contents: Arc::new(ContentsPage::new(cfg.bundles.clone())),
        };
        let max_connections = connections_that_fit(cfg.limits.max_connections);
        Ok(Server { listener, tls, state: Arc::new(state), max_connections })
    }

    /// The address it listens on, with the port chosen when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// How many connections it keeps open at most: the configured cap, or less when the
    /// open-file limit allows fewer.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish for up to
    /// [`DRAIN_TIME`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let graceful = GracefulShutdown::new();
        let conns = Connections::new(self.max_connections);
        let mut errors = AcceptErrors::new();
        let expiry = self.state.stores.writer().is_some().then(|| tokio::spawn(expire_uploads(self.state.clone())));
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        let (line, pause) = errors.failed(&e);
                        if let Some(line) = line {
                            eprintln!("{line}");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => continue,
                            _ = &mut shutdown => break,
                        }
                    }
                },
                _ = &mut shutdown => break,
            };
            errors.succeeded();
            let admitted = tokio::select! {
                a = conns.admit() => a,
                _ = &mut shutdown => break,
            };
            let (state, tls, watcher) = (self.state.clone(), self.tls.clone(), graceful.watcher());
            tokio::spawn(async move {
                let limits = state.limits.clone();
                let io = Watched::new(stream, admitted.conn.clone());
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(tls)) = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(io)).await
                        else {
                            return;
                        };
                        serve_connection(tls, state, &admitted, watcher).await
                    }
                    None => serve_connection(io, state, &admitted, watcher).await,
                }
            });
        }
        if let Some(task) = expiry {
            task.abort();
        }
        let _ = tokio::time::timeout(DRAIN_TIME, graceful.shutdown()).await;
        Ok(())
    }
}

/// Serves one connection until it ends, its watchdog finds it overdue, or the accept loop takes
/// its slot.
async fn serve_connection<I>(io: I, state: Arc<State>, admitted: &Admitted, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.limits.clone();
    let conn = admitted.conn.clone();
    let service = service_fn(move |req| {
        let (state, request) = (state.clone(), conn.begin());
        async move {
            let resp = crate::routes::handle(state, req).await;
            // The request lasts until its body is sent: the guard goes with the body.
            let body = |b: Body| {
                b.map_frame(move |frame| {
                    let _in_flight = &request;
                    frame
                })
                .boxed()
            };
            Ok::<_, Infallible>(resp.map(body))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let serving = watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
    tokio::pin!(serving);
    let check =
        (limits.idle_timeout.min(limits.header_timeout) / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = &mut serving => return,
            _ = admitted.conn.evicted() => return,
            _ = tokio::time::sleep(check) => if admitted.conn.overdue(&limits).is_some() { return },
        }
    }
}

/// Ends upload sessions that have been idle for the configured time, while the server runs.
async fn expire_uploads(state: Arc<State>) {
    let idle_for = state.upload_expiry;
    let every = (idle_for / 8).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        let stores = state.stores.clone();
        match body::blocking(move || stores.writer_or_refuse()?.expire_uploads(idle_for)).await {
            Ok(0) => {}
            Ok(n) => eprintln!(
                "registry: ended {n} upload session(s) idle for more than {}",
                humantime::format_duration(idle_for)
            ),
            Err(e) => eprintln!("registry: expiring upload sessions: {}", e.message),
        }
        tokio::time::sleep(every).await;
    }
}

/// How long a shutdown waits for requests in flight (a large blob on a slow link may not finish).
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Binds and serves until `shutdown` completes.
pub async fn serve(cfg: ServeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(cfg).await?.run(shutdown).await
}
