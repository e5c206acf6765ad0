//! Issue 9: MOSIP images carried in a bundle run on a real node (containerd + kubelet) that pulls
//! them through the site registry under their original names, and nowhere else.
//!
//! Upstream is made by the test: stand-in images (`testkit::standin_images`: Debian's static
//! busybox, and git for the config server) in a plain distribution, and mosip-config from the git
//! fixture in `shared/fixtures/git` on a file server. `airgap bundle create` carries them,
//! `airgap bundle verify` checks the bundle, `airgap registry serve` serves it over TLS, and
//! containerd's `certs.d` sends docker.io and registry.k8s.io to it.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::images::{push_plain, write_layout, Files, ImageSpec};
use testkit::standin_images::{config_server_layer, pause_layer, service_layer, PROPERTY_PATH, STANDIN_PORT};
use testkit::{
    free_port, run, shared_fixtures, Distribution, DistributionOpts, FileServer, KubeControlPlane, NodeOptions,
    RealNode, SANDBOX_IMAGE,
};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");
const CONFIG_SERVER: &str = "docker.io/mosipid/config-server:1.1.2";
/// Services and the readiness paths their charts probe.
const SERVICES: [(&str, &str); 2] = [
    ("docker.io/mosipid/kernel-auth-service:1.2.0.1-B2", "/v1/authmanager/actuator/health"),
    ("docker.io/mosipid/kernel-auditmanager-service:1.2.0.1-B1", "/v1/auditmanager/actuator/health"),
];
/// Carried, but first pulled after the mirror files are removed: the pull must fail.
const UNMIRRORED: (&str, &str) =
    ("docker.io/mosipid/kernel-masterdata-service:1.2.0.1-B1", "/v1/masterdata/actuator/health");
const CONFIG_REPO: &str = "https://github.com/mosip/mosip-config.git";
const CONFIG_LABEL: &str = "1.2.0.1-v3";
const CONFIG_FILE: &str = "application-default.properties";
const CONFIG_PROPERTY: &str = "mosip.kernel.authmanager.url";
const NAMESPACE: &str = "default";

#[test]
fn mosip_stand_ins_run_on_a_real_node_pulling_only_through_the_site_registry() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();

    // Upstream: the stand-ins in a distribution, mosip-config on a file server.
    let layout = t.path().join("layout");
    let images = stand_ins();
    let specs: Vec<ImageSpec> = images
        .iter()
        .map(|(r, layer)| ImageSpec {
            reference: r,
            platforms: &["linux/amd64"],
            shared_layers: std::slice::from_ref(layer),
        })
        .collect();
    write_layout(&layout, &specs);
    let upstream = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
    for (reference, _) in &images {
        push_plain(&layout, reference, &format!("{}/{}", upstream.host_port(), repository_and_tag(reference))).unwrap();
    }
    let www = t.path().join("www/mosip");
    fs::create_dir_all(&www).unwrap();
    let fixture = shared_fixtures().join("git/mosip-config-1.2.0.1-v3.bundle");
    run(Command::new("git").args(["clone", "--quiet", "--mirror"]).arg(&fixture).arg(www.join("mosip-config.git")))
        .unwrap();
    run(Command::new("git").arg("-C").arg(www.join("mosip-config.git")).arg("update-server-info")).unwrap();
    let git_server = FileServer::start(t.path().join("www")).unwrap();

    // Carry, verify.
    let spec = t.path().join("bundle.yaml");
    let image_list: String = images.iter().map(|(r, _)| format!("  - {r}\n")).collect();
    let registry_mirror = format!("http://{}", upstream.host_port());
    fs::write(
        &spec,
        format!(
            "platforms: [linux/amd64]\nimages:\n{image_list}git:\n  - url: {CONFIG_REPO}\n    ref: {CONFIG_LABEL}\n\
             mirrors:\n  docker.io: {registry_mirror}\n  registry.k8s.io: {registry_mirror}\n  github.com: {}\n",
            git_server.url()
        ),
    )
    .unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new(AIRGAP)
        .args(["bundle", "create"])
        .arg(&spec)
        .arg("-o")
        .arg(&bundle)
        .arg("--cache")
        .arg(t.path().join("cache")))
    .unwrap();
    run(Command::new(AIRGAP).args(["bundle", "verify"]).arg(&bundle)).unwrap();

    // The node, with an empty certs.d until the registry is up.
    let plane = KubeControlPlane::start().unwrap();
    let certs_d = t.path().join("certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
        .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));

    // The site registry, on the node's pod network so that containerd and the pods reach it.
    let registry = SiteRegistry::serve(&bundle, node.host_ip(), &t.path().join("tls"), &t.path().join("access.log"));
    write_containerd_mirrors(&certs_d, &registry.url, &registry.ca, &["docker.io", "registry.k8s.io"]);

    let manifests = t.path().join("mosip.yaml");
    let git_url = format!("{}/git/github.com/mosip/mosip-config:{CONFIG_LABEL}.git", registry.url);
    fs::write(&manifests, deployments(&node, &fs::read_to_string(&registry.ca).unwrap(), &git_url)).unwrap();
    plane.kubectl(&["apply", "-f", manifests.to_str().unwrap()]).unwrap();
    let deployments: Vec<String> = std::iter::once(CONFIG_SERVER).chain(SERVICES.map(|s| s.0)).map(app_name).collect();
    for d in &deployments {
        if let Err(e) = plane.kubectl(&["rollout", "status", &format!("deployment/{d}"), "--timeout=240s"]) {
            panic!("{d} did not roll out: {e:#}\n{}\n{}", describe_pods(&plane), node.logs());
        }
    }
    let pods = plane.kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "json"]).unwrap();
    let pods: Value = serde_json::from_str(&pods).unwrap();
    for d in &deployments {
        let pod = pods["items"].as_array().unwrap().iter().find(|p| p["metadata"]["labels"]["app"] == d.as_str());
        let pod = pod.unwrap_or_else(|| panic!("no pod of {d}"));
        assert_eq!(pod["spec"]["nodeName"], node.name(), "{d} runs on the real node");
        assert_eq!(pod["status"]["phase"], "Running", "{d}");
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{d} is Ready: {}", pod["status"]);
    }

    // Every image, the sandbox's included, came through the site registry: its manifest and
    // every blob it names.
    let log = fs::read_to_string(&registry.log).unwrap();
    for (reference, _) in images.iter().filter(|(r, _)| *r != UNMIRRORED.0) {
        for line in expected_fetches(&layout, reference) {
            assert!(
                log.lines().any(|l| l.starts_with(&line) && l.contains(" 200 ")),
                "{reference}: no `{line} 200` in the registry's access log:\n{log}"
            );
        }
    }
    // git speaks HTTP/2, whose request URIs carry the scheme and authority.
    let info_refs = format!("/git/github.com/mosip/mosip-config:{CONFIG_LABEL}.git/info/refs");
    assert!(
        log.lines().any(|l| l.starts_with("GET ") && l.contains(&info_refs) && l.contains(" 200 ")),
        "the config server cloned from the registry:\n{log}"
    );

    // The config server answers with the property as mosip-config has it.
    let clone = t.path().join("mosip-config");
    run(Command::new("git").args(["clone", "--quiet", "--branch", CONFIG_LABEL]).arg(&fixture).arg(&clone)).unwrap();
    let expected = property(&clone.join(CONFIG_FILE), CONFIG_PROPERTY);
    let ip = pod_ip(&pods, &app_name(CONFIG_SERVER));
    let answer = run(Command::new("curl").args([
        "-fsS",
        "--max-time",
        "10",
        &format!("http://{ip}:{STANDIN_PORT}{PROPERTY_PATH}"),
    ]))
    .unwrap();
    assert_eq!(answer.trim(), expected, "{CONFIG_PROPERTY} served by the config-server stand-in");

    // Without the mirror files the next image has nowhere to go.
    fs::remove_dir_all(certs_d.join("docker.io")).unwrap();
    let unmirrored = t.path().join("unmirrored.yaml");
    fs::write(&unmirrored, deployment(&node, UNMIRRORED.0, &readiness(UNMIRRORED.1), "", "")).unwrap();
    plane.kubectl(&["apply", "-f", unmirrored.to_str().unwrap()]).unwrap();
    let failed =
        wait_for_pull_failure(&plane, &app_name(UNMIRRORED.0), Duration::from_secs(120)).unwrap_or_else(|| {
            panic!("the pull of {} did not fail without mirrors\n{}", UNMIRRORED.0, describe_pods(&plane))
        });
    eprintln!("without mirrors: {failed}");
    let log = fs::read_to_string(&registry.log).unwrap();
    let path = repository_and_tag(UNMIRRORED.0);
    let path = path.split(':').next().unwrap();
    assert!(
        !log.contains(&format!("/v2/{path}/manifests/")),
        "{} reached the registry without a mirror:\n{log}",
        UNMIRRORED.0
    );

    eprintln!("real node test: {:.0?}", started.elapsed());
}

fn stand_ins() -> Vec<(&'static str, Files)> {
    let mut images = vec![(SANDBOX_IMAGE, pause_layer().unwrap()), (CONFIG_SERVER, config_server_layer().unwrap())];
    for (reference, health) in SERVICES.into_iter().chain([UNMIRRORED]) {
        images.push((reference, service_layer(health).unwrap()));
    }
    images
}

/// `docker.io/mosipid/x:1` → `mosipid/x:1`, the name under the upstream registry.
fn repository_and_tag(reference: &str) -> String {
    reference.split_once('/').unwrap().1.to_string()
}

/// `docker.io/mosipid/kernel-auth-service:1.2.0.1-B2` → `kernel-auth-service`.
fn app_name(reference: &str) -> String {
    reference.rsplit('/').next().unwrap().split(':').next().unwrap().to_string()
}

/// The requests containerd must have made for an image: its manifest, the config and every layer,
/// each by digest, as `GET /v2/<repository>/...` prefixes of access-log lines.
fn expected_fetches(layout: &Path, reference: &str) -> Vec<String> {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap();
    let blob = |digest: &str| layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&fs::read(blob(desc["digest"].as_str().unwrap())).unwrap()).unwrap();
    let full = repository_and_tag(reference);
    let repository = full.split(':').next().unwrap();
    let mut lines = vec![format!("GET /v2/{repository}/manifests/{}", desc["digest"].as_str().unwrap())];
    for d in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap()) {
        lines.push(format!("GET /v2/{repository}/blobs/{}", d["digest"].as_str().unwrap()));
    }
    lines
}

/// containerd `hosts.toml` files sending each upstream host to the site registry, trusting its CA.
/// Written by the test because `airgap install mirrors --format containerd` is not wired into the
/// binary yet; the test should switch to it when it is.
fn write_containerd_mirrors(certs_d: &Path, registry_url: &str, ca: &Path, hosts: &[&str]) {
    for host in hosts {
        let upstream =
            if *host == "docker.io" { "https://registry-1.docker.io".to_string() } else { format!("https://{host}") };
        let dir = certs_d.join(host);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"{upstream}\"\n\n[host.\"{registry_url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
                ca.display()
            ),
        )
        .unwrap();
    }
}

fn readiness(path: &str) -> String {
    format!("        readinessProbe:\n          httpGet: {{path: {path}, port: {STANDIN_PORT}}}\n          periodSeconds: 2\n")
}

/// A Deployment of one stand-in, pinned to the real node; `extra` is more of the container's
/// fields, `volumes` the pod's.
fn deployment(node: &RealNode, image: &str, probe: &str, extra: &str, volumes: &str) -> String {
    let name = app_name(image);
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      \
         nodeSelector: {{kubernetes.io/hostname: {node}}}\n      automountServiceAccountToken: false\n      containers:\n      \
         - name: {name}\n        image: {image}\n{probe}{extra}{volumes}",
        node = node.name()
    )
}

fn deployments(node: &RealNode, ca_pem: &str, git_url: &str) -> String {
    let ca = ca_pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let mut docs = vec![format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site-ca\n  namespace: {NAMESPACE}\ndata:\n  ca.crt: |\n{ca}"
    )];
    let env = format!(
        "        env:\n        - {{name: SPRING_CLOUD_CONFIG_SERVER_GIT_URI, value: \"{git_url}\"}}\n        \
         - {{name: GIT_SSL_CAINFO, value: /etc/site-ca/ca.crt}}\n        - {{name: CONFIG_FILE, value: {CONFIG_FILE}}}\n        \
         - {{name: CONFIG_PROPERTY, value: {CONFIG_PROPERTY}}}\n        volumeMounts:\n        \
         - {{name: site-ca, mountPath: /etc/site-ca}}\n"
    );
    let volumes = "      volumes:\n      - name: site-ca\n        configMap: {name: site-ca}\n";
    docs.push(deployment(node, CONFIG_SERVER, &readiness("/actuator/health"), &env, volumes));
    for (image, health) in SERVICES {
        docs.push(deployment(node, image, &readiness(health), "", ""));
    }
    docs.join("---\n")
}

/// The value of `key` in a Java properties file (`key=value` lines), as the stand-in cuts it.
fn property(file: &Path, key: &str) -> String {
    let text = fs::read_to_string(file).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")));
    line.unwrap_or_else(|| panic!("{key} is not in {}", file.display())).trim().to_string()
}

fn pod_ip(pods: &Value, app: &str) -> String {
    let pod = pods["items"].as_array().unwrap().iter().find(|p| p["metadata"]["labels"]["app"] == app).unwrap();
    pod["status"]["podIP"].as_str().unwrap_or_else(|| panic!("{app} has no pod IP: {}", pod["status"])).to_string()
}

/// The waiting reason of the app's container once it is ErrImagePull or ImagePullBackOff.
fn wait_for_pull_failure(plane: &KubeControlPlane, app: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let out = plane
            .kubectl(&[
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                &format!("app={app}"),
                "-o",
                "jsonpath={.items[*].status.containerStatuses[*].state.waiting}",
            ])
            .unwrap_or_default();
        if out.contains("ErrImagePull") || out.contains("ImagePullBackOff") {
            return Some(out);
        }
        sleep(Duration::from_secs(1));
    }
    None
}

fn describe_pods(plane: &KubeControlPlane) -> String {
    plane.kubectl(&["describe", "pods", "-n", NAMESPACE]).unwrap_or_else(|e| format!("{e:#}"))
}

/// `airgap registry serve` of the bundle with a generated site CA, its access log in a file.
struct SiteRegistry {
    child: Child,
    url: String,
    ca: PathBuf,
    log: PathBuf,
}

impl SiteRegistry {
    fn serve(bundle: &Path, ip: &str, tls_dir: &Path, log: &Path) -> SiteRegistry {
        let port = free_port();
        let child = Command::new(AIRGAP)
            .args(["registry", "serve"])
            .arg(bundle)
            .args(["--listen", &format!("{ip}:{port}"), "--hostname", ip, "--tls-generate"])
            .arg(tls_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut registry = SiteRegistry {
            child,
            url: format!("https://{ip}:{port}"),
            ca: tls_dir.join("ca.crt"),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((ip, port)).is_err() {
            if let Some(status) = registry.child.try_wait().unwrap() {
                panic!("airgap registry serve exited ({status}): {}", fs::read_to_string(log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "airgap registry serve did not listen on {ip}:{port}");
            sleep(Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for SiteRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
