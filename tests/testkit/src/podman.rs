use std::fs;
use std::process::Command;

use anyhow::Result;
use tempfile::TempDir;

use crate::tools::tool;

/// podman with its own storage (vfs, so it works as root inside a container without overlay)
/// and its own registries.conf, in a temporary directory: nothing of the machine's is touched.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    /// A podman whose storage and registries.conf are fresh and its own.
    pub fn new() -> Result<Podman> {
        let dir = tempfile::Builder::new().prefix("testkit-podman-").tempdir()?;
        fs::write(dir.path().join("registries.conf"), "")?;
        Ok(Podman { dir })
    }

    /// A `podman` command using this storage and registries.conf.
    pub fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(tool("podman"));
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"));
        cmd
    }

    /// Pulls of `prefix` (`docker.io`) go to `mirror` (`HOST:PORT/docker.io`) over plain HTTP
    /// first, as a site configures its nodes.
    pub fn mirror(&self, prefix: &str, mirror: &str) -> Result<()> {
        let conf = format!(
            "[[registry]]\nprefix = \"{prefix}\"\nlocation = \"{prefix}\"\n\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
        );
        fs::write(self.dir.path().join("registries.conf"), conf)?;
        Ok(())
    }
}
