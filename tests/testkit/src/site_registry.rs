//! The site registry as the tests stand it up: a bundle made by airgap's bundler from a spec (or
//! one already made, or a directory store taking pushes), served by airgap's registry over TLS
//! with a site CA it generates, or plain HTTP, on the address the test names, until dropped.
//!
//! It owns the tests' only calls into the bundler ([`NewBundle`]) and into the registry's server
//! ([`Serve::start`]), so a change in either crate's options touches one place. The registry is
//! told what to serve by `airgap registry serve`'s own flags: run in this process (parsed by the
//! registry's clap struct) or by the `airgap` binary of a test that proves the command itself
//! ([`Serve::airgap`]), the same flags give the same server.
//!
//! It knows the registry's CLI and the location of its generated CA; it knows nothing of what a
//! test serves or why.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Parser;

use crate::proc::{wait_until, Proc};

/// `airgap registry serve`'s flags, parsed as the command parses them.
#[derive(Parser)]
struct ServeFlags {
    #[command(flatten)]
    args: registry::cli::ServeArgs,
}

/// A bundle for the bundler to make from a spec, its downloads kept in `cache`.
pub struct NewBundle {
    opts: bundler::CreateOptions,
}

impl NewBundle {
    /// The bundle `spec` describes, to be written to `out`, with the bundler's defaults otherwise.
    pub fn new(spec: &Path, out: &Path, cache: &Path) -> NewBundle {
        NewBundle { opts: bundler::CreateOptions::new(spec, out, bundler::FetchOptions::new(cache)) }
    }

    /// The helm that renders the spec's charts to find their images.
    pub fn helm(mut self, helm: &Path) -> NewBundle {
        self.opts.fetch.helm = Some(helm.to_path_buf());
        self
    }

    /// The largest part, in bytes.
    pub fn max_part_size(mut self, bytes: u64) -> NewBundle {
        self.opts.max_part_size = bytes;
        self
    }

    /// Fetches what the spec names and writes the bundle; returns its directory.
    pub fn create(self) -> Result<PathBuf> {
        let what = format!("the bundle of {} in {}", self.opts.spec.display(), self.opts.output.display());
        bundler::create(&self.opts).context(what)?;
        Ok(self.opts.output)
    }
}

/// What to serve and how, until [`Serve::start`].
pub struct Serve {
    bundle: Option<NewBundle>,
    served: Vec<PathBuf>,
    storage: Option<PathBuf>,
    ip: String,
    port: Option<u16>,
    tls: Option<PathBuf>,
    log: Option<PathBuf>,
    airgap: Option<PathBuf>,
}

/// A running site registry; stopped when dropped.
pub struct SiteRegistry {
    address: String,
    url: String,
    ca: Option<PathBuf>,
    bundles: Vec<PathBuf>,
    log: PathBuf,
    airgap: Option<PathBuf>,
    running: Running,
    _log_dir: Option<tempfile::TempDir>,
}

enum Running {
    InProcess { stop: Option<tokio::sync::oneshot::Sender<()>>, thread: Option<JoinHandle<()>> },
    Child { _killed_on_drop: Proc },
}

impl SiteRegistry {
    /// Makes the bundle, then serves it.
    pub fn create(bundle: NewBundle) -> Serve {
        Serve { bundle: Some(bundle), ..Serve::new() }
    }

    /// Serves bundles already made; a later one wins on the same tag (a delta after its base).
    pub fn bundles<P: Into<PathBuf>>(bundles: impl IntoIterator<Item = P>) -> Serve {
        Serve { served: bundles.into_iter().map(Into::into).collect(), ..Serve::new() }
    }

    /// Serves a directory store that takes pushes, and no bundle.
    pub fn storage(dir: &Path) -> Serve {
        Serve { storage: Some(dir.to_path_buf()), ..Serve::new() }
    }

    /// `IP:PORT`, as the site file and image references name it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `https://IP:PORT`, or `http://` when served plain.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The site CA clients trust (PEM), when served over TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The access log so far: one line per request, `METHOD URI STATUS BYTES TIME` (a child's
    /// other messages too).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A node's whole mirror configuration for the served bundle, as `airgap install mirrors
    /// --format containerd` writes it into `certs_d` (one `hosts.toml` per upstream host the
    /// bundle carries images of, with the site CA). Needs the binary given to [`Serve::airgap`].
    pub fn install_mirrors(&self, certs_d: &Path) -> Result<()> {
        let airgap =
            self.airgap.as_ref().ok_or_else(|| anyhow!("install mirrors runs the binary given to airgap()"))?;
        let bundle = self.bundles.first().ok_or_else(|| anyhow!("install mirrors: no bundle is served"))?;
        let mut cmd = Command::new(airgap);
        cmd.args(["install", "mirrors", "--format", "containerd", "--registry", &self.url, "--bundle"]).arg(bundle);
        if let Some(ca) = &self.ca {
            cmd.arg("--ca-file").arg(ca);
        }
        crate::run(cmd.arg("--certs-dir").arg(certs_d).arg("--out").arg(certs_d)).map(drop)
    }
}

impl Serve {
    fn new() -> Serve {
        Serve {
            bundle: None,
            served: Vec::new(),
            storage: None,
            ip: "127.0.0.1".into(),
            port: None,
            tls: None,
            log: None,
            airgap: None,
        }
    }

    /// Listens on `ip` (127.0.0.1 unless given); the generated certificate names it.
    pub fn ip(mut self, ip: &str) -> Serve {
        self.ip = ip.into();
        self
    }

    /// Listens on `port` (a free one unless given), e.g. the one a site file already names.
    pub fn port(mut self, port: u16) -> Serve {
        self.port = Some(port);
        self
    }

    /// Serves HTTPS with a site CA and server certificate generated in `dir`, or kept there from
    /// an earlier serve.
    pub fn tls(mut self, dir: &Path) -> Serve {
        self.tls = Some(dir.to_path_buf());
        self
    }

    /// Writes the access log to `file` (a file of its own unless given).
    pub fn access_log(mut self, file: &Path) -> Serve {
        self.log = Some(file.to_path_buf());
        self
    }

    /// Serves with `airgap registry serve` of this binary, as a child process, rather than in
    /// this process; [`SiteRegistry::install_mirrors`] runs it too.
    pub fn airgap(mut self, binary: &Path) -> Serve {
        self.airgap = Some(binary.to_path_buf());
        self
    }

    /// Makes the bundle if there is one to make, and serves until the registry listens.
    pub fn start(self) -> Result<SiteRegistry> {
        let mut bundles = Vec::new();
        if let Some(bundle) = self.bundle {
            bundles.push(bundle.create()?);
        }
        bundles.extend(self.served);
        let log_dir = match self.log {
            Some(_) => None,
            None => Some(tempfile::Builder::new().prefix("testkit-site-registry-").tempdir()?),
        };
        let log = self.log.unwrap_or_else(|| log_dir.as_ref().expect("made above").path().join("access.log"));
        let port = match (self.port, &self.airgap) {
            (Some(port), _) => port,
            (None, Some(_)) => crate::free_port(),
            (None, None) => 0,
        };
        let listen = format!("{}:{port}", self.ip);
        let mut flags: Vec<String> = bundles.iter().map(|b| b.display().to_string()).collect();
        flags.extend(["--listen".into(), listen.clone()]);
        if let Some(dir) = &self.storage {
            flags.extend(["--storage".into(), dir.display().to_string()]);
        }
        if let Some(dir) = &self.tls {
            flags.extend(["--tls-generate".into(), dir.display().to_string(), "--hostname".into(), self.ip.clone()]);
        }
        let (address, running) = match &self.airgap {
            Some(airgap) => serve_child(airgap, &flags, listen, &log)?,
            None => serve_in_process(&flags, &log)?,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(SiteRegistry {
            url: format!("{scheme}://{address}"),
            address,
            ca: self.tls.map(|dir| dir.join(registry::tls::CA_FILE)),
            bundles,
            log,
            airgap: self.airgap,
            running,
            _log_dir: log_dir,
        })
    }
}

fn serve_child(airgap: &Path, flags: &[String], address: String, log: &Path) -> Result<(String, Running)> {
    let mut cmd = Command::new(airgap);
    cmd.args(["registry", "serve"]).args(flags);
    let mut child = Proc::spawn_logged("airgap registry serve", &mut cmd, log)?;
    wait_until(&format!("airgap registry serve on {address}"), Duration::from_secs(60), &mut [&mut child], || {
        TcpStream::connect(&address).is_ok()
    })?;
    Ok((address, Running::Child { _killed_on_drop: child }))
}

fn serve_in_process(flags: &[String], log: &Path) -> Result<(String, Running)> {
    let args = ServeFlags::try_parse_from(std::iter::once("serve").chain(flags.iter().map(String::as_str)))
        .with_context(|| format!("registry serve {}", flags.join(" ")))?
        .args;
    let mut cfg = args.config()?;
    let file = File::create(log).with_context(|| log.display().to_string())?;
    cfg.access_log = registry::AccessLog::Writer(Arc::new(Mutex::new(file)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(bound_tx.send(Err(anyhow!(e)))),
        };
        rt.block_on(async move {
            let server = match registry::Server::bind(cfg).await {
                Ok(server) => server,
                Err(e) => return drop(bound_tx.send(Err(e))),
            };
            let _ = bound_tx.send(Ok(server.local_addr()));
            if let Err(e) = server.run(async { drop(stopped.await) }).await {
                eprintln!("the site registry stopped: {e:#}");
            }
        });
    });
    let addr = bound.recv().context("the site registry's thread ended before it listened")??;
    Ok((addr.to_string(), Running::InProcess { stop: Some(stop), thread: Some(thread) }))
}

impl Drop for SiteRegistry {
    fn drop(&mut self) {
        if let Running::InProcess { stop, thread } = &mut self.running {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}
