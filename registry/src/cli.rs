//! `airgap registry serve|push`: the flags people type, turned into the server's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::push::{push_bundle, PushOptions};
use crate::storage::S3Location;
use crate::{AccessLog, Limits, ServeConfig, Server, StorageConfig, TlsConfig};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap registry serve /media/usb/bundle --tls-generate /etc/airgap/tls --hostname registry.site.local
  airgap registry serve base delta --storage /var/lib/airgap --htpasswd users --push-user ops
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... airgap registry serve \
      --storage 's3://registry/site?endpoint=http://minio.site.local:9000&region=us-east-1'
Then: skopeo inspect docker://registry.site.local:5000/docker.io/mosipid/config-server:1.1.2
      helm repo add mosip https://registry.site.local:5000/charts/mosip.github.io/mosip-helm")]
/// `airgap registry serve`'s flags, as typed.
pub struct ServeArgs {
    /// Bundle directories served read-only in place; a delta goes after its base.
    pub bundles: Vec<PathBuf>,
    /// Where pushes go: a directory (`DIR` or `file://DIR`), or an S3-compatible bucket
    /// (`s3://BUCKET[/PREFIX]?endpoint=URL[&region=R][&ca-file=PEM]`, path-style; credentials from
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials). Replicas may share a bucket.
    #[arg(long)]
    pub storage: Option<String>,
    /// The address and port to listen on, as IP:PORT (0.0.0.0:5000 for every interface).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "IP:PORT", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// The server certificate (PEM, with its chain) for HTTPS; goes with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Generate (or reuse) a site CA and a server certificate in DIR for the --hostname names;
    /// clients trust DIR/ca.crt.
    #[arg(long, value_name = "DIR", conflicts_with = "tls_cert", requires = "hostname")]
    pub tls_generate: Option<PathBuf>,
    /// A host name (or IP address) clients use for this registry, written into the generated
    /// server certificate; repeat for several. Only with --tls-generate.
    #[arg(long, requires = "tls_generate")]
    pub hostname: Vec<String>,
    /// bcrypt htpasswd file (`htpasswd -B`); without it anyone may pull and push.
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Users allowed to push (repeat); without it every htpasswd user may push.
    #[arg(long)]
    pub push_user: Vec<String>,
    /// With --htpasswd: let clients without credentials pull.
    #[arg(long)]
    pub anonymous_pull: bool,
    /// Refuse every push and delete.
    #[arg(long)]
    pub read_only: bool,
    /// Refuse deletes (pushes still work).
    #[arg(long)]
    pub no_delete: bool,
    /// Let pushes change what a tag carried by the bundles serves; without it such a push is
    /// refused (DENIED) and the carried content keeps being served.
    #[arg(long)]
    pub allow_overwrite: bool,
    /// No access log: set by the command's global -q, which quiets all of stderr.
    #[arg(skip)]
    pub quiet: bool,
    /// Connections open at once (lowered at start to what the open-file limit allows); at the
    /// cap, the connection idle the longest is closed to make room.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Close a connection that has no request in flight and moves no byte for this long, or
    /// whose client stops reading a response or sending a body for this long.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// End an upload session that receives nothing for this long, removing what it received.
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    pub upload_expiry: Duration,
}

impl ServeArgs {
    /// The server's configuration, checked: what embedders and tests build without a command line.
    pub fn config(&self) -> Result<ServeConfig> {
        let storage = match &self.storage {
            None => None,
            Some(s) if s.starts_with("s3://") => {
                Some(StorageConfig::S3(Box::new(S3Location::parse(s).with_context(|| format!("--storage {s}"))?)))
            }
            Some(s) => Some(StorageConfig::Dir(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))),
        };
        if self.bundles.is_empty() && storage.is_none() {
            bail!("nothing to serve: name at least one bundle directory or --storage DIR");
        }
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_generate) {
            (Some(cert), Some(key), _) => Some(TlsConfig::Files { cert: cert.clone(), key: key.clone() }),
            (_, _, Some(dir)) => Some(TlsConfig::Generate { dir: dir.clone(), hostnames: self.hostname.clone() }),
            _ => None,
        };
        Ok(ServeConfig {
            bundles: self.bundles.clone(),
            storage,
            listen: self.listen,
            tls,
            htpasswd: self.htpasswd.clone(),
            push_users: (!self.push_user.is_empty()).then(|| self.push_user.clone()),
            anonymous_pull: self.anonymous_pull,
            read_only: self.read_only,
            delete_enabled: !self.no_delete,
            allow_overwrite: self.allow_overwrite,
            access_log: if self.quiet { AccessLog::Off } else { AccessLog::Stderr },
            limits: Limits {
                max_connections: self.max_connections,
                idle_timeout: self.idle_timeout,
                ..Limits::default()
            },
            upload_expiry: self.upload_expiry,
            ..ServeConfig::default()
        })
    }
}

/// `IP:PORT`, with a message that says so; `:5000` alone names no address.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "'{text}' is not IP:PORT: give an address and a port, e.g. 0.0.0.0:5000 (every interface), \
             127.0.0.1:5000 (this machine only) or [::]:5000"
        )
    })
}

/// glibc gives each thread that allocates an arena of its own and keeps what is freed there for
/// that thread: a blob's chunks, allocated on the blocking pool and freed on the async workers,
/// grew the server by 15 MiB under four streams (bench/registry.sh; 66 MiB peak, 49–53 with one
/// or two arenas). Two arenas keep the server lean; called before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt sets a tuning parameter of glibc's allocator and touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// Runs the server until Ctrl-C, saying on stderr where it listens and which CA clients trust.
impl ServeArgs {
    /// `airgap registry serve`: serves until Ctrl-C.
    pub fn run(self) -> Result<()> {
        let cfg = self.config()?;
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        limit_malloc_arenas();
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(async {
            let wanted = cfg.limits.max_connections;
            let server = Server::bind(cfg).await?;
            if server.max_connections() < wanted {
                eprintln!(
                    "at most {} connections at once: the open-file limit (ulimit -n) allows no more",
                    server.max_connections()
                );
            }
            eprintln!("serving on {scheme}://{} (Ctrl-C to stop)", server.local_addr());
            if let Some(dir) = &self.tls_generate {
                let ca = dir.join(crate::tls::CA_FILE);
                eprintln!(
                    "site CA: {} (clients trust it: `install mirrors --ca-file {0}`, the site file's registry.ca_cert, \
                     `skopeo --cert-dir {}`)",
                    ca.display(),
                    dir.display()
                );
            }
            eprintln!("contents page: {scheme}://{}/", server.local_addr());
            server.run(async { tokio::signal::ctrl_c().await.unwrap_or(()) }).await
        })
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Example:
  airgap registry push /media/usb/bundle --to harbor.site.local/mosip --username robot --password-env HARBOR_TOKEN")]
/// `airgap registry push`'s flags, as typed.
pub struct PushArgs {
    /// Bundle directories; a delta goes after its base.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// HOST[:PORT][/PREFIX] of the existing registry.
    #[arg(long)]
    pub to: String,
    /// The user to log in as; the password comes from --password-env.
    #[arg(long, requires = "password_env")]
    pub username: Option<String>,
    /// The environment variable that holds the password (kept off the command line).
    #[arg(long)]
    pub password_env: Option<String>,
    /// A CA certificate (PEM) to trust, e.g. the site CA.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Plain HTTP instead of HTTPS.
    #[arg(long)]
    pub plain_http: bool,
}

/// Copies the bundles into the registry named by --to and says what was sent.
impl PushArgs {
    /// `airgap registry push`: copies every artifact of the bundles into the registry.
    pub fn run(self) -> Result<()> {
        let credentials = match (&self.username, &self.password_env) {
            (Some(u), Some(var)) => {
                let pw =
                    std::env::var(var).with_context(|| format!("--password-env {var}: the variable is not set"))?;
                Some((u.clone(), pw))
            }
            _ => None,
        };
        let opts = PushOptions { credentials, plain_http: self.plain_http, ca_file: self.ca_file.clone() };
        let report = push_bundle(&self.bundles, &self.to, &opts)?;
        eprintln!(
            "pushed {} artifacts to {}: {} blobs uploaded, {} already there, {} manifests",
            report.artifacts, self.to, report.blobs_uploaded, report.blobs_skipped, report.manifests
        );
        Ok(())
    }
}
