//! Stand-in images that really run, for a [`crate::RealNode`]: layers made of this machine's
//! programs (Debian's static busybox, and git with the libraries it links) and a start script.
//! Written with [`crate::images`]; each image starts its stand-in by itself (see `shell_layer`).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::images::Files;
use crate::proc::run;

/// Debian's `busybox-static`: one binary with a shell and an HTTP server, linked statically.
const BUSYBOX: &str = "/bin/busybox";
/// The port of MOSIP's config-server chart (`springServicePort`), which its probes ask.
pub const CONFIG_SERVER_PORT: u16 = 51000;
/// The path of the config-server chart's probes: Spring Cloud Config's answer for any application
/// and profile.
pub const CONFIG_SERVER_PROBE: &str = "/config/*/*";

/// A pause image for [`crate::node::SANDBOX_IMAGE`]: it only has to hold the pod's namespaces.
pub fn pause_layer() -> Result<Files> {
    shell_layer("exec /bin/busybox sleep 2147483647\n")
}

/// A MOSIP service stand-in: serves HTTP on `port` and answers its chart's probes at
/// `health_path` (e.g. 8091 and `/v1/authmanager/actuator/health`) with `{"status":"UP"}`.
pub fn service_layer(port: u16, health_path: &str) -> Result<Files> {
    let health = health_path.trim_start_matches('/');
    if health.is_empty() || health.split('/').any(|s| s.is_empty() || s == "..") {
        bail!("stand-in health path {health_path:?}: give an absolute path like /v1/x/actuator/health");
    }
    let mut files = shell_layer(&format!("exec /bin/busybox httpd -f -p {port} -h /www\n"))?;
    files.insert(format!("www/{health}"), br#"{"status":"UP"}"#.to_vec());
    Ok(files)
}

/// A config-server stand-in, started as MOSIP's chart starts the real one: it clones
/// `$SPRING_CLOUD_CONFIG_SERVER_GIT_URI` with a real git client (which trusts what
/// `$GIT_SSL_CAINFO` names: the installer mounts the site CA there), then serves on [`CONFIG_SERVER_PORT`] the files of the cloned branch
/// at `/config/*/default/<branch>/<file>`, the paths MOSIP's services fetch them by, and answers
/// the chart's probes at [`CONFIG_SERVER_PROBE`].
pub fn config_server_layer() -> Result<Files> {
    let script = format!(
        "set -e\n\
         B=/bin/busybox\n\
         export HOME=/tmp\n\
         $B mkdir -p /tmp\n\
         /usr/bin/git clone --quiet \"$SPRING_CLOUD_CONFIG_SERVER_GIT_URI\" /tmp/config\n\
         label=$(/usr/bin/git -C /tmp/config rev-parse --abbrev-ref HEAD)\n\
         $B mkdir -p \"/www/config/*/default/$label\"\n\
         /usr/bin/git -C /tmp/config archive HEAD | $B tar -x -C \"/www/config/*/default/$label\"\n\
         echo '{{\"name\":\"*\",\"profiles\":[\"*\"],\"propertySources\":[]}}' > \"/www{CONFIG_SERVER_PROBE}\"\n\
         exec $B httpd -f -p {CONFIG_SERVER_PORT} -h /www\n"
    );
    let mut files = shell_layer(&script)?;
    files.extend(with_libraries(Path::new("/usr/bin/git"))?);
    // git runs its HTTP transport as a separate program from its exec path.
    files.extend(with_libraries(Path::new("/usr/lib/git-core/git-remote-http"))?);
    let remote = fs::read("/usr/lib/git-core/git-remote-http").context("reading git's HTTP transport")?;
    files.insert("usr/lib/git-core/git-remote-https".to_string(), remote);
    Ok(files)
}

/// busybox as `/bin/busybox`, and the start script as `/bin/sh`, since [`crate::images`] gives
/// every image the entrypoint `/bin/sh`: the kernel runs the script with `/bin/busybox sh` from its
/// `#!` line, so the image starts by itself, as the real one does, with no command in the pod spec.
fn shell_layer(script: &str) -> Result<Files> {
    let busybox = fs::read(BUSYBOX)
        .with_context(|| format!("reading {BUSYBOX}: install Debian's busybox-static (tests/tools/install.sh)"))?;
    let ldd = Command::new("ldd").arg(BUSYBOX).output().context("running ldd")?;
    if !String::from_utf8_lossy(&[ldd.stdout, ldd.stderr].concat()).contains("not a dynamic executable") {
        bail!("{BUSYBOX} is not statically linked: install Debian's busybox-static (tests/tools/install.sh)");
    }
    Ok(Files::from([
        ("bin/busybox".to_string(), busybox),
        ("bin/sh".to_string(), format!("#!/bin/busybox sh\n{script}").into_bytes()),
    ]))
}

/// A dynamically linked program and every shared library `ldd` lists for it, each at the path
/// the loader looks for it.
fn with_libraries(program: &Path) -> Result<Files> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {} for a stand-in image", p.display()));
    let mut files = Files::new();
    files.insert(relative(program), read(program)?);
    for line in run(Command::new("ldd").arg(program))?.lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.insert(relative(Path::new(path)), read(Path::new(path))?);
        }
    }
    Ok(files)
}

fn relative(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}
