use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A free TCP port on 127.0.0.1. Another process may take it before it is used; the peers that
/// bind it fail loudly in that case.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port on 127.0.0.1")
}

/// A random 64-bit hex string, for passwords and secrets that live as long as one peer.
pub(crate) fn random_token() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{:016x}", h.finish())
}

/// Runs a command to completion and returns its stdout; the error carries its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_input(cmd, None)
}

pub(crate) fn run_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Result<String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot start {shown}"))?;
    if let Some(input) = input {
        child.stdin.take().expect("piped stdin").write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A long-running peer whose output goes to a log file; killed when dropped.
pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> Result<Proc> {
        Proc::spawn_logged(name, cmd, &log_dir.join(format!("{name}.log")))
    }

    /// As [`Proc::spawn`], its output into the file `log`.
    pub(crate) fn spawn_logged(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc> {
        let out = File::create(log).with_context(|| log.display().to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        Ok(Proc { name: name.to_string(), child, log: log.to_path_buf() })
    }

    /// Fails, with the end of the log, if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(anyhow!("{} exited ({status}):\n{}", self.name, self.log_tail())),
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(6000)));
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it holds, failing early if one of `procs` dies, and with their logs on timeout.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    procs: &mut [&mut Proc],
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        for p in procs.iter_mut() {
            p.check_alive().with_context(|| format!("while waiting for {what}"))?;
        }
        if ready() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let logs: Vec<String> = procs.iter().map(|p| format!("--- {} ---\n{}", p.name, p.log_tail())).collect();
            bail!("{what} not ready after {timeout:?}\n{}", logs.join("\n"));
        }
        sleep(Duration::from_millis(200));
    }
}
