//! Issue 9: MOSIP installed by `airgap install apply` onto a real node (containerd + kubelet) that
//! pulls every image through the site registry under its original name, in a network namespace
//! with no way out.
//!
//! Upstream is made by the test: stand-in images (`testkit::standin_images`: Debian's static
//! busybox, and git for the config server) in a plain distribution, the real MOSIP charts from the
//! chart repository fixture (`shared/fixtures/mosip-helm-repo-2023-01-08`), and mosip-config from
//! the git fixture (`shared/fixtures/git`) on a file server. `airgap bundle create` carries them,
//! `airgap bundle verify` checks the bundle, `airgap registry serve` serves it over TLS, `airgap
//! install mirrors --format containerd` writes the node's whole mirror configuration, and `airgap
//! install apply --images keep` installs the charts from a plan and site file the test writes.
//! The test and everything it starts run inside a network namespace (`testkit::netns`) whose
//! nftables counter must stay empty.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::images::{push_plain, write_layout, Files, ImageSpec};
use testkit::netns;
use testkit::standin_images::{config_server_layer, pause_layer, service_layer, CONFIG_SERVER_PORT};
use testkit::{
    free_port, run, shared_fixtures, tool, workspace_root, Distribution, DistributionOpts, FileServer, HelmRepo,
    KubeControlPlane, NodeOptions, RealNode, SANDBOX_IMAGE,
};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");
const CHART_VERSION: &str = "12.0.1-B2";
const CONFIG_SERVER_IMAGE: &str = "docker.io/mosipid/config-server:1.1.2";

/// A MOSIP service chart of the slice, with the image and the port and path its probes ask.
struct Service {
    chart: &'static str,
    image: &'static str,
    port: u16,
    health: &'static str,
}

/// Installed first, each answering its chart's real probes.
const SERVICES: [Service; 2] = [
    Service {
        chart: "authmanager",
        image: "docker.io/mosipid/kernel-auth-service:1.2.0.1-B2",
        port: 8091,
        health: "/v1/authmanager/actuator/health",
    },
    Service {
        chart: "auditmanager",
        image: "docker.io/mosipid/kernel-auditmanager-service:1.2.0.1-B1",
        port: 8081,
        health: "/v1/auditmanager/actuator/health",
    },
];
/// Carried, but installed only after the mirror files are removed: its pull must fail.
const UNMIRRORED: Service = Service {
    chart: "masterdata",
    image: "docker.io/mosipid/kernel-masterdata-service:1.2.0.1-B1",
    port: 8086,
    health: "/v1/masterdata/actuator/health",
};
const CONFIG_REPO: &str = "https://github.com/mosip/mosip-config.git";
const CONFIG_LABEL: &str = "1.2.0.1-v3";
const CONFIG_FILE: &str = "application-default.properties";
const CONFIG_PROPERTY: &str = "mosip.kernel.authmanager.url";
/// The cluster's name in the plan and the site file.
const CLUSTER: &str = "mosip";

#[test]
fn mosip_charts_install_on_a_real_node_pulling_only_through_the_site_registry() {
    let Some(leaks) = netns::isolated("mosip_charts_install_on_a_real_node_pulling_only_through_the_site_registry")
    else {
        return;
    };
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();

    // Upstream: the stand-ins in a distribution, the chart fixture, mosip-config on a file server.
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
    let charts = HelmRepo::start().unwrap();
    let www = t.path().join("www/mosip");
    fs::create_dir_all(&www).unwrap();
    let fixture = shared_fixtures().join("git/mosip-config-1.2.0.1-v3.bundle");
    run(Command::new("git").args(["clone", "--quiet", "--mirror"]).arg(&fixture).arg(www.join("mosip-config.git")))
        .unwrap();
    run(Command::new("git").arg("-C").arg(www.join("mosip-config.git")).arg("update-server-info")).unwrap();
    let git_server = FileServer::start(t.path().join("www")).unwrap();

    // Carry, verify. The plan reads the same spec to know what the bundle carries.
    let install = t.path().join("install");
    fs::create_dir_all(&install).unwrap();
    let spec = install.join("bundle.yaml");
    fs::write(&spec, bundle_spec(&images, &upstream, &charts, &git_server)).unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new(AIRGAP)
        .args(["bundle", "create"])
        .arg(&spec)
        .arg("-o")
        .arg(&bundle)
        .arg("--cache")
        .arg(t.path().join("cache"))
        .arg("--helm")
        .arg(tool("helm-3.8.2")))
    .unwrap();
    run(Command::new(AIRGAP).args(["bundle", "verify"]).arg(&bundle)).unwrap();

    // The node, with an empty certs.d until the registry is up.
    let plane = KubeControlPlane::start().unwrap();
    let certs_d = t.path().join("certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
        .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));

    // The site registry, on the node's pod network so that containerd and the pods reach it; the
    // node's mirror configuration is what `airgap install mirrors` writes, and nothing else.
    let registry = SiteRegistry::serve(&bundle, node.host_ip(), &t.path().join("tls"), &t.path().join("access.log"));
    run(Command::new(AIRGAP)
        .args(["install", "mirrors", "--format", "containerd", "--registry", &registry.url, "--bundle"])
        .arg(&bundle)
        .arg("--ca-file")
        .arg(&registry.ca)
        .arg("--certs-dir")
        .arg(&certs_d)
        .arg("--out")
        .arg(&certs_d))
    .unwrap();
    for host in ["docker.io", "registry.k8s.io"] {
        assert!(certs_d.join(host).join("hosts.toml").is_file(), "install mirrors wrote no {host}/hosts.toml");
    }

    // Install the slice with the plan; masterdata's component stays off for now.
    let plan = write_plan(&install, &node);
    let site = Site { path: install.join("site.yaml"), registry: registry.url.clone(), ca: registry.ca.clone() };
    site.write(&plane, false);
    if !site.apply(&plan, &t.path().join("xdg-cache")) {
        panic!("install apply failed\n{}\n{}", describe_pods(&plane), node.logs());
    }

    let pods = pods(&plane);
    let releases: Vec<&str> = std::iter::once("config-server").chain(SERVICES.iter().map(|s| s.chart)).collect();
    for release in &releases {
        let pod = find_pod(&pods, release).unwrap_or_else(|| panic!("no pod of {release}\n{}", describe_pods(&plane)));
        assert_eq!(pod["spec"]["nodeName"], node.name(), "{release} runs on the real node");
        assert_eq!(pod["status"]["phase"], "Running", "{release}");
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{release} is Ready: {}", pod["status"]);
        let image = pod["spec"]["containers"][0]["image"].as_str().unwrap();
        let address = registry.url.trim_start_matches("https://");
        assert!(!image.contains(address), "{release} keeps its image's original name: {image}");
    }

    // Every image, the sandbox's included, came through the site registry: its manifest and
    // every blob it names.
    let log = fs::read_to_string(&registry.log).unwrap();
    for (reference, _) in images.iter().filter(|(r, _)| *r != UNMIRRORED.image) {
        for line in expected_fetches(&layout, reference) {
            assert!(
                log.lines().any(|l| l.starts_with(&line) && l.contains(" 200 ")),
                "{reference}: no `{line} 200` in the registry's access log:\n{log}"
            );
        }
    }
    // git speaks HTTP/2, whose request URIs carry the scheme and authority.
    let info_refs = "/git/github.com/mosip/mosip-config.git/info/refs";
    assert!(
        log.lines().any(|l| l.starts_with("GET ") && l.contains(info_refs) && l.contains(" 200 ")),
        "the config server cloned from the registry:\n{log}"
    );

    // The config server serves mosip-config's files as the fixture has them, at the path MOSIP's
    // services fetch them by.
    let clone = t.path().join("mosip-config");
    run(Command::new("git").args(["clone", "--quiet", "--branch", CONFIG_LABEL]).arg(&fixture).arg(&clone)).unwrap();
    let expected = fs::read_to_string(clone.join(CONFIG_FILE)).unwrap();
    let ip = pod_ip(&pods, "config-server");
    let url = format!("http://{ip}:{CONFIG_SERVER_PORT}/config/*/default/{CONFIG_LABEL}/{CONFIG_FILE}");
    let served = run(Command::new("curl").args(["-fsSg", "--max-time", "10", &url])).unwrap();
    assert_eq!(property(&served, CONFIG_PROPERTY), property(&expected, CONFIG_PROPERTY), "{CONFIG_PROPERTY} at {url}");
    assert!(served == expected, "{url} is not mosip-config's {CONFIG_FILE}");

    // Nothing so far tried to leave the namespace.
    leaks.assert_none();

    // Without the mirror files the next image has nowhere to go.
    fs::remove_dir_all(certs_d.join("docker.io")).unwrap();
    site.write(&plane, true);
    assert!(site.apply(&plan, &t.path().join("xdg-cache")), "install apply of {} failed", UNMIRRORED.chart);
    let failed = wait_for_pull_failure(&plane, UNMIRRORED.chart, Duration::from_secs(120)).unwrap_or_else(|| {
        panic!("the pull of {} did not fail without mirrors\n{}", UNMIRRORED.image, describe_pods(&plane))
    });
    eprintln!("without mirrors: {failed}");
    let log = fs::read_to_string(&registry.log).unwrap();
    let repository = repository_and_tag(UNMIRRORED.image);
    let pulled = format!("/v2/{}/", repository.split(':').next().unwrap());
    assert!(
        !log.lines().any(|l| l.contains(&pulled)),
        "{} reached the registry without a mirror:\n{log}",
        UNMIRRORED.image
    );
    // containerd then looked for registry-1.docker.io: its DNS lookup was counted and dropped.
    let caught = leaks.read().unwrap();
    eprintln!("the unmirrored pull tried to leave: {caught}");
    if leaks.nameservers().iter().any(|n| !n.starts_with("127.") && n != "::1") {
        assert!(!caught.is_empty(), "containerd's lookup of registry-1.docker.io was not counted");
    }

    eprintln!("real node test: {:.0?}", started.elapsed());
}

/// The counter can fail: a connection to a documentation address and a DNS lookup of an upstream
/// name, made inside the namespace, are dropped, counted and named.
#[test]
fn the_network_namespace_counts_and_names_what_tries_to_leave() {
    let Some(leaks) = netns::isolated("the_network_namespace_counts_and_names_what_tries_to_leave") else {
        return;
    };
    leaks.assert_none();
    let outside = "203.0.113.7:443".parse().unwrap();
    assert!(TcpStream::connect_timeout(&outside, Duration::from_secs(2)).is_err(), "{outside} was reached");
    let _ = ("registry-1.docker.io", 443).to_socket_addrs();
    let caught = leaks.read().unwrap();
    assert!(caught.destinations.contains("203.0.113.7"), "{caught}");
    for nameserver in leaks.nameservers().iter().filter(|n| !n.starts_with("127.") && *n != "::1") {
        assert!(caught.destinations.contains(nameserver), "the DNS lookup to {nameserver} was not counted: {caught}");
    }
    assert!(caught.packets >= 1 && caught.to_string().contains("\n  203.0.113.7"), "{caught}");
}

fn stand_ins() -> Vec<(&'static str, Files)> {
    let mut images =
        vec![(SANDBOX_IMAGE, pause_layer().unwrap()), (CONFIG_SERVER_IMAGE, config_server_layer().unwrap())];
    for s in SERVICES.iter().chain([&UNMIRRORED]) {
        images.push((s.image, service_layer(s.port, s.health).unwrap()));
    }
    images
}

/// The bundle spec: the stand-ins, the charts of the slice (their images discovered with the real
/// helm, and required to be the listed ones), mosip-config; `mirrors` point at the test's servers.
fn bundle_spec(images: &[(&str, Files)], upstream: &Distribution, charts: &HelmRepo, git: &FileServer) -> String {
    let registry_mirror = format!("http://{}", upstream.host_port());
    let chart_names =
        std::iter::once("config-server").chain(SERVICES.iter().map(|s| s.chart)).chain([UNMIRRORED.chart]);
    let spec = json!({
        "platforms": ["linux/amd64"],
        "images": images.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        "charts": chart_names
            .map(|name| json!({"repo": charts.upstream_url(), "name": name, "version": CHART_VERSION, "discover": "strict"}))
            .collect::<Vec<_>>(),
        "git": [{"url": CONFIG_REPO, "ref": CONFIG_LABEL}],
        "mirrors": {
            "docker.io": registry_mirror,
            "registry.k8s.io": registry_mirror,
            charts.upstream_host(): format!("http://127.0.0.1:{}", charts.server().port()),
            "github.com": git.url(),
        },
    });
    serde_yaml_ng::to_string(&spec).unwrap()
}

/// The plan of the slice, as the MOSIP plan installs it: config-server with the real values file
/// and the registry's git endpoint, then the two services, then masterdata behind a component.
/// The configmaps and secrets that the MOSIP plan copies from other modules' namespaces are made
/// here with the keys the config-server chart reads.
fn write_plan(dir: &Path, node: &RealNode) -> PathBuf {
    let on_node = dir.join("on-the-real-node.yaml");
    // Only the real node runs containers; Istio's and Prometheus' CRDs are not installed.
    let values = json!({
        "nodeSelector": {"kubernetes.io/hostname": node.name()},
        "istio": {"enabled": false},
        "metrics": {"serviceMonitor": {"enabled": false}},
    });
    fs::write(&on_node, serde_yaml_ng::to_string(&values).unwrap()).unwrap();
    let config_values =
        workspace_root().join("manifests/mosip-1.2.0.1-B2/values/mosip-infra/mosip/config-server/values.yaml");
    let chart = |name: &str| format!("mosip.github.io/mosip-helm/{name}:{CHART_VERSION}");

    let mut steps = vec![
        json!({"id": "ns-config-server", "namespace": {"name": "config-server"}}),
        json!({"id": "ns-kernel", "namespace": {"name": "kernel"}}),
    ];
    let mut overrides = Vec::new();
    for ((kind, name), keys) in config_server_references(&config_values) {
        let data: BTreeMap<&str, &str> = keys.iter().map(|k| (k.as_str(), "stand-in")).collect();
        // global lives in default and is copied, as in the MOSIP plan.
        let namespace = if name == "global" { "default" } else { "config-server" };
        let id = format!("{kind}-{name}");
        steps.push(json!({"id": id, "after": ["ns-config-server"], kind: {"name": name, "namespace": namespace, "data": data}}));
        overrides.push(id);
    }
    steps.push(json!({
        "id": "config-server",
        "after": overrides,
        "copy": [{"kind": "configmap", "name": "global", "from": "default", "to": "config-server"}],
        "helm": {
            "release": "config-server",
            "namespace": "config-server",
            "chart": chart("config-server"),
            "values": [config_values, on_node],
            "set": {"gitRepo.uri": "https://${site.registry.address}/git/github.com/mosip/mosip-config.git"},
            // As in the MOSIP plan: the stand-in's git clones over TLS with the mounted site CA.
            "site_ca": true,
        },
        "wait": [{"kind": "Deployment", "namespace": "config-server", "timeout": 300}],
    }));
    steps.push(json!({
        "id": "artifactory-share",
        "after": ["ns-kernel"],
        "configmap": {"name": "artifactory-share", "namespace": "kernel", "data": {"artifactory_url_env": "artifactory.artifactory"}},
    }));
    let mut after = vec!["config-server".to_string(), "artifactory-share".to_string()];
    for s in SERVICES.iter().chain([&UNMIRRORED]) {
        let mut step = json!({
            "id": s.chart,
            "after": after,
            "helm": {"release": s.chart, "namespace": "kernel", "chart": chart(s.chart), "values": [on_node]},
        });
        if s.chart == SERVICES[0].chart {
            step["copy"] = json!([
                {"kind": "configmap", "name": "global", "from": "default", "to": "kernel"},
                {"kind": "configmap", "name": "config-server-share", "from": "config-server", "to": "kernel"},
            ]);
        }
        if s.chart == UNMIRRORED.chart {
            step["component"] = json!(UNMIRRORED.chart);
        } else {
            step["wait"] = json!([{"kind": "Deployment", "namespace": "kernel", "name": s.chart, "timeout": 300}]);
        }
        steps.push(step);
        after = vec![s.chart.to_string()];
    }
    let plan = json!({
        "version": 1,
        "bundle": "bundle.yaml",
        "clusters": {CLUSTER: {"description": "config-server and kernel services on a real node", "steps": steps}},
    });
    let path = dir.join("plan.yaml");
    fs::write(&path, serde_yaml_ng::to_string(&plan).unwrap()).unwrap();
    path
}

/// The configmaps and secrets (kind, name) the config-server chart's pods read, with their keys,
/// from the chart as `helm template` renders it with the MOSIP values; those the chart makes
/// itself are left out.
fn config_server_references(values: &Path) -> BTreeMap<(&'static str, String), BTreeSet<String>> {
    let chart = HelmRepo::fixture_dir().join(format!("config-server-{CHART_VERSION}.tgz"));
    let yaml = run(Command::new(tool("helm-3.8.2"))
        .args(["template", "config-server"])
        .arg(&chart)
        .arg("--values")
        .arg(values))
    .unwrap();
    let docs: Vec<Value> = yaml
        .split("\n---\n")
        .map(|d| {
            serde_yaml_ng::from_str::<Value>(d)
                .unwrap_or_else(|e| panic!("helm template {}: {e}\n{d}", chart.display()))
        })
        .filter(Value::is_object)
        .collect();
    let made: BTreeSet<String> =
        docs.iter().filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string)).collect();
    let mut refs: BTreeMap<(&str, String), BTreeSet<String>> = BTreeMap::new();
    let containers = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .flat_map(|d| d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default());
    for env in containers.flat_map(|c| c["env"].as_array().cloned().unwrap_or_default()) {
        for (field, kind) in [("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")] {
            let r = &env["valueFrom"][field];
            if let (Some(name), Some(key)) = (r["name"].as_str(), r["key"].as_str()) {
                if !made.contains(name) {
                    refs.entry((kind, name.to_string())).or_default().insert(key.to_string());
                }
            }
        }
    }
    assert!(refs.contains_key(&("configmap", "global".to_string())), "the config-server chart reads global: {refs:?}");
    refs
}

/// The site file: the registry as nodes name it, the cluster, and masterdata on or off. No
/// domains: the installer's preflight would look them up in DNS.
struct Site {
    path: PathBuf,
    registry: String,
    ca: PathBuf,
}

impl Site {
    fn write(&self, plane: &KubeControlPlane, masterdata: bool) {
        let site = json!({
            "installation_name": "real-node",
            "registry": {"address": self.registry.trim_start_matches("https://"), "ca_cert": self.ca},
            "clusters": {CLUSTER: {"kubeconfig": plane.kubeconfig()}},
            "components": {UNMIRRORED.chart: masterdata},
        });
        fs::write(&self.path, serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    }

    /// `airgap install apply`, its progress shown as it goes; true when it succeeded.
    fn apply(&self, plan: &Path, xdg_cache: &Path) -> bool {
        let status = Command::new(AIRGAP)
            .args(["install", "apply", "--site"])
            .arg(&self.path)
            .arg("--plan")
            .arg(plan)
            .args(["--registry", &self.registry, "--ca-file"])
            .arg(&self.ca)
            .args(["--images", "keep", "--helm"])
            .arg(tool("helm-3.8.2"))
            .env("XDG_CACHE_HOME", xdg_cache)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        status.success()
    }
}

/// `docker.io/mosipid/x:1` → `mosipid/x:1`, the name under the upstream registry.
fn repository_and_tag(reference: &str) -> String {
    reference.split_once('/').unwrap().1.to_string()
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

/// The value of `key` in a Java properties text (`key=value` lines), as the services read it.
fn property(text: &str, key: &str) -> String {
    let line = text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")));
    line.unwrap_or_else(|| panic!("{key} is not in the properties:\n{text}")).trim().to_string()
}

fn pods(plane: &KubeControlPlane) -> Value {
    serde_json::from_str(&plane.kubectl(&["get", "pods", "-A", "-o", "json"]).unwrap()).unwrap()
}

/// The pod of a Helm release (MOSIP's charts label them with the release name).
fn find_pod<'a>(pods: &'a Value, release: &str) -> Option<&'a Value> {
    pods["items"].as_array()?.iter().find(|p| p["metadata"]["labels"]["app.kubernetes.io/instance"] == release)
}

fn pod_ip(pods: &Value, release: &str) -> String {
    let pod = find_pod(pods, release).unwrap();
    pod["status"]["podIP"].as_str().unwrap_or_else(|| panic!("{release} has no pod IP: {}", pod["status"])).to_string()
}

/// The waiting reason of the release's container once it is ErrImagePull or ImagePullBackOff.
fn wait_for_pull_failure(plane: &KubeControlPlane, release: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let out = plane
            .kubectl(&[
                "get",
                "pods",
                "-A",
                "-l",
                &format!("app.kubernetes.io/instance={release}"),
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
    plane.kubectl(&["describe", "pods", "-A"]).unwrap_or_else(|e| format!("{e:#}"))
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
