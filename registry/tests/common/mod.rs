//! Shared by the registry's integration tests: a server on a random loopback port, and a bundle
//! made the way the bundler makes one (an OCI layout written with `LayoutWriter`, then packed).
#![allow(dead_code)] // each test binary uses its own part of this module

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use bundles::artifact::{Kind, HELM_CONFIG_MEDIA_TYPE};
use bundles::layout_writer::{descriptor, LayoutWriter};
use registry::{AccessLog, ServeConfig, Server};
use serde_json::{json, Value};

pub use testkit::{run, tool};

pub struct TestServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<u8>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(mut cfg: ServeConfig) -> TestServer {
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        cfg.access_log = AccessLog::Writer(log.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let server = match Server::bind(cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        addr_tx.send(Err(format!("{e:#}"))).unwrap();
                        return;
                    }
                };
                addr_tx.send(Ok(server.local_addr())).unwrap();
                server
                    .run(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap().unwrap_or_else(|e| panic!("registry did not start: {e}"));
        TestServer { addr, log, stop: Some(tx), thread: Some(thread) }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A storage-directory registry without auth.
pub fn storage_server(dir: &Path) -> TestServer {
    TestServer::start(ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.to_path_buf())),
        ..Default::default()
    })
}

/// `s3://BUCKET/PREFIX` on the MinIO `s3`, with its credentials.
pub fn s3_location(s3: &testkit::MinioServer, bucket: &str, prefix: &str) -> registry::storage::S3Location {
    let mut loc =
        registry::storage::S3Location::parse(&format!("s3://{bucket}/{prefix}?endpoint={}", s3.endpoint())).unwrap();
    loc.credentials = Some((s3.access_key().to_string(), s3.secret_key().to_string()));
    loc
}

pub fn bundle_server(bundles: &[&Path]) -> TestServer {
    TestServer::start(ServeConfig {
        bundles: bundles.iter().map(|b| b.to_path_buf()).collect(),
        read_only: true,
        ..Default::default()
    })
}

/// An uncompressed tar layer holding one file.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn desc_json(d: &oci_spec::image::Descriptor) -> Value {
    serde_json::to_value(d).unwrap()
}

/// One image manifest for `arch`, sharing `base` as its first layer.
fn image(w: &LayoutWriter, arch: &str, base: &[u8]) -> oci_spec::image::Descriptor {
    let own = layer_tar(&format!("{arch}.txt"), format!("built for {arch}\n").as_bytes());
    let layers: Vec<_> = [base, &own[..]].iter().map(|l| w.put_bytes(l).unwrap()).collect();
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
    });
    let config = w.put_bytes(&serde_json::to_vec(&config).unwrap()).unwrap();
    let mt = "application/vnd.oci.image.layer.v1.tar";
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc_json(&descriptor("application/vnd.oci.image.config.v1+json", &config)),
        "layers": layers.iter().map(|l| desc_json(&descriptor(mt, l))).collect::<Vec<_>>(),
    });
    w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap()
}

/// A multi-arch image (amd64 + arm64 sharing a layer) as `reference`.
pub fn add_multiarch(w: &mut LayoutWriter, reference: &str) -> oci_spec::image::Descriptor {
    let base = layer_tar("etc/os-release", b"NAME=fixture\n");
    let children: Vec<Value> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let mut d = desc_json(&image(w, arch, &base));
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children});
    let desc = w.put_manifest("application/vnd.oci.image.index.v1+json", &index).unwrap();
    w.add(reference, Kind::Image, desc.clone(), &[]);
    desc
}

pub fn add_single(w: &mut LayoutWriter, reference: &str, arch: &str) -> oci_spec::image::Descriptor {
    let base = layer_tar("etc/os-release", b"NAME=fixture\n");
    let desc = image(w, arch, &base);
    w.add(reference, Kind::Image, desc.clone(), &[]);
    desc
}

/// A chart made by helm itself, stored the way `helm push` stores it.
pub fn add_chart(w: &mut LayoutWriter, work: &Path, reference: &str, name: &str, version: &str) {
    let tgz = helm_package(work, name, version);
    let bytes = fs::read(&tgz).unwrap();
    let layer = w.put_bytes(&bytes).unwrap();
    let meta = json!({"apiVersion": "v2", "name": name, "version": version, "appVersion": "1.16.0",
        "description": "A Helm chart for Kubernetes", "type": "application"});
    let config = w.put_bytes(&serde_json::to_vec(&meta).unwrap()).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc_json(&descriptor(HELM_CONFIG_MEDIA_TYPE, &config)),
        "layers": [desc_json(&descriptor("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &layer))],
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add(reference, Kind::Chart, desc, &[]);
}

pub fn helm() -> PathBuf {
    tool("helm-3.8.2")
}

/// `helm create` + `helm package`; returns the .tgz.
pub fn helm_package(work: &Path, name: &str, version: &str) -> PathBuf {
    let src = work.join(format!("chart-src-{name}"));
    fs::create_dir_all(&src).unwrap();
    run(Command::new(helm()).arg("create").arg(name).current_dir(&src)).unwrap();
    run(Command::new(helm()).args(["package", name, "--version", version, "-d"]).arg(work).current_dir(&src)).unwrap();
    work.join(format!("{name}-{version}.tgz"))
}

/// A bare repository with one commit, packed and prepared for dumb HTTP, as a tar.
pub fn git_repo_tar(work: &Path) -> Vec<u8> {
    let bare = work.join("config.git");
    let clone = work.join("config-src");
    let git = |args: &[&str], dir: &Path| {
        run(Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e"))
        .unwrap()
    };
    fs::create_dir_all(&clone).unwrap();
    git(&["init", "--bare", "-b", "main", bare.to_str().unwrap()], work);
    git(&["init", "-b", "main"], &clone);
    fs::write(clone.join("application.properties"), "mosip.greeting=hello from the bundle\n").unwrap();
    git(&["add", "."], &clone);
    git(&["commit", "-m", "config"], &clone);
    git(&["push", bare.to_str().unwrap(), "main"], &clone);
    git(&["repack", "-a", "-d"], &bare);
    git(&["update-server-info"], &bare);
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &bare).unwrap();
    b.into_inner().unwrap()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
    pub multiarch: oci_spec::image::Descriptor,
    /// An SBOM-like artifact whose subject is the multi-arch index.
    pub referrer: oci_spec::image::Descriptor,
}

pub const SBOM_TYPE: &str = "application/vnd.example.sbom.v1+json";

/// An artifact about `subject`, the way `oras attach` makes one.
pub fn add_referrer(
    w: &mut LayoutWriter,
    reference: &str,
    subject: &oci_spec::image::Descriptor,
) -> oci_spec::image::Descriptor {
    let empty = w.put_bytes(b"{}").unwrap();
    let layer = w.put_bytes(b"{\"sbom\": true}").unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": SBOM_TYPE,
        "config": desc_json(&descriptor("application/vnd.oci.empty.v1+json", &empty)),
        "layers": [desc_json(&descriptor(SBOM_TYPE, &layer))],
        "subject": desc_json(subject),
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add(reference, Kind::File, desc.clone(), &[]);
    desc
}

/// A bundle with a multi-arch image, a single image from another host, a chart, a file and a
/// git repository.
pub fn fixture_bundle() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let multiarch = add_multiarch(&mut w, "docker.io/mosipid/config-server:1.1.2");
    add_single(&mut w, "quay.io/example/tool:2.0", "amd64");
    let referrer = add_referrer(&mut w, "docker.io/mosipid/config-server:sbom", &multiarch);
    add_single(&mut w, "docker.io/library/nginx:1.25", "amd64");
    add_chart(&mut w, dir.path(), "charts.example.com/stable/mychart:0.1.0", "mychart", "0.1.0");
    let tar = git_repo_tar(dir.path());
    w.add_single_layer("github.com/example/config:v1", Kind::Git, "config.git", &tar[..], None, None).unwrap();
    w.add_single_layer("files.example.com/tools/hello:1.0", Kind::File, "hello.txt", &b"hello, site\n"[..], None, None)
        .unwrap();
    w.finish().unwrap();
    let bundle = dir.path().join("bundle");
    bundles::pack::pack(&layout, &bundle, &bundles::pack::PackOptions::default()).unwrap();
    Fixture { dir, bundle, multiarch, referrer }
}

pub fn write_htpasswd(path: &Path, users: &[(&str, &str)]) {
    let mut f = fs::File::create(path).unwrap();
    for (u, p) in users {
        writeln!(f, "{u}:{}", bcrypt::hash(p, 4).unwrap()).unwrap();
    }
}

/// A plain HTTP client for poking at the API directly.
/// Every manifest type in `Accept`, as real clients send it; a test may override it per request.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A client without default headers (`rustls-no-provider` needs a crypto provider installed).
pub fn bare_http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static(ACCEPT_ALL_MANIFESTS));
    reqwest::blocking::Client::builder().default_headers(headers).build().unwrap()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", bundles::digest::sha256_hex(bytes))
}

/// Pushes a blob monolithically and returns its digest.
pub fn push_blob(server: &TestServer, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let resp =
        http().post(server.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))).body(bytes.to_vec()).send().unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    d
}

/// The `code` of the first error in an error body.
pub fn error_code(resp: reqwest::blocking::Response) -> String {
    let v: Value = serde_json::from_slice(&resp.bytes().unwrap()).expect("error bodies are JSON");
    v["errors"][0]["code"].as_str().expect("an error code").to_string()
}

/// The registry in a process of its own, so its open-file limit, CPU time and memory are its own
/// and can be read from /proc. The process is the calling test binary running its ignored test
/// `test_name`, which calls [`registry_process_main`]; the settings travel in the environment.
pub struct ChildRegistry {
    pub addr: SocketAddr,
    pub max_connections: usize,
    child: std::process::Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

const CHILD_BUNDLE: &str = "AIRGAP_TEST_CHILD_BUNDLE";
const CHILD_HEADER_TIMEOUT: &str = "AIRGAP_TEST_CHILD_HEADER_TIMEOUT_MS";
const CHILD_IDLE_TIMEOUT: &str = "AIRGAP_TEST_CHILD_IDLE_TIMEOUT_MS";

impl ChildRegistry {
    /// Serves `bundle` read-only, under `prlimit --nofile=N` when `nofile` is given.
    pub fn start(test_name: &str, bundle: &Path, nofile: Option<u64>, limits: &registry::Limits) -> ChildRegistry {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new(tool("prlimit"));
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .args(["--exact", test_name, "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_BUNDLE, bundle)
            .env(CHILD_HEADER_TIMEOUT, limits.header_timeout.as_millis().to_string())
            .env(CHILD_IDLE_TIMEOUT, limits.idle_timeout.as_millis().to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut max_connections) = (None, None);
        // The test harness may start the line with the test's name.
        for line in lines.map_while(Result::ok) {
            if let Some((_, a)) = line.split_once("listening on ") {
                addr = Some(a.parse().unwrap());
            }
            if let Some((_, n)) = line.split_once("max connections ") {
                max_connections = Some(n.parse().unwrap());
            }
            if addr.is_some() && max_connections.is_some() {
                break;
            }
        }
        let (Some(addr), Some(max_connections)) = (addr, max_connections) else {
            let _ = child.kill();
            panic!("the registry process did not start: {}", fs::read_to_string(&stderr).unwrap_or_default());
        };
        ChildRegistry { addr, max_connections, child, stderr, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the process wrote on stderr (the access log is off: only its own messages).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// CPU time used so far, user and system, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        let per_second: f64 = run(Command::new("getconf").arg("CLK_TCK")).unwrap().trim().parse().unwrap();
        ticks / per_second
    }

    /// The peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Fails the test, with the process's stderr, if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the registry process exited ({status}): {}", self.stderr());
        }
    }
}

impl Drop for ChildRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of the ignored test that [`ChildRegistry::start`] runs: serves until killed.
pub fn registry_process_main() {
    let bundle = std::env::var_os(CHILD_BUNDLE).expect("started by ChildRegistry::start");
    let ms = |var: &str| std::time::Duration::from_millis(std::env::var(var).unwrap().parse().unwrap());
    let cfg = ServeConfig {
        bundles: vec![PathBuf::from(bundle)],
        listen: "127.0.0.1:0".parse().unwrap(),
        read_only: true,
        access_log: AccessLog::Off,
        limits: registry::Limits {
            header_timeout: ms(CHILD_HEADER_TIMEOUT),
            idle_timeout: ms(CHILD_IDLE_TIMEOUT),
            ..Default::default()
        },
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let server = Server::bind(cfg).await.unwrap();
        println!("listening on {}", server.local_addr());
        println!("max connections {}", server.max_connections());
        std::io::stdout().flush().unwrap();
        server.run(std::future::pending()).await.unwrap();
    });
}

/// Connections that send a request head one byte at a time, slower than any client would:
/// each is reopened when the server closes it. Runs until dropped; counts the reopenings.
pub struct SlowSockets {
    stop: Arc<std::sync::atomic::AtomicBool>,
    reopened: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowSockets {
    pub fn start(addr: SocketAddr, count: usize, every: std::time::Duration) -> SlowSockets {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reopened = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, r) = (stop.clone(), reopened.clone());
        let thread = std::thread::spawn(move || {
            const HEAD: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: slow\r\nX-Padding: ";
            let open = || {
                let c = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).ok()?;
                c.set_write_timeout(Some(std::time::Duration::from_millis(200))).ok()?;
                Some(c)
            };
            let mut socks: Vec<(Option<std::net::TcpStream>, usize)> = (0..count).map(|_| (open(), 0)).collect();
            while !s.load(Ordering::Relaxed) {
                for (sock, sent) in socks.iter_mut() {
                    let byte = HEAD.get(*sent).copied().unwrap_or(b'x');
                    let alive = sock.as_mut().is_some_and(|c| c.write_all(&[byte]).is_ok());
                    if alive {
                        *sent += 1;
                    } else {
                        *sock = open();
                        *sent = 0;
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(every);
            }
        });
        SlowSockets { stop, reopened, thread: Some(thread) }
    }

    /// How many times a socket was found closed by the server and opened again.
    pub fn reopened(&self) -> u64 {
        self.reopened.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SlowSockets {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
