use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tempfile::TempDir;

use crate::proc::{free_port, port_open, random_token, run, wait_until, Proc};
use crate::tls::TestCa;
use crate::tools::tool;

/// How to run the upstream registry.
#[derive(Clone, Debug)]
pub struct DistributionOpts {
    /// Serve HTTPS with a certificate from a CA made for this registry.
    pub tls: bool,
    /// Require htpasswd (bcrypt) basic auth.
    pub auth: bool,
}

impl Default for DistributionOpts {
    fn default() -> Self {
        DistributionOpts { tls: true, auth: true }
    }
}

/// CNCF distribution (Debian's `docker-registry`, 2.8) with deletes enabled, storing on the
/// filesystem in a temporary directory.
pub struct Distribution {
    proc: Proc,
    dir: TempDir,
    port: u16,
    tls: bool,
    credentials: Option<(String, String)>,
}

impl Distribution {
    /// Starts it (with a CA of its own and an htpasswd user when asked) and waits for its port.
    pub fn start(opts: DistributionOpts) -> Result<Distribution> {
        let dir = tempfile::Builder::new().prefix("testkit-distribution-").tempdir()?;
        let root = dir.path();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n",
            storage = root.join("storage").display(),
            secret = random_token(),
        );
        if opts.tls {
            let ca = TestCa::new("testkit distribution CA")?;
            fs::write(root.join("ca.pem"), ca.cert_pem())?;
            ca.issue("127.0.0.1", &["127.0.0.1", "localhost"], None)?.write(root, "server")?;
            // skopeo's --cert-dir treats every *.crt as a CA; containers' and containerd's certs.d
            // want the same file under a directory named after host:port.
            fs::create_dir_all(root.join("cert-dir"))?;
            fs::write(root.join("cert-dir/ca.crt"), ca.cert_pem())?;
            let per_host = root.join("certs.d").join(format!("127.0.0.1:{port}"));
            fs::create_dir_all(&per_host)?;
            fs::write(per_host.join("ca.crt"), ca.cert_pem())?;
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join("server.crt").display(),
                root.join("server.key").display()
            );
        }
        let credentials = if opts.auth {
            let (user, password) = ("airgap".to_string(), random_token());
            let line = run(Command::new(tool("htpasswd")).args(["-Bbn", &user, &password]))?;
            fs::write(root.join("htpasswd"), line.trim_end().to_string() + "\n")?;
            config +=
                &format!("auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n", root.join("htpasswd").display());
            Some((user, password))
        } else {
            None
        };
        fs::write(root.join("config.yml"), config)?;
        let mut proc = Proc::spawn(
            "docker-registry",
            Command::new(tool("docker-registry")).arg("serve").arg(root.join("config.yml")),
            root,
        )?;
        wait_until("docker-registry", Duration::from_secs(30), &mut [&mut proc], || port_open(port))?;
        Ok(Distribution { proc, dir, port, tls: opts.tls, credentials })
    }

    /// `127.0.0.1:PORT`, as image references name it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://` or `https://` and [`Distribution::host_port`], for API calls.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port())
    }

    /// The htpasswd user, when started with auth.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.0.as_str())
    }

    /// That user's password, random for each start.
    pub fn password(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.1.as_str())
    }

    /// `user:password`, as skopeo's `--creds` takes it.
    pub fn creds(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The CA certificate (PEM) that signed the registry's certificate; also usable as
    /// `SSL_CERT_FILE` for Go clients.
    pub fn ca_pem(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// A directory holding `ca.crt`, for skopeo's `--cert-dir`, `--src-cert-dir`, `--dest-cert-dir`.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("cert-dir"))
    }

    /// A `certs.d` root holding `127.0.0.1:PORT/ca.crt`, the layout of
    /// `/etc/containers/certs.d` and of containerd's hosts directory.
    pub fn certs_d(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("certs.d"))
    }

    /// The registry's storage root on disk.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The end of the registry's log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}
