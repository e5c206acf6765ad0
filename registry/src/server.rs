//! Configuration, listening socket, connections (plain or TLS, HTTP/1.1 and HTTP/2).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLog;
use crate::auth::Auth;
use crate::storage::{BundleStore, DirStore, S3Location, S3Store, Storage, Stores};
use crate::tls::{server_config, TlsConfig};

/// Where pushed content is kept.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    Dir(PathBuf),
    S3(Box<S3Location>),
}

#[derive(Clone)]
pub struct ServeConfig {
    /// Bundles served in place, read-only; later ones win on the same tag (a delta after its base).
    pub bundles: Vec<PathBuf>,
    /// Storage for pushes; without it the registry serves the bundles only.
    pub storage: Option<StorageConfig>,
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    /// `htpasswd -B` users; without it anyone may pull and push.
    pub htpasswd: Option<PathBuf>,
    /// The users allowed to push; `None` lets every htpasswd user push.
    pub push_users: Option<Vec<String>>,
    /// With `htpasswd`: whether clients without credentials may pull.
    pub anonymous_pull: bool,
    /// Refuses every push and delete even where storage would take them.
    pub read_only: bool,
    pub delete_enabled: bool,
    pub max_manifest_bytes: u64,
    pub access_log: AccessLog,
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
            max_manifest_bytes: 4 << 20,
            access_log: AccessLog::Stderr,
        }
    }
}

pub(crate) struct State {
    pub stores: Stores,
    pub auth: Option<Auth>,
    pub read_only: bool,
    pub delete_enabled: bool,
    pub max_manifest_bytes: u64,
    pub log: AccessLog,
    /// Member offsets of git repository tars, by layer digest.
    pub git_indexes: Mutex<HashMap<String, Arc<crate::git::TarIndex>>>,
}

pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
}

impl Server {
    /// Opens the stores and binds; `listen` may use port 0, see [`Server::local_addr`].
    pub async fn bind(cfg: ServeConfig) -> anyhow::Result<Server> {
        let (bundle_dirs, storage) = (cfg.bundles.clone(), cfg.storage.clone());
        let stores = tokio::task::spawn_blocking(move || -> anyhow::Result<Stores> {
            let mut layers: Vec<Arc<dyn Storage>> = Vec::new();
            match storage {
                Some(StorageConfig::Dir(dir)) => layers.push(Arc::new(DirStore::open(&dir)?)),
                Some(StorageConfig::S3(location)) => layers.push(Arc::new(S3Store::open(&location)?)),
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
            max_manifest_bytes: cfg.max_manifest_bytes,
            log: cfg.access_log,
            git_indexes: Mutex::default(),
        };
        Ok(Server { listener, tls, state: Arc::new(state) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish for up to
    /// [`DRAIN_TIME`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("registry: accept failed: {e}");
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let state = self.state.clone();
            let tls = self.tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(crate::routes::handle(state, req).await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => watcher.watch(builder.serve_connection(TokioIo::new(s), service).into_owned()).await,
                        Err(_) => return,
                    },
                    None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                };
            });
        }
        let _ = tokio::time::timeout(DRAIN_TIME, graceful.shutdown()).await;
        Ok(())
    }
}

/// How long a shutdown waits for requests in flight (a large blob on a slow link may not finish).
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(cfg: ServeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(cfg).await?.run(shutdown).await
}
