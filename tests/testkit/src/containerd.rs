use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use tempfile::TempDir;

use crate::proc::{run, wait_until, Proc};
use crate::tools::tool;

/// A private containerd (Debian's): its own root, state and socket in a temporary directory, no
/// CRI plugin, so it runs beside anything else on the machine and pulls with `ctr`.
pub struct Containerd {
    proc: Proc,
    dir: TempDir,
}

impl Containerd {
    /// Starts it and waits until `ctr version` answers.
    pub fn start() -> Result<Containerd> {
        let dir = tempfile::Builder::new().prefix("testkit-containerd-").tempdir()?;
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        fs::write(d.join("config.toml"), config)?;
        let mut proc =
            Proc::spawn("containerd", Command::new(tool("containerd")).arg("--config").arg(d.join("config.toml")), d)?;
        let mut ready = Containerd::ctr_at(d);
        ready.arg("version");
        wait_until("containerd", Duration::from_secs(30), &mut [&mut proc], || run(&mut ready).is_ok())?;
        Ok(Containerd { proc, dir })
    }

    fn ctr_at(dir: &Path) -> Command {
        let mut cmd = Command::new(tool("ctr"));
        cmd.arg("--address").arg(dir.join("containerd.sock"));
        cmd
    }

    /// A `ctr` command talking to this containerd.
    pub fn ctr(&self) -> Command {
        Containerd::ctr_at(self.dir.path())
    }

    /// A `--hosts-dir` in which `mirror` (`http://HOST:PORT`) serves pulls of `registry`
    /// (`docker.io`), as nodes are configured: containerd then adds `?ns=<registry>` to requests.
    pub fn hosts_dir(&self, registry: &str, mirror: &str) -> Result<PathBuf> {
        let dir = self.dir.path().join("hosts");
        fs::create_dir_all(dir.join(registry))?;
        let toml = format!(
            "server = \"https://{registry}\"\n\n[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
        fs::write(dir.join(registry).join("hosts.toml"), toml)?;
        Ok(dir)
    }

    /// The end of its log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}
