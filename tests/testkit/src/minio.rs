use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tempfile::TempDir;

use crate::proc::{free_port, random_token, run, wait_until, Proc};
use crate::tools::tool;

/// A MinIO server: a real S3-compatible object store over plain HTTP, storing in a temporary
/// directory.
pub struct MinioServer {
    proc: Proc,
    dir: TempDir,
    port: u16,
    secret_key: String,
}

impl MinioServer {
    /// Starts it on a free port with a random secret, and waits until it says it is ready.
    pub fn start() -> Result<MinioServer> {
        let dir = tempfile::Builder::new().prefix("testkit-minio-").tempdir()?;
        let port = free_port();
        let secret_key = random_token();
        let mut cmd = Command::new(tool("minio"));
        cmd.args(["server", "--quiet", "--address", &format!("127.0.0.1:{port}")])
            .arg(dir.path().join("data"))
            .env("MINIO_ROOT_USER", "airgap-test")
            .env("MINIO_ROOT_PASSWORD", &secret_key)
            .env("MINIO_REGION", "us-east-1")
            // Nothing may leave the machine: no update checks, no console, no call-home.
            .env("MINIO_UPDATE", "off")
            .env("MINIO_BROWSER", "off")
            .env("MINIO_CALLHOME_ENABLE", "off")
            .env("HOME", dir.path());
        let mut proc = Proc::spawn("minio", &mut cmd, dir.path())?;
        let health = format!("http://127.0.0.1:{port}/minio/health/ready");
        wait_until("minio", Duration::from_secs(60), &mut [&mut proc], || {
            run(Command::new(tool("curl")).args(["-fsS", "-o", "/dev/null", &health])).is_ok()
        })?;
        Ok(MinioServer { proc, dir, port, secret_key })
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The region it is configured with, which requests are signed for.
    pub fn region(&self) -> &str {
        "us-east-1"
    }

    /// The root user's access key.
    pub fn access_key(&self) -> &str {
        "airgap-test"
    }

    /// The root user's secret, random for each start.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Creates a bucket with MinIO's client, `mc`.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        run(self.mc().args(["mb", &format!("testkit/{name}")]))?;
        Ok(())
    }

    /// An `mc` command whose alias `testkit` is this server.
    pub fn mc(&self) -> Command {
        let mut cmd = Command::new(tool("mc"));
        cmd.env("MC_HOST_testkit", format!("http://{}:{}@127.0.0.1:{}", self.access_key(), self.secret_key, self.port))
            .env("MC_CONFIG_DIR", self.dir.path().join("mc"))
            .arg("--no-color");
        cmd
    }

    /// The end of its log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}
