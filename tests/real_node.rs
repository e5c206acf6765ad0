//! Issue 9: MOSIP installed by `airgap install apply` onto a real node (containerd + kubelet) that
//! pulls every image through the site registry under its original name, in a network namespace
//! with no way out.
//!
//! Upstream is made by the test: stand-in images (`testkit::standin_images`: Debian's static
//! busybox, and git for the config server) in a plain distribution, the real MOSIP charts from the
//! chart repository fixture (`shared/fixtures/mosip-helm-repo-2023-01-08`), and mosip-config from
//! the git fixture (`shared/fixtures/git`) on a file server. The bundler carries them
//! (`testkit::NewBundle`), `airgap bundle verify` checks the bundle, `airgap registry serve` serves
//! it over TLS, `airgap install mirrors --format containerd` writes the node's whole mirror
//! configuration, and `airgap install apply --images keep` installs the charts from a plan and
//! site file the test writes.
//! The test and everything it starts run inside a network namespace (`testkit::netns`) whose
//! nftables counter must stay empty.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::images::{
    push_images, push_plain, write_archive, write_layout, write_layout_configured, Files, ImageSpec, Made,
};
use testkit::local_path::{LocalPathProvisioner, StorageClass};
use testkit::netns;
use testkit::standin_images::{config_server_layer, pause_layer, service_layer, CONFIG_SERVER_PORT};
use testkit::{
    run, shared_fixtures, tool, workspace_root, Distribution, DistributionOpts, FileServer, HelmRepo, KubeControlPlane,
    NewBundle, NodeOptions, RealNode, SiteRegistry, SANDBOX_IMAGE,
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
    let bundle = bundle_create(&spec, t.path());
    run(Command::new(AIRGAP).args(["bundle", "verify"]).arg(&bundle)).unwrap();

    // The node, with an empty certs.d until the registry is up.
    let plane = KubeControlPlane::start().unwrap();
    let certs_d = t.path().join("certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
        .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));

    // The site registry, on the node's pod network so that containerd and the pods reach it; the
    // node's mirror configuration is what `airgap install mirrors` writes, and nothing else.
    let registry = serve(&bundle, node.host_ip(), t.path());
    registry.install_mirrors(&certs_d).unwrap();
    for host in ["docker.io", "registry.k8s.io"] {
        assert!(certs_d.join(host).join("hosts.toml").is_file(), "install mirrors wrote no {host}/hosts.toml");
    }

    // Install the slice with the plan; masterdata's component stays off for now.
    let plan = write_plan(&install, &node);
    let site = Site { path: install.join("site.yaml"), registry: &registry };
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
        assert!(!image.contains(registry.address()), "{release} keeps its image's original name: {image}");
    }

    // Every image, the sandbox's included, came through the site registry: its manifest and
    // every blob it names.
    let log = registry.access_log();
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
    let log = registry.access_log();
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

/// The bundler's bundle of `spec` in `dir/bundle` (cache `dir/cache`), images of charts
/// discovered with helm 3.8.2.
fn bundle_create(spec: &Path, dir: &Path) -> PathBuf {
    let bundle = NewBundle::new(spec, &dir.join("bundle"), &dir.join("cache")).helm(&tool("helm-3.8.2"));
    bundle.create().unwrap()
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
struct Site<'a> {
    path: PathBuf,
    registry: &'a SiteRegistry,
}

impl Site<'_> {
    fn write(&self, plane: &KubeControlPlane, masterdata: bool) {
        let site = json!({
            "installation_name": "real-node",
            "registry": {"address": self.registry.address(), "ca_cert": self.registry.ca()},
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
            .args(["--registry", self.registry.url(), "--ca-file"])
            .arg(self.registry.ca().unwrap())
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

/// `airgap registry serve` of the bundle on `ip` with a site CA generated in `dir/tls`, its
/// access log in `dir/access.log`.
fn serve(bundle: &Path, ip: &str, dir: &Path) -> SiteRegistry {
    let serve = SiteRegistry::bundles([bundle]).ip(ip).tls(&dir.join("tls")).access_log(&dir.join("access.log"));
    serve.airgap(Path::new(AIRGAP)).start().unwrap()
}

/// A `certs.d` in `dir` sending docker.io and registry.k8s.io to a plain upstream, for tests of
/// the nodes themselves (the installer's own mirrors are `SiteRegistry::install_mirrors`').
fn plain_mirrors(dir: &Path, upstream: &Distribution) -> PathBuf {
    let certs_d = dir.join("certs.d");
    for host in ["docker.io", "registry.k8s.io"] {
        fs::create_dir_all(certs_d.join(host)).unwrap();
        let toml = format!(
            "server = \"https://{host}\"\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            upstream.host_port()
        );
        fs::write(certs_d.join(host).join("hosts.toml"), toml).unwrap();
    }
    certs_d
}

/// Several real nodes at once, of two control planes: each node has its own pod subnet, bridge,
/// cgroup root and name; pods of both planes run the stand-in program (`testkit::standin`) with
/// what the manifests' probes ask baked in, and become Ready only because it answers them; claims
/// of a ReadWriteOnce and a ReadWriteMany class bind through the real local-path provisioner and
/// are mounted by the kubelets; a pod reaches its API server as the `kubernetes` Service.
#[test]
fn two_clusters_of_real_nodes_run_stand_ins_and_mount_provisioned_volumes() {
    let Some(leaks) = netns::isolated("two_clusters_of_real_nodes_run_stand_ins_and_mount_provisioned_volumes") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let manifests = multi_node_manifests();
    let docs: Vec<Value> = manifests.iter().map(|d| serde_json::to_value(d).unwrap()).collect();

    // Upstream: the stand-in of each image the manifests name, the pause image, and busybox for
    // the pod that calls the API server; plain distribution, mirrored for both hosts.
    let behaviours = testkit::standin::behaviours(&docs, &[]).unwrap();
    let layout = t.path().join("layout");
    let mut images: Vec<Made> = behaviours
        .iter()
        .filter(|(image, _)| image.as_str() != BUSYBOX_IMAGE)
        .map(|(image, b)| {
            let (layers, config) = testkit::standin::image(b).unwrap();
            (image.clone(), layers, config)
        })
        .collect();
    images.push((SANDBOX_IMAGE.into(), vec![pause_layer().unwrap()], json!({"Entrypoint": ["/bin/sh"]})));
    images.push((BUSYBOX_IMAGE.into(), vec![busybox_layer()], json!({"Entrypoint": ["/bin/sh"]})));
    let upstream = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
    push_images(&layout, &images, |r| format!("{}/{}", upstream.host_port(), repository_and_tag(r))).unwrap();
    let certs_d = plain_mirrors(t.path(), &upstream);

    let planes = [KubeControlPlane::start_for_real_nodes().unwrap(), KubeControlPlane::start_for_real_nodes().unwrap()];
    let node = |plane: &KubeControlPlane, name: &str| {
        RealNode::start(plane, NodeOptions { hosts_dir: certs_d.clone(), name: name.into(), ..NodeOptions::default() })
            .unwrap_or_else(|e| panic!("node {name} did not start: {e:#}"))
    };
    let nodes = [node(&planes[0], "a-0"), node(&planes[0], "a-1"), node(&planes[1], "b-0")];
    let subnets: BTreeSet<&str> = nodes.iter().map(|n| n.pod_subnet()).collect();
    assert_eq!(subnets.len(), nodes.len(), "every node has its own pod subnet");

    let helper = LocalPathProvisioner::helper_image(t.path()).unwrap();
    for n in &nodes {
        n.import_image(&helper).unwrap();
    }
    let classes = [
        StorageClass { name: "local", shared: false, reclaim: "Delete", default: true },
        StorageClass { name: "shared", shared: true, reclaim: "Retain", default: false },
    ];
    let _provisioners = planes.each_ref().map(|p| LocalPathProvisioner::start(p, &classes).unwrap());

    for plane in &planes {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": manifests});
        let path = t.path().join("manifests.json");
        fs::write(&path, list.to_string()).unwrap();
        plane.kubectl(&["apply", "-f", path.to_str().unwrap()]).unwrap();
    }
    for (i, plane) in planes.iter().enumerate() {
        let waited = plane.kubectl(&["wait", "--for=condition=Available", "deployment/web", "--timeout=240s"]);
        let job = plane.kubectl(&["wait", "--for=condition=Complete", "job/api", "--timeout=120s"]);
        if waited.is_err() || job.is_err() {
            let logs: Vec<String> = nodes.iter().map(|n| n.logs()).collect();
            panic!(
                "cluster {i}: {waited:?} {job:?}\n{}\n{}",
                plane.kubectl(&["describe", "pods,pvc"]).unwrap_or_default(),
                logs.join("\n")
            );
        }
    }

    // Each plane's pods ran on its own nodes, and the web pods answer their probe path from
    // the stand-in, and nothing else.
    for (plane, names) in [(&planes[0], &["a-0", "a-1"][..]), (&planes[1], &["b-0"][..])] {
        let pods = pods(plane);
        let web: Vec<&Value> =
            pods["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["labels"]["app"] == "web").collect();
        assert_eq!(web.len(), 2, "{pods}");
        for p in &web {
            assert!(names.contains(&p["spec"]["nodeName"].as_str().unwrap()), "{}", p["spec"]["nodeName"]);
            let ip = p["status"]["podIP"].as_str().unwrap();
            let ok = run(Command::new("curl").args(["-fsS", "--max-time", "5", &format!("http://{ip}:8080/ready")]));
            assert!(ok.unwrap().contains("UP"));
            let other = run(Command::new("curl").args(["-fsS", "--max-time", "5", &format!("http://{ip}:8080/other")]));
            assert!(other.is_err(), "the stand-in answers only its probes' paths");
        }
        if names.len() == 2 {
            let on: BTreeSet<&str> = web.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
            assert_eq!(on.len(), 2, "the spread constraint put one web pod on each node");
        }
        // Both claims bound to volumes of the provisioner, with the directories it made.
        let pvs: Value = serde_json::from_str(&plane.kubectl(&["get", "pv", "-o", "json"]).unwrap()).unwrap();
        let mut bound = BTreeSet::new();
        for pv in pvs["items"].as_array().unwrap() {
            assert_eq!(pv["status"]["phase"], "Bound", "{pv}");
            let path = pv["spec"]["hostPath"]["path"].as_str().or(pv["spec"]["local"]["path"].as_str()).unwrap();
            assert!(Path::new(path).is_dir(), "{path} was made by the provisioner's helper");
            bound.insert(pv["spec"]["claimRef"]["name"].as_str().unwrap().to_string());
        }
        assert_eq!(bound, BTreeSet::from(["data".to_string(), "shared".to_string()]));
    }
    leaks.assert_none();
}

const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:1.35";

/// Debian's static busybox as `/bin/busybox` and `/bin/sh`, run by a pod's command.
fn busybox_layer() -> Files {
    let busybox = fs::read("/bin/busybox").unwrap();
    Files::from([("bin/busybox".to_string(), busybox.clone()), ("bin/sh".to_string(), busybox)])
}

/// A Deployment of two stand-ins spread over the nodes, probed on a named port and mounting a
/// ReadWriteOnce and a ReadWriteMany claim; a Job that calls the API server from a pod.
fn multi_node_manifests() -> Vec<Value> {
    let claim = |name: &str, class: &str, mode: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
               "spec": {"storageClassName": class, "accessModes": [mode], "resources": {"requests": {"storage": "10Mi"}}}})
    };
    vec![
        claim("data", "local", "ReadWriteOnce"),
        claim("shared", "shared", "ReadWriteMany"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}],
                    "initContainers": [{"name": "wait", "image": "docker.io/testkit/web:1", "args": ["--init"]}],
                    "containers": [{
                        "name": "web", "image": "docker.io/testkit/web:1",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
                        "livenessProbe": {"exec": {"command": ["/usr/bin/check", "--live"]}},
                        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                    }],
                    "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}],
                },
            }},
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "data", "namespace": "default"},
            "spec": {"containers": [{"name": "data", "image": "docker.io/testkit/web:1",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
        }),
        json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "api", "namespace": "default"},
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "api", "image": BUSYBOX_IMAGE,
                "command": ["/bin/sh", "-c", "exec /bin/busybox wget -q -O - --no-check-certificate https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version"],
            }]}}},
        }),
    ]
}

/// The sample plan (manifests/sample/plan.yaml) on a real node, broken one thing at a time: each
/// install fails naming the pod and what the kubelet (or, for a claim, the scheduler and the
/// provisioner) says. The spec is manifests/sample/bundle.yaml; its tool archive and git
/// repository come from `airgap demo`'s upstream (the bytes the spec pins), its images are
/// stand-ins, and its chart `hello` 0.1.0 is a stand-in the test writes ([`HELLO_CHART`]): the
/// demo's chart runs nothing a kubelet can check.
#[test]
fn the_sample_plan_fails_on_a_real_node_naming_the_pod_and_the_kubelets_reason() {
    let Some(leaks) = netns::isolated("the_sample_plan_fails_on_a_real_node_naming_the_pod_and_the_kubelets_reason")
    else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let sample = SampleUpstream::start(t.path());
    let bundle = bundle_create(&sample.spec, t.path());

    let pause = t.path().join("pause.tar");
    let pause_layers = [pause_layer().unwrap()];
    let image = ImageSpec { reference: SANDBOX_IMAGE, platforms: &["linux/amd64"], shared_layers: &pause_layers };
    write_archive(&pause, &[image]).unwrap();
    let helper = LocalPathProvisioner::helper_image(t.path()).unwrap();

    // Working, then each break: what the failure must say besides the pod's name. The site's one
    // domain is `localhost`: the installer's preflight looks domains up, and a name that only DNS
    // knows would be a lookup leaving the namespace.
    let cases: [(&str, &str, &str, &[&str]); 5] = [
        ("works", "", "", &[]),
        (
            "a missing Secret key",
            "        secret: {name: hello-token, namespace: hello, data: {token: stand-in}}",
            "        secret: {name: hello-token, namespace: hello, data: {tokn: stand-in}}",
            &["CreateContainerConfigError", "couldn't find key token in Secret hello/hello-token"],
        ),
        (
            "an unmountable volume",
            "cacheType: DirectoryOrCreate",
            "cacheType: Directory",
            &["FailedMount", "hostPath type check failed", "is not a directory"],
        ),
        (
            "a probe on a wrong port",
            "probePort: http",
            "probePort: \"9999\"",
            &["Unhealthy", "Readiness probe failed", ":9999/healthz"],
        ),
        (
            "an unbound claim",
            "accessMode: ReadWriteOnce",
            "accessMode: ReadWriteMany",
            &["claim hello-hello-data Pending", "ProvisioningFailed", "only supports ReadWriteOnce"],
        ),
    ];
    // The cases run side by side, each on a control plane and real node of its own: most of
    // their time is waits.
    let run_case = |(case, from, to, expected): (&str, &str, &str, &[&str])| {
        eprintln!("--- the sample plan on a real node: {case}");
        let plane = KubeControlPlane::start_for_real_nodes().unwrap();
        let certs_d = t.path().join(format!("certs.d-{}", case.replace(' ', "-")));
        fs::create_dir_all(&certs_d).unwrap();
        let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
            .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));
        // The sample bundle carries no sandbox image: the node has it, as a distribution's nodes do.
        node.import_image(&pause).unwrap();
        node.import_image(&helper).unwrap();
        let _volumes = LocalPathProvisioner::start(
            &plane,
            &[StorageClass { name: "local", shared: false, reclaim: "Delete", default: true }],
        )
        .unwrap();
        let dir = t.path().join(case.replace(' ', "-"));
        fs::create_dir_all(&dir).unwrap();
        let registry = serve(&bundle, node.host_ip(), &dir);
        registry.install_mirrors(&certs_d).unwrap();
        let plan = sample_plan_broken(&dir, &sample.spec, from, to);
        let site = dir.join("site.yaml");
        let text = format!(
            "installation_name: sample-real\nregistry: {{address: '{}', ca_cert: {}}}\nclusters:\n  sample: {{kubeconfig: {}}}\ndomains:\n  greeting: {{host: localhost, lb: internal}}\n",
            registry.address(),
            registry.ca().unwrap().display(),
            plane.kubeconfig().display()
        );
        fs::write(&site, text).unwrap();
        let out = Command::new(AIRGAP)
            .args(["install", "apply", "--site"])
            .arg(&site)
            .arg("--plan")
            .arg(&plan)
            .args(["--registry", registry.url(), "--ca-file"])
            .arg(registry.ca().unwrap())
            .args(["--images", "keep", "--helm"])
            .arg(tool("helm-3.8.2"))
            // The plan check refuses some of these breaks before anything is applied (the check's
            // own tests show it); here the kubelet must be the one that finds them.
            .args(if expected.is_empty() { &[][..] } else { &["--no-check"][..] })
            .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("--- {case}:\n{err}");
        if expected.is_empty() {
            assert!(out.status.success(), "the working sample plan failed on a real node:\n{err}\n{}", node.logs());
            return;
        }
        assert!(!out.status.success(), "{case}: the install succeeded");
        let failed = err.lines().find(|l| l.contains("is not ready after")).unwrap_or_else(|| {
            panic!("{case}: no wait failure in the installer's output:\n{err}\n{}", describe_pods(&plane))
        });
        assert!(failed.contains("pod hello-hello-"), "{case}: the failure names the pod: {failed}");
        for word in expected {
            assert!(failed.contains(word), "{case}: the failure says {word:?}: {failed}");
        }
    };
    std::thread::scope(|s| {
        let running: Vec<_> = cases.into_iter().map(|case| (case.0, s.spawn(move || run_case(case)))).collect();
        for (case, handle) in running {
            assert!(handle.join().is_ok(), "the case {case:?} failed: see its panic above");
        }
    });
    leaks.assert_none();
}

/// The stand-in of the sample spec's chart `hello` 0.1.0: the demo chart's values (`image`,
/// `toolbox`, `replicaCount`) and post-install hook, plus what a kubelet checks, each working
/// unless the plan's values break it: a Secret key read into the environment, a hostPath volume,
/// a readiness probe on the container's named port, and a claim of the default class.
const HELLO_CHART: &[(&str, &str)] = &[
    ("hello/Chart.yaml", "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.0\"\ndescription: stand-in for the airgap demo's chart, with what a kubelet checks\n"),
    ("hello/values.yaml", "replicaCount: 1\nimage: docker.io/airgap/hello:1.0\ntoolbox: quay.io/airgap/toolbox:2.1\nprobePort: http\ncachePath: /var/cache/hello\ncacheType: DirectoryOrCreate\naccessMode: ReadWriteOnce\n"),
    ("hello/templates/deployment.yaml", r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-hello
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
        - name: hello
          image: {{ .Values.image }}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: {{ .Values.probePort }}}
            periodSeconds: 2
          env:
            - name: HELLO_TOKEN
              valueFrom: {secretKeyRef: {name: hello-token, key: token}}
          volumeMounts:
            - {name: cache, mountPath: /cache}
            - {name: data, mountPath: /data}
      volumes:
        - name: cache
          hostPath: {path: {{ .Values.cachePath }}, type: {{ .Values.cacheType }}}
        - name: data
          persistentVolumeClaim: {claimName: {{ .Release.Name }}-hello-data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .Release.Name }}-hello-data
spec:
  accessModes: [{{ .Values.accessMode }}]
  resources: {requests: {storage: 10Mi}}
"#),
    ("hello/templates/welcome-hook.yaml", r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-welcome
  annotations: {"helm.sh/hook": post-install, "helm.sh/hook-delete-policy": hook-succeeded}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: welcome, image: {{ .Values.toolbox }}, args: [welcome]}]
"#),
];

/// The sample spec's upstream: the demo's own (a registry serving what `airgap demo` generates:
/// the tool archive and git repository at the bytes the spec pins), a distribution holding the
/// stand-in images, and a file server with [`HELLO_CHART`].
struct SampleUpstream {
    spec: PathBuf,
    _demo_registry: SiteRegistry,
    _images: Distribution,
    _charts: FileServer,
}

impl SampleUpstream {
    fn start(dir: &Path) -> SampleUpstream {
        // The demo writes its upstream as a bundle (and serves it, with the sample bundle, until
        // killed): served again here, it stands for the *.airgap.example hosts.
        let demo_dir = dir.join("demo");
        let mut demo = Command::new(AIRGAP)
            .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(&demo_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(demo.stdout.take().unwrap()));
        assert!(lines.any(|l| l.is_ok_and(|l| l.starts_with("REGISTRY "))), "the demo stopped before serving");
        let _ = demo.kill();
        let _ = demo.wait();
        let demo_registry = SiteRegistry::bundles([demo_dir.join("upstream/bundle")]).airgap(Path::new(AIRGAP));
        let demo_registry = demo_registry.start().unwrap();
        let base = demo_registry.url();

        // Stand-ins behave as the chart's baseline rendering asks (the plan may break it).
        let chart_dir = dir.join("chart-src");
        for (name, text) in HELLO_CHART {
            fs::create_dir_all(chart_dir.join(name).parent().unwrap()).unwrap();
            fs::write(chart_dir.join(name), text).unwrap();
        }
        let rendered =
            run(Command::new(tool("helm-3.8.2")).args(["template", "hello"]).arg(chart_dir.join("hello"))).unwrap();
        let docs: Vec<Value> = rendered
            .split("\n---\n")
            .filter_map(|d| serde_yaml_ng::from_str::<Value>(d).ok())
            .filter(Value::is_object)
            .collect();
        let behaviours = testkit::standin::behaviours(&docs, &[]).unwrap();
        let layout = dir.join("sample-layout");
        let images: Vec<(&str, &[&str], Vec<Files>, Value)> = [
            ("docker.io/airgap/hello:1.0", &["linux/amd64", "linux/arm64"][..]),
            ("quay.io/airgap/toolbox:2.1", &["linux/amd64"][..]),
        ]
        .into_iter()
        .map(|(image, platforms)| {
            let (layers, config) = testkit::standin::image(&behaviours[image]).unwrap();
            (image, platforms, layers, config)
        })
        .collect();
        let specs: Vec<ImageSpec> = images
            .iter()
            .map(|(r, platforms, layers, _)| ImageSpec { reference: r, platforms, shared_layers: layers })
            .collect();
        let configured: Vec<(&ImageSpec, &Value)> = specs.iter().zip(images.iter().map(|i| &i.3)).collect();
        write_layout_configured(&layout, &configured);
        let registry = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
        for (reference, ..) in &images {
            let dest = format!("{}/{}", registry.host_port(), repository_and_tag(reference));
            run(Command::new(tool("skopeo")).args([
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
                &format!("oci:{}:{reference}", layout.display()),
                &format!("docker://{dest}"),
            ]))
            .unwrap();
        }

        let www = dir.join("charts-www/stable");
        fs::create_dir_all(&www).unwrap();
        run(Command::new(tool("helm-3.8.2")).args(["package", "-d"]).arg(&www).arg(chart_dir.join("hello"))).unwrap();
        run(Command::new(tool("helm-3.8.2"))
            .args(["repo", "index", "--url", "https://charts.airgap.example/stable"])
            .arg(&www))
        .unwrap();
        let charts = FileServer::start(dir.join("charts-www")).unwrap();

        let sample = workspace_root().join("manifests/sample/bundle.yaml");
        let mut spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&fs::read_to_string(&sample).unwrap()).unwrap();
        let images_url = format!("http://{}", registry.host_port());
        let mirrors = json!({
            "docker.io": images_url,
            "quay.io": images_url,
            "charts.airgap.example": charts.url(),
            "downloads.airgap.example": format!("{base}/files/downloads.airgap.example"),
            "git.airgap.example": format!("{base}/git/git.airgap.example"),
        });
        spec["mirrors"] = serde_yaml_ng::to_value(mirrors).unwrap();
        let path = dir.join("bundle.yaml");
        fs::write(&path, serde_yaml_ng::to_string(&spec).unwrap()).unwrap();
        SampleUpstream { spec: path, _demo_registry: demo_registry, _images: registry, _charts: charts }
    }
}

/// The sample plan for a real node, its spec at `spec`: a Secret the chart reads, one replica,
/// a wait of 60 s rather than 300, the hostPath volume in `dir`, and `from` replaced by `to` (the
/// one thing broken).
fn sample_plan_broken(dir: &Path, spec: &Path, from: &str, to: &str) -> PathBuf {
    let text = fs::read_to_string(workspace_root().join("manifests/sample/plan.yaml")).unwrap();
    let anchor = "        namespace: {name: hello, labels: {istio-injection: disabled}}\n";
    let secret = "      - id: hello-token\n        after: [ns-hello]\n        secret: {name: hello-token, namespace: hello, data: {token: stand-in}}\n";
    let edits = [
        ("bundle: bundle.yaml", format!("bundle: {}", spec.display())),
        (anchor, format!("{anchor}{secret}")),
        ("after: [settings]\n        copy:", "after: [settings, hello-token]\n        copy:".to_string()),
        (
            "replicaCount: \"2\"",
            format!(
                "replicaCount: \"1\"\n            probePort: http\n            cachePath: {}\n            cacheType: DirectoryOrCreate\n            accessMode: ReadWriteOnce",
                dir.join("cache").display()
            ),
        ),
        ("timeout: 300", "timeout: 60".to_string()),
    ];
    let mut plan = text;
    for (a, b) in edits {
        assert!(plan.contains(a), "the sample plan has {a:?}");
        plan = plan.replacen(a, &b, 1);
    }
    if !from.is_empty() {
        assert!(plan.contains(from), "the plan has {from:?}");
        plan = plan.replacen(from, to, 1);
    }
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("plan.yaml");
    fs::write(&path, plan).unwrap();
    path
}

/// Istio on a real node with the real istiod: `pilot-discovery` (built by `install.sh istioctl`
/// from the same Istio module as istioctl) is carried as `docker.io/istio/pilot:1.15.0`, and
/// `istioctl manifest generate` (profile minimal) is applied. istiod reaches the API server as the
/// `kubernetes` Service, patches its injection webhook's CA, and the API server calls the webhook at
/// istiod's pod. A pod created in an injected namespace gets `istio-init` and `istio-proxy` from the
/// real webhook; proxyv2 is a stand-in for what the injected containers ask (derived from a
/// server-side dry run of the pod): `istio-init` runs to completion without touching iptables (a
/// proxy that does not proxy must not be where traffic is redirected), `istio-proxy` answers
/// 15021 `/healthz/ready` and, as pilot-agent does, the app's probes that Istio rewrote to 15020.
#[test]
fn the_real_istiod_injects_sidecars_that_become_ready_on_a_real_node() {
    let Some(leaks) = netns::isolated("the_real_istiod_injects_sidecars_that_become_ready_on_a_real_node") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let upstream = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
    let push = |reference: &str, layers: Vec<Files>, config: Value| {
        let layout = t.path().join(format!("layout-{}", reference.replace(['/', ':'], "_")));
        let spec = ImageSpec { reference, platforms: &["linux/amd64"], shared_layers: &layers };
        write_layout_configured(&layout, &[(&spec, &config)]);
        push_plain(&layout, reference, &format!("{}/{}", upstream.host_port(), repository_and_tag(reference))).unwrap();
    };
    push(SANDBOX_IMAGE, vec![pause_layer().unwrap()], json!({"Entrypoint": ["/bin/sh"]}));
    let pilot = fs::read(tool("pilot-discovery")).unwrap();
    push(
        ISTIOD_IMAGE,
        vec![Files::from([("usr/local/bin/pilot-discovery".to_string(), pilot)])],
        json!({"Entrypoint": ["/usr/local/bin/pilot-discovery"], "User": "1337"}),
    );
    let certs_d = plain_mirrors(t.path(), &upstream);
    let plane = KubeControlPlane::start_for_real_nodes().unwrap();
    let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
        .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));

    let istio = run(Command::new(tool("istioctl")).args([
        "manifest",
        "generate",
        "--set",
        "profile=minimal",
        "--set",
        "hub=docker.io/istio",
        "--set",
        "tag=1.15.0",
        "--set",
        "values.pilot.autoscaleEnabled=false",
        "--set",
        "values.pilot.resources.requests.cpu=10m",
        "--set",
        "values.pilot.resources.requests.memory=64Mi",
    ]))
    .unwrap();
    let manifest = t.path().join("istio.yaml");
    fs::write(&manifest, istio).unwrap();
    plane.kubectl(&["create", "namespace", "istio-system"]).unwrap();
    plane.kubectl(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]).unwrap();
    let istiod = plane.kubectl(&[
        "-n",
        "istio-system",
        "wait",
        "--for=condition=Available",
        "deployment/istiod",
        "--timeout=300s",
    ]);
    assert!(istiod.is_ok(), "istiod is not available: {istiod:?}\n{}\n{}", describe_pods(&plane), node.logs());

    plane.kubectl(&["create", "namespace", "apps"]).unwrap();
    plane.kubectl(&["label", "namespace", "apps", "istio-injection=enabled"]).unwrap();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "apps"},
        "spec": {"containers": [{
            "name": "app", "image": APP_IMAGE, "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
        }]},
    });
    let pod_file = t.path().join("pod.json");
    fs::write(&pod_file, pod.to_string()).unwrap();
    // The webhook answers a dry run as it will answer the pod: what the sidecar images must do.
    let injected: Value = serde_json::from_str(
        &plane
            .kubectl(&["create", "--dry-run=server", "-o", "json", "-f", pod_file.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("the dry run through the injection webhook failed: {e:#}")),
    )
    .unwrap();
    let names = |list: &str| -> Vec<String> {
        injected["spec"][list].as_array().into_iter().flatten().map(|c| c["name"].as_str().unwrap().into()).collect()
    };
    assert_eq!(names("initContainers"), ["istio-init"], "istiod injected its init container");
    assert!(names("containers").contains(&"istio-proxy".to_string()), "istiod injected the sidecar");
    let app_probe = injected["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .map(|c| c["readinessProbe"]["httpGet"].clone())
        .unwrap();
    assert_eq!(app_probe["port"], 15020, "Istio rewrote the app's probe to the sidecar: {app_probe}");

    // The app behaves as its own spec says; the sidecar's images as the injected containers say.
    let app = testkit::standin::behaviours(std::slice::from_ref(&pod), &[]).unwrap();
    let mut sidecar_pod = injected.clone();
    for list in ["initContainers", "containers"] {
        let kept: Vec<Value> = sidecar_pod["spec"][list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["image"].as_str().is_some_and(|i| i.contains("/proxyv2:")))
            .cloned()
            .collect();
        sidecar_pod["spec"][list] = Value::Array(kept);
    }
    let sidecar = testkit::standin::behaviours(&[sidecar_pod], &[]).unwrap();
    assert_eq!(sidecar.len(), 1, "one proxy image: {:?}", sidecar.keys());
    for (image, b) in app.iter().chain(&sidecar) {
        let (layers, config) = testkit::standin::image(b).unwrap();
        push(image, layers, config);
    }
    plane.kubectl(&["create", "-f", pod_file.to_str().unwrap()]).unwrap();
    let ready = plane.kubectl(&["-n", "apps", "wait", "--for=condition=Ready", "pod/app", "--timeout=180s"]);
    assert!(ready.is_ok(), "the injected pod is not ready: {ready:?}\n{}\n{}", describe_pods(&plane), node.logs());
    let status = plane
        .kubectl(&[
            "-n",
            "apps",
            "get",
            "pod",
            "app",
            "-o",
            "jsonpath={.metadata.annotations.sidecar\\.istio\\.io/status}",
        ])
        .unwrap();
    assert!(status.contains("istio-proxy"), "the pod records its injection: {status}");
    leaks.assert_none();
}

const ISTIOD_IMAGE: &str = "docker.io/istio/pilot:1.15.0";
const APP_IMAGE: &str = "docker.io/testkit/app:1";
