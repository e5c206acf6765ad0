//! `airgap demo`: the whole chain on one machine with no internet. A small upstream of our own
//! on 127.0.0.1, `bundle create` of the sample spec against it, `bundle verify`, then
//! `registry serve` of the new bundle, with the commands to try next.

mod upstream;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use registry::{AccessLog, ServeConfig, Server};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

const SAMPLE_SPEC: &str = include_str!("../../manifests/sample/bundle.yaml");

/// What `airgap demo` is asked.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the demo's files here; a temporary directory removed on exit when None.
    pub dir: Option<PathBuf>,
    /// Where the registry serving the new bundle listens.
    pub listen: SocketAddr,
    /// Exit once a client has pulled from the served bundle.
    pub exit_after_pull: bool,
}

fn step(n: u32, text: &str) {
    eprintln!("\n[{n}/5] {text}");
}

/// A registry on a runtime of its own, so the bundler (which runs its own) can call it.
fn start(cfg: ServeConfig) -> Result<(SocketAddr, Runtime)> {
    let rt = Runtime::new()?;
    let server = rt.block_on(Server::bind(cfg))?;
    let addr = server.local_addr();
    rt.spawn(server.run(std::future::pending()));
    Ok((addr, rt))
}

/// The sample spec with its mirrors pointed at the demo's upstream. The tool's checksum stays
/// the spec's: the upstream generates the archive byte for byte, so the bundler's check holds.
fn spec_for(upstream: SocketAddr) -> Result<String> {
    let mut spec: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(SAMPLE_SPEC).context("manifests/sample/bundle.yaml")?;
    let base = format!("http://{upstream}");
    let mirrors: serde_yaml_ng::Mapping = [
        ("docker.io", base.clone()),
        ("quay.io", base.clone()),
        ("charts.airgap.example", format!("{base}/charts/charts.airgap.example")),
        ("downloads.airgap.example", format!("{base}/files/downloads.airgap.example")),
        ("git.airgap.example", format!("{base}/git/git.airgap.example")),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    spec["mirrors"] = mirrors.into();
    Ok(serde_yaml_ng::to_string(&spec)?)
}

/// Forwards the access log to stderr and wakes the demo when a client has fetched a blob,
/// which a pull does after its manifests.
struct PullWatch {
    pulled: Arc<Notify>,
}

impl Write for PullWatch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.starts_with("GET /v2/") && line.contains("/blobs/") && line.contains(" 200 ") {
            self.pulled.notify_one();
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Ctrl-C or SIGTERM, at any step, ends the demo; its temporary folder goes with it (a folder
/// given with --dir is the user's and stays).
fn stop_on_signal(scratch: Option<PathBuf>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    std::thread::spawn(move || {
        let code = rt.block_on(async {
            tokio::select! {
                _ = term.recv() => 143,
                _ = int.recv() => 130,
            }
        });
        if let Some(dir) = scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(code);
    });
    Ok(())
}

pub fn run(opts: &DemoOptions) -> Result<()> {
    let scratch;
    let dir: &Path = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
            d
        }
        None => {
            scratch = tempfile::Builder::new().prefix("airgap-demo-").tempdir()?;
            scratch.path()
        }
    };
    stop_on_signal(opts.dir.is_none().then(|| dir.to_path_buf()))?;
    let bundle = dir.join("bundle");
    if bundle.exists() {
        bail!("{} exists: give the demo a new --dir", bundle.display());
    }

    step(1, "building a small upstream (images, a chart, a tool archive, a git repository) on 127.0.0.1");
    let upstream_layout = dir.join("upstream/layout");
    upstream::write(&upstream_layout, &dir.join("upstream"))?;
    let upstream_bundle = dir.join("upstream/bundle");
    bundles::pack::pack(&upstream_layout, &upstream_bundle, &bundles::pack::PackOptions::default())?;
    let upstream_cfg = ServeConfig {
        bundles: vec![upstream_bundle],
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        access_log: AccessLog::Off,
        ..ServeConfig::default()
    };
    let (upstream_addr, _upstream) = start(upstream_cfg)?;
    eprintln!(
        "      upstream at http://{upstream_addr} stands in for docker.io, quay.io and the *.airgap.example hosts"
    );

    step(2, "airgap bundle create manifests/sample/bundle.yaml (mirrors point at that upstream)");
    let spec = dir.join("bundle.yaml");
    std::fs::write(&spec, spec_for(upstream_addr)?)?;
    let create = bundler::CreateOptions {
        airgap_binary: Some(std::env::current_exe()?),
        ..bundler::CreateOptions::new(&spec, &bundle, bundler::FetchOptions::new(&dir.join("cache")))
    };
    bundler::create(&create)?;

    step(3, "airgap bundle verify");
    let report = bundles::verify::verify(&bundle, &bundles::verify::VerifyOptions { key: None, bases: Vec::new() });
    for p in report.problem_lines() {
        eprintln!("      FAILED {p}");
    }
    if !report.ok {
        bail!("the demo's bundle did not verify");
    }
    eprintln!("      OK: {} checks passed", report.counts.get("ok").copied().unwrap_or(0));

    step(4, "airgap registry serve (the bundle in place, nothing unpacked)");
    let pulled = Arc::new(Notify::new());
    let log = AccessLog::Writer(Arc::new(Mutex::new(PullWatch { pulled: Arc::clone(&pulled) })));
    let serve_cfg = |listen| ServeConfig {
        bundles: vec![bundle.clone()],
        listen,
        read_only: true,
        access_log: log.clone(),
        ..ServeConfig::default()
    };
    let rt = Runtime::new()?;
    let server = match rt.block_on(Server::bind(serve_cfg(opts.listen))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("      {} is taken ({e:#}); using a free port", opts.listen);
            rt.block_on(Server::bind(serve_cfg(SocketAddr::from(([127, 0, 0, 1], 0)))))?
        }
    };
    let a = server.local_addr();

    step(5, "try it (Ctrl-C to stop); the contents page is the registry's address in a browser:");
    println!("REGISTRY {a}");
    println!("  skopeo inspect --tls-verify=false docker://{a}/docker.io/airgap/hello:1.0");
    println!("  skopeo inspect --tls-verify=false docker://{a}/airgap/hello:1.0          # the bare name works too");
    println!("  helm pull oci://{a}/charts.airgap.example/stable/hello --version 0.1.0");
    println!("  helm repo add demo http://{a}/charts/charts.airgap.example/stable && helm pull demo/hello");
    println!("  curl -O http://{a}/files/files.airgap.local/hello-cli/1.0-linux-amd64/hello-cli");
    println!("  git clone http://{a}/git/git.airgap.example/airgap/sample-config.git");
    println!("  airgap bundle inspect {}", bundle.display());
    println!("  open http://{a}/ in a browser: the contents page, what the registry serves");
    let _ = std::io::stdout().flush();
    let exit_after_pull = opts.exit_after_pull;
    // Signals end the demo through stop_on_signal.
    rt.block_on(server.run(async move {
        if exit_after_pull {
            pulled.notified().await;
            // Let the client finish what it asked for after the blob.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            eprintln!("a client pulled from the bundle: done");
        } else {
            std::future::pending::<()>().await;
        }
    }))
}
