//! Issue 20: the whole MOSIP 1.2.0.1-B2 plan (`manifests/mosip-1.2.0.1-B2/plan.yaml`), both
//! clusters and every step, installed by `airgap install apply --images keep` onto real nodes
//! (containerd + kubelet, `testkit::RealNode`) that pull every image through the site registry
//! under its original name, inside a network namespace with no way out (`testkit::netns`).
//!
//! Upstream is `testkit::mosip_upstream` (the real charts, mosip-config, the k8s-infra and
//! mosip-infra files; stand-ins for the images), plus the nodes' sandbox image. The images have to
//! behave as the rendered manifests ask, and the manifests come from rendering the plan, which
//! needs a bundle served: so the test bundles twice. The first bundle carries the upstream's
//! generated images; `airgap install plan --manifests` renders every step of both clusters from
//! it with the test's site file; `testkit::standin` derives from those objects what each image
//! must do (ports, probe paths, webhooks, runs to completion, commands; Istio's sidecar from the
//! same objects injected offline by `istioctl kube-inject` with the rendered injector's
//! configuration); those stand-ins replace the upstream's images under the same names, and the
//! second bundle, built from the same spec with the same download cache (charts, files and git
//! are fetched once), is the one installed. Real images stay real: istiod is the real
//! pilot-discovery, and kube-webhook-certgen's stand-in does what that tool does (it makes the
//! admission Secrets other pods mount and patches the webhooks' CA), since nothing else would.
//!
//! The test site file is `site.example.yaml` with only what a test machine must change: the
//! registry's address and CA, a CA for the domains, the clusters' kubeconfigs, `lab.request_scale`
//! and `lab.probe_delay_scale`, and the two components whose steps call Elasticsearch, Kibana and
//! Rancher over HTTP (which no stand-in serves: `install_http_steps.rs` tests them against a
//! recording double). The site's
//! domains and storage class names stay as the example has them: the domains resolve to a node's
//! address through the namespace's own hosts file (the installer's preflight looks each one up),
//! and the classes (EKS's `gp2`, which the test's clusters come with as EKS's do; the plan's
//! `gp2-retain` and the site's `efs-sc`) are backed by Rancher's local-path-provisioner answering
//! to the names the Kubernetes controller manager hands their claims to: `ebs.csi.aws.com` for the
//! in-tree `kubernetes.io/aws-ebs`, and `efs.csi.aws.com`.
//!
//! One node per cluster (the MOSIP cluster's allowing 250 pods): on one machine more kubelets only
//! add work, and the pods of a cluster's nodes would share one network namespace, where the
//! node exporter's host port can be bound once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::ToSocketAddrs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::images::{Files, Made};
use testkit::local_path::{LocalPathProvisioner, Served};
use testkit::mosip_upstream::{canonical_image, mosip_spec, MosipUpstream};
use testkit::standin::{self, Behaviour};
use testkit::standin_images::pause_layer;
use testkit::{
    free_port, netns, run, tool, workspace_root, KubeControlPlane, NewBundle, NodeOptions, RealNode, SiteRegistry,
    TestCa, SANDBOX_IMAGE,
};

/// The binary under test, copied into the test's directory when it starts: the installer runs
/// itself as helm's post-renderer, and a build of the workspace beside this long test may replace
/// `target/debug/airgap` meanwhile.
static AIRGAP: OnceLock<PathBuf> = OnceLock::new();
const TEST: &str = "the_whole_mosip_plan_installs_on_real_nodes_of_both_clusters";
const CLUSTERS: [&str; 2] = ["observation", "mosip"];
/// Carried as Istio's pilot image, the real istiod: `pilot-discovery` of `install.sh istioctl`.
const ISTIOD_IMAGE: &str = "docker.io/istio/pilot:1.15.0";
/// The MOSIP cluster's requests add up to about 25 CPUs with the sidecars; one 2-core node holds
/// them at 2 %.
const REQUEST_SCALE: f64 = 0.02;
/// The stand-ins answer as soon as they start, so the charts' probe delays (sized for JVMs:
/// regclient's startup probe waits 420 s, then probes each minute) are shortened twentyfold.
const PROBE_DELAY_SCALE: f64 = 0.05;
/// The first apply of the MOSIP cluster is killed while this step runs (after its helm release
/// is sent, during its wait), and the next apply must finish the install.
const KILLED_DURING: &str = "config-server";

#[test]
fn the_whole_mosip_plan_installs_on_real_nodes_of_both_clusters() {
    let Some(mut leaks) = netns::isolated(TEST) else { return };
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("airgap");
    fs::copy(env!("CARGO_BIN_EXE_airgap"), &copy).unwrap();
    AIRGAP.set(copy).unwrap();
    let cache = t.path().join("cache");

    // Upstream and the first bundle, while the control planes start.
    let (_upstream, spec, bundle1, planes) = thread::scope(|s| {
        let planes = [s.spawn(KubeControlPlane::start_for_real_nodes), s.spawn(KubeControlPlane::start_for_real_nodes)];
        let upstream = MosipUpstream::start(&mosip_spec()).expect("the MOSIP upstream");
        let spec = spec_with_sandbox(&upstream, t.path());
        push_images(
            &[(SANDBOX_IMAGE.to_string(), vec![pause_layer().unwrap()], json!({"Entrypoint": ["/bin/sh"]}))],
            &spec,
            t.path(),
        );
        let bundle1 = bundle_create(&spec.path, &t.path().join("bundle1"), &cache);
        let planes = planes.map(|p| p.join().unwrap().expect("a control plane for real nodes"));
        (upstream, spec, bundle1, planes)
    });
    eprintln!("upstream, first bundle and control planes: {:.0?}", started.elapsed());

    // One node per cluster; their mirrors come once the registry serves the second bundle.
    let certs_d = t.path().join("certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    let nodes = [("observation", None), ("mosip", Some(250))].map(|(name, max_pods)| {
        let plane = &planes[CLUSTERS.iter().position(|c| *c == name).unwrap()];
        let opts = NodeOptions { hosts_dir: certs_d.clone(), name: format!("{name}-0"), max_pods };
        RealNode::start(plane, opts).unwrap_or_else(|e| panic!("node {name}-0 did not start: {e:#}"))
    });
    let host = nodes[0].host_ip().to_string();
    let site_domains = domains();
    leaks.resolve_locally(&site_domains.iter().map(String::as_str).collect::<Vec<_>>(), &host).unwrap();
    let helper = LocalPathProvisioner::helper_image(t.path()).unwrap();
    for n in &nodes {
        n.import_image(&helper).unwrap();
    }
    let _storage: Vec<LocalPathProvisioner> = planes.iter().flat_map(storage).collect();

    // The site file and the rendered manifests of the first bundle.
    let port = free_port();
    let tls = t.path().join("tls");
    let registry = serve(&bundle1, &host, port, &tls, &t.path().join("access-1.log"));
    let site = write_site(t.path(), &registry, &planes);
    let xdg = t.path().join("xdg-cache");
    let manifests = t.path().join("manifests");
    let out =
        installer("plan", &site, &registry, &xdg).args(["--json", "--manifests"]).arg(&manifests).output().unwrap();
    assert!(out.status.success(), "install plan failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rendered = read_manifests(&manifests, &plan);
    let again = installer("plan", &site, &registry, &xdg).arg("--manifests").arg(&manifests).output().unwrap();
    let refused = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && refused.contains("not empty"), "--manifests into a full folder: {refused}");
    eprintln!("install plan --manifests of both clusters: {:.0?}", started.elapsed());

    // The stand-ins, pushed over the upstream's images, and the second bundle.
    let images = stand_ins(&rendered, registry.address(), t.path());
    let layout = push_images(&images, &spec, t.path());
    drop(registry);
    let bundle2 = bundle_create(&spec.path, &t.path().join("bundle2"), &cache);
    let registry = serve(&bundle2, &host, port, &tls, &t.path().join("access-2.log"));
    registry.install_mirrors(&certs_d).unwrap();
    eprintln!("stand-ins, second bundle, mirrors: {:.0?}", started.elapsed());

    // Both clusters at once; the MOSIP cluster's first apply is killed mid-way and run again.
    let observation = Apply::start("observation", &site, &registry, &xdg, None);
    let killed = Apply::start("mosip", &site, &registry, &xdg, Some(KILLED_DURING)).finish();
    assert_eq!(killed.status.signal(), Some(9), "the first apply of mosip was killed during {KILLED_DURING}");
    let resumed = Apply::start("mosip", &site, &registry, &xdg, None).finish();
    let diagnose = || diagnosis(&planes, &nodes);
    assert!(resumed.status.success(), "the second apply of mosip failed\n{}", diagnose());
    let first = resumed.steps.first().map(String::as_str).unwrap_or_default();
    assert!(first.ends_with(" unchanged"), "the re-run resumes rather than starts again: {first}");
    let observation = observation.finish();
    assert!(observation.status.success(), "the apply of observation failed\n{}", diagnose());
    eprintln!("both clusters installed: {:.0?}", started.elapsed());

    for (name, plane) in CLUSTERS.iter().zip(&planes) {
        let node = &nodes[CLUSTERS.iter().position(|c| c == name).unwrap()];
        check_cluster(name, plane, node).unwrap_or_else(|e| panic!("cluster {name}: {e}\n{}", diagnose()));
    }
    check_sidecars(&planes[1]);
    for node in &nodes {
        check_pulls(node, &registry.access_log(), &layout);
    }

    let second = Apply::start("", &site, &registry, &xdg, None).finish();
    assert!(second.status.success(), "the second apply failed\n{}", diagnose());
    let changed: Vec<&String> =
        second.steps.iter().filter(|l| !(l.ends_with(" unchanged") || l.contains(" skipped ("))).collect();
    assert!(!second.steps.is_empty() && changed.is_empty(), "a second apply changes nothing: {changed:#?}");

    leaks.assert_none();
    eprintln!("the whole test: {:.0?}", started.elapsed());
}

/// The site's domains resolve inside the namespace without DNS: a lookup of one reaches nothing
/// outside, and a name the hosts file lacks is counted (when a nameserver is outside loopback).
#[test]
fn site_domains_resolve_inside_the_namespace_without_dns() {
    let Some(mut leaks) = netns::isolated("site_domains_resolve_inside_the_namespace_without_dns") else { return };
    let names = domains();
    leaks.resolve_locally(&names.iter().map(String::as_str).collect::<Vec<_>>(), "10.85.0.1").unwrap();
    for name in &names {
        let found: Vec<_> = (name.as_str(), 443).to_socket_addrs().unwrap().collect();
        assert_eq!(found[0].ip().to_string(), "10.85.0.1", "{name}");
    }
    leaks.assert_none();
    let _ = ("not-in-the-site-file.sandbox.xyz.net", 443).to_socket_addrs();
    if leaks.nameservers().iter().any(|n| !n.starts_with("127.") && n != "::1") {
        assert!(!leaks.read().unwrap().is_empty(), "a lookup that went to DNS was not counted");
    }
}

/// Every domain of `site.example.yaml`, and the Wireguard endpoint.
fn domains() -> Vec<String> {
    let site = site_example();
    let mut names: Vec<String> =
        site["domains"].as_object().unwrap().values().map(|d| d["host"].as_str().unwrap().to_string()).collect();
    names.push(site["wireguard"]["endpoint"].as_str().unwrap().to_string());
    names
}

fn airgap() -> Command {
    Command::new(AIRGAP.get().expect("the test copied the binary under test"))
}

fn site_example() -> Value {
    let path = workspace_root().join("manifests/mosip-1.2.0.1-B2/site.example.yaml");
    serde_yaml_ng::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The spec the test bundles: the upstream's, with the nodes' sandbox image, which the MOSIP spec
/// does not carry (EKS's nodes bring theirs in the machine image).
struct Spec {
    path: PathBuf,
    /// Registry host → the upstream distribution standing in for it.
    mirrors: BTreeMap<String, String>,
}

fn spec_with_sandbox(upstream: &MosipUpstream, dir: &Path) -> Spec {
    let mut doc: Value = serde_yaml_ng::from_str(&fs::read_to_string(upstream.spec()).unwrap()).unwrap();
    doc["images"].as_array_mut().unwrap().push(SANDBOX_IMAGE.into());
    let mirrors = doc["mirrors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(host, url)| (host.clone(), url.as_str().unwrap().to_string()))
        .collect();
    let path = dir.join("bundle.yaml");
    fs::write(&path, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    Spec { path, mirrors }
}

fn bundle_create(spec: &Path, out: &Path, cache: &Path) -> PathBuf {
    let bundle = NewBundle::new(spec, out, cache).helm(&tool("helm-3.8.2"));
    bundle.create().unwrap_or_else(|e| panic!("{e:#}"))
}

/// Writes the images into one layout and pushes each, digests kept, to the upstream registry of
/// its host; returns the layout.
fn push_images(images: &[Made], spec: &Spec, dir: &Path) -> PathBuf {
    let layout = dir.join(format!("layout-{}", images.len()));
    let upstream = |reference: &str| {
        let (host, path) = reference.split_once('/').unwrap();
        format!("{}/{path}", spec.mirrors[host].trim_start_matches("http://"))
    };
    testkit::images::push_images(&layout, images, upstream).unwrap_or_else(|e| panic!("{e:#}"));
    layout
}

/// What each cluster comes with for storage, as EKS's do (the `gp2` class the site names as its
/// default), and provisioners standing in for the EBS and EFS CSI drivers, backing the classes
/// the site file and the plan name.
fn storage(plane: &KubeControlPlane) -> Vec<LocalPathProvisioner> {
    let site = site_example();
    let (default, rwx) =
        (site["storage"]["default_class"].as_str().unwrap(), site["storage"]["rwx_class"].as_str().unwrap());
    let gp2 = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": default, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2", "fsType": "ext4"},
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), gp2.to_string()).unwrap();
    plane.kubectl(&["create", "-f", file.path().to_str().unwrap()]).unwrap();
    let ebs = [Served { name: default, shared: false }, Served { name: "gp2-retain", shared: false }];
    vec![
        LocalPathProvisioner::serve(plane, "ebs.csi.aws.com", &["kubernetes.io/aws-ebs"], &ebs).unwrap(),
        LocalPathProvisioner::serve(plane, "efs.csi.aws.com", &[], &[Served { name: rwx, shared: true }]).unwrap(),
    ]
}

/// `airgap registry serve` of a bundle over TLS on a node's host address, with the site CA kept
/// in `tls` from one serve to the next; its access log in a file.
fn serve(bundle: &Path, ip: &str, port: u16, tls: &Path, log: &Path) -> SiteRegistry {
    let serve = SiteRegistry::bundles([bundle]).ip(ip).port(port).tls(tls).access_log(log);
    serve.airgap(AIRGAP.get().expect("the test copied the binary under test")).start().unwrap()
}

/// site.example.yaml with what a test machine must change (see the module's docs).
fn write_site(dir: &Path, registry: &SiteRegistry, planes: &[KubeControlPlane; 2]) -> PathBuf {
    let mut site = site_example();
    site["registry"] = json!({"address": registry.address(), "ca_cert": registry.ca()});
    let domains_ca = dir.join("domains-ca.pem");
    fs::write(&domains_ca, TestCa::new("domains CA").unwrap().cert_pem()).unwrap();
    site["tls"]["ca_cert"] = json!(domains_ca);
    for (name, plane) in CLUSTERS.iter().zip(planes) {
        site["clusters"][name] = json!({"kubeconfig": plane.kubeconfig()});
    }
    site["lab"] = json!({"request_scale": REQUEST_SCALE, "probe_delay_scale": PROBE_DELAY_SCALE});
    for component in ["logging_setup", "rancher_import"] {
        site["components"][component] = false.into();
    }
    let path = dir.join("site.yaml");
    fs::write(&path, serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    path
}

/// `airgap install VERB` with the test's site file, the MOSIP plan and the real helm and istioctl
/// (the bundle's are stand-ins), images kept under their names.
fn installer(verb: &str, site: &Path, registry: &SiteRegistry, xdg: &Path) -> Command {
    let mut cmd = airgap();
    cmd.args(["install", verb, "--site"])
        .arg(site)
        .arg("--plan")
        .arg(workspace_root().join("manifests/mosip-1.2.0.1-B2/plan.yaml"))
        .args(["--registry", registry.url(), "--ca-file"])
        .arg(registry.ca().unwrap())
        .args(["--images", "keep", "--helm"])
        .arg(tool("helm-3.8.2"))
        .arg("--istioctl")
        .arg(tool("istioctl"))
        .env("XDG_CACHE_HOME", xdg)
        .stdin(Stdio::null());
    cmd
}

/// One step's objects as `--manifests` wrote them.
struct Step {
    cluster: String,
    objects: Vec<Value>,
}

/// Every file `--manifests` wrote, each object given the namespace of its step's release when it
/// names none (helm leaves that to the release). Every step that sends objects has its file.
fn read_manifests(dir: &Path, plan: &Value) -> Vec<Step> {
    let mut steps = Vec::new();
    for cluster in plan["clusters"].as_array().unwrap() {
        let name = cluster["cluster"].as_str().unwrap();
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for e in fs::read_dir(dir.join(name)).unwrap() {
            let path = e.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            files.insert(stem.split_once('-').unwrap().1.to_string(), path);
        }
        for s in cluster["steps"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let summary = s["summary"].as_str().unwrap();
            let runs = s["skipped"].is_null();
            let sends = ["helm release ", "apply ", "istio from ", "namespace ", "configmap ", "secret "];
            if runs && sends.iter().any(|p| summary.starts_with(p)) {
                assert!(files.contains_key(id), "cluster {name}: step {id} ({summary}) has no file");
            }
            let Some(path) = files.get(id) else { continue };
            assert!(runs && !s["objects"].as_array().unwrap().is_empty(), "cluster {name}: step {id} has a file");
            let release_namespace =
                summary.strip_prefix("helm release ").and_then(|r| r.split_once('/')).map(|(ns, _)| ns.to_string());
            let mut objects = yaml_docs(&fs::read_to_string(path).unwrap());
            for o in objects.iter_mut().filter(|o| o["metadata"]["namespace"].is_null()) {
                if let Some(ns) = &release_namespace {
                    o["metadata"]["namespace"] = ns.as_str().into();
                }
            }
            steps.push(Step { cluster: name.to_string(), objects });
        }
    }
    steps
}

fn yaml_docs(text: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut doc = String::new();
    for line in text.lines().chain(["---"]) {
        if line != "---" {
            doc.push_str(line);
            doc.push('\n');
            continue;
        }
        let value: Value = serde_yaml_ng::from_str(&doc).unwrap_or_else(|e| panic!("{e}:\n{doc}"));
        if value.is_object() {
            docs.push(value);
        }
        doc.clear();
    }
    docs
}

/// The stand-in of every image the rendered objects run, with what they ask of it; the real
/// istiod; the sandbox image. Named as the bundle carries them.
fn stand_ins(steps: &[Step], registry_address: &str, dir: &Path) -> Vec<Made> {
    let mut docs: Vec<Value> = steps.iter().flat_map(|s| s.objects.iter().cloned()).collect();
    let mosip: Vec<&Value> = steps.iter().filter(|s| s.cluster == "mosip").flat_map(|s| &s.objects).collect();
    docs.extend(sidecars(&mosip, dir));
    let found = standin::behaviours(&docs, &[ISTIOD_IMAGE]).unwrap_or_else(|e| panic!("deriving the stand-ins: {e:#}"));
    let mut carried: BTreeMap<String, Behaviour> = BTreeMap::new();
    for (image, b) in found {
        let name = image.split_once('@').map_or(image.as_str(), |(n, _)| n);
        let name = canonical_image(name.strip_prefix(&format!("{registry_address}/")).unwrap_or(name));
        carried.entry(name).or_default().merge(b);
    }
    let mut images: Vec<Made> = carried
        .into_iter()
        .map(|(name, mut b)| {
            b.certgen = name.rsplit_once(':').unwrap().0.ends_with("kube-webhook-certgen");
            let (layers, config) = standin::image(&b).unwrap();
            (name, layers, config)
        })
        .collect();
    let pilot = fs::read(tool("pilot-discovery")).unwrap();
    images.push((
        ISTIOD_IMAGE.into(),
        vec![Files::from([("usr/local/bin/pilot-discovery".to_string(), pilot)])],
        json!({"Entrypoint": ["/usr/local/bin/pilot-discovery"], "User": "1337"}),
    ));
    images.push((SANDBOX_IMAGE.into(), vec![pause_layer().unwrap()], json!({"Entrypoint": ["/bin/sh"]})));
    eprintln!("{} stand-in images derived from the rendered objects", images.len() - 2);
    images
}

/// What Istio's injector adds to the pods of the namespaces labelled for it: the MOSIP cluster's
/// workloads there, injected by `istioctl kube-inject` with the rendered injector's template,
/// values and mesh configuration, and only the containers the injection added (the pods' own are
/// derived from the objects as written: the injector rewrites their probes to the sidecar).
fn sidecars(objects: &[&Value], dir: &Path) -> Vec<Value> {
    let configmap = |name: &str| {
        objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap"
                    && o["metadata"]["name"] == name
                    && o["metadata"]["namespace"] == "istio-system"
            })
            .map(|o| o["data"].clone())
            .unwrap_or_else(|| panic!("the istio step renders no ConfigMap istio-system/{name}"))
    };
    let (injector, mesh) = (configmap("istio-sidecar-injector"), configmap("istio"));
    let files = [("config", &injector["config"]), ("values", &injector["values"]), ("mesh", &mesh["mesh"])].map(
        |(name, text)| {
            let path = dir.join(format!("inject-{name}"));
            fs::write(&path, text.as_str().unwrap()).unwrap();
            path
        },
    );
    let injected: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace" && o["metadata"]["labels"]["istio-injection"] == "enabled")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let workloads: Vec<String> = objects
        .iter()
        .filter(|o| {
            ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"]
                .contains(&o["kind"].as_str().unwrap_or(""))
        })
        .filter(|o| o["metadata"]["namespace"].as_str().is_some_and(|n| injected.contains(n)))
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect();
    let input = dir.join("inject-in.yaml");
    fs::write(&input, workloads.join("---\n")).unwrap();
    // `-r default`: the revision a cluster without revisions injects; otherwise kube-inject asks a
    // cluster for it.
    let out = run(Command::new(tool("istioctl"))
        .args(["kube-inject", "-r", "default", "-f"])
        .arg(&input)
        .arg("--injectConfigFile")
        .arg(&files[0])
        .arg("--valuesFile")
        .arg(&files[1])
        .arg("--meshConfigFile")
        .arg(&files[2]))
    .unwrap_or_else(|e| panic!("istioctl kube-inject: {e:#}"));
    let mut pods = Vec::new();
    for mut doc in yaml_docs(&out) {
        let template = if doc["kind"] == "CronJob" { "/spec/jobTemplate/spec/template" } else { "/spec/template" };
        let template = if doc["kind"] == "Pod" { "" } else { template };
        let Some(pod) = doc.pointer_mut(template) else { continue };
        let Some(status) = pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str() else { continue };
        let status: Value = serde_json::from_str(status).unwrap();
        let mut spec = json!({});
        for list in ["initContainers", "containers"] {
            let added: Vec<&str> = status[list].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let kept: Vec<Value> = pod["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["name"].as_str().is_some_and(|n| added.contains(&n)))
                .cloned()
                .collect();
            spec[list] = kept.into();
        }
        pods.push(json!({"kind": "Pod", "metadata": {"name": "sidecar", "namespace": "injected"}, "spec": spec}));
    }
    assert!(!pods.is_empty(), "kube-inject injected no workload of the namespaces {injected:?}");
    pods
}

/// One `airgap install apply` (of one cluster, or of both with an empty name), its progress shown
/// as it goes with the cluster's name before each line. With `kill_during`, it is killed (with its
/// helm and kubectl, SIGKILL to its process group) 5 s after that step starts.
struct Apply {
    child: Child,
    lines: mpsc::Receiver<String>,
    kill_during: Option<String>,
}

/// How an apply ended, and its step lines (`[n/total] cluster: step ...`).
struct Applied {
    status: ExitStatus,
    steps: Vec<String>,
}

impl Apply {
    fn start(cluster: &str, site: &Path, registry: &SiteRegistry, xdg: &Path, kill_during: Option<&str>) -> Apply {
        let mut cmd = installer("apply", site, registry, xdg);
        if !cluster.is_empty() {
            cmd.args(["--cluster", cluster]);
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).process_group(0).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let shown = if cluster.is_empty() { "both" } else { cluster }.to_string();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{shown}| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Apply { child, lines, kill_during: kill_during.map(|s| format!(": {s} ")) }
    }

    fn finish(mut self) -> Applied {
        let mut steps = Vec::new();
        let mut kill_at = None;
        loop {
            match self.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    let running = line.ends_with(" …");
                    if let Some(step) = self.kill_during.as_deref().filter(|s| running && line.contains(s)) {
                        eprintln!("killing the installer 5 s into{step}");
                        kill_at = Some(Instant::now() + Duration::from_secs(5));
                    }
                    if line.starts_with('[') && !running {
                        steps.push(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                // `-s KILL -- -PGID`: procps-ng 4.0's kill reads `-KILL -PGID` otherwise (as a
                // signal and a mangled pid, which can reach every process of the machine).
                let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.child.id())]).status();
                kill_at = None;
            }
        }
        Applied { status: self.child.wait().unwrap(), steps }
    }
}

fn kubectl_json(plane: &KubeControlPlane, args: &[&str]) -> Value {
    serde_json::from_str(&plane.kubectl(&[args, &["-o", "json"]].concat()).unwrap()).unwrap()
}

fn name_of(o: &Value) -> String {
    format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap_or(""))
}

/// Every workload at its size and ready, every Job complete, every pod on the cluster's real node
/// and running (or done) without a restart, every claim bound.
fn check_cluster(name: &str, plane: &KubeControlPlane, node: &RealNode) -> Result<(), String> {
    let workloads = testkit::workloads::workloads(plane).map_err(|e| format!("{e:#}"))?;
    let mut problems = workloads.not_ready;
    let pods = kubectl_json(plane, &["get", "pods", "-A"]);
    let pods = pods["items"].as_array().unwrap();
    for p in pods {
        let phase = p["status"]["phase"].as_str().unwrap_or("");
        if p["spec"]["nodeName"] != node.name() {
            problems.push(format!("pod {} is on {}, not on the real node", name_of(p), p["spec"]["nodeName"]));
        }
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if !(phase == "Succeeded" || phase == "Running" && ready) {
            problems.push(format!("pod {} is {phase}, not ready: {}", name_of(p), p["status"]["containerStatuses"]));
        }
        for c in p["status"]["containerStatuses"].as_array().into_iter().flatten() {
            if c["restartCount"].as_i64().unwrap_or(0) > 0 {
                problems.push(format!("pod {} container {} restarted: {}", name_of(p), c["name"], c["lastState"]));
            }
        }
    }
    let claims = kubectl_json(plane, &["get", "pvc", "-A"]);
    for c in claims["items"].as_array().unwrap() {
        if c["status"]["phase"] != "Bound" {
            problems.push(format!("claim {} is {}", name_of(c), c["status"]["phase"]));
        }
    }
    let (kinds, claims) = (&workloads.kinds, claims["items"].as_array().unwrap().len());
    eprintln!("cluster {name}: {kinds:?}, {} pods, {claims} claims", pods.len());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The pods of the namespaces labelled for injection run the sidecar the real istiod's webhook
/// injected.
fn check_sidecars(plane: &KubeControlPlane) {
    let namespaces = kubectl_json(plane, &["get", "namespaces", "-l", "istio-injection=enabled"]);
    let mut injected = 0;
    for ns in namespaces["items"].as_array().unwrap() {
        let pods = kubectl_json(plane, &["get", "pods", "-n", ns["metadata"]["name"].as_str().unwrap()]);
        for p in pods["items"].as_array().unwrap() {
            let has = |list: &str| p["spec"][list].as_array().into_iter().flatten().any(|c| c["name"] == "istio-proxy");
            let skipped = p["metadata"]["labels"]["sidecar.istio.io/inject"] == "false";
            assert!(has("containers") || skipped, "pod {} has no sidecar", name_of(p));
            injected += usize::from(has("containers"));
        }
    }
    assert!(injected > 50, "the MOSIP cluster's pods have sidecars ({injected})");
}

/// Every image in the node's containerd (the sandbox image too) came through the site registry:
/// its manifest by digest, its config and every layer, each answered 200, under its upstream
/// name. Only the provisioner's helper was imported instead.
fn check_pulls(node: &RealNode, log: &str, layout: &Path) {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| -> Value {
        let file = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&fs::read(file).unwrap()).unwrap()
    };
    let listed = node.ctr(&["images", "ls"]).unwrap();
    let mut pulled = 0;
    for line in listed.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(reference), Some(_), Some(digest)) = (fields.next(), fields.next(), fields.next()) else { continue };
        if reference.starts_with("sha256:")
            || reference.starts_with(testkit::local_path::HELPER_IMAGE.split(':').next().unwrap())
        {
            continue;
        }
        let made = index["manifests"].as_array().unwrap().iter().any(|d| d["digest"] == digest);
        assert!(made, "node {}: {reference} ({digest}) is no image the test made", node.name());
        let name = reference.split('@').next().unwrap();
        let repository = name.split_once('/').unwrap().1.split(':').next().unwrap();
        let manifest = blob(digest);
        // A layer every stand-in shares is fetched once, under whichever image names it first.
        let config = manifest["config"]["digest"].as_str().unwrap();
        let mut wanted =
            vec![format!("GET /v2/{repository}/manifests/{digest}"), format!("GET /v2/{repository}/blobs/{config}")];
        for d in manifest["layers"].as_array().unwrap() {
            wanted.push(format!("/blobs/{}", d["digest"].as_str().unwrap()));
        }
        for w in wanted {
            let found = |l: &&str| l.starts_with("GET /v2/") && l.contains(&w) && l.contains(" 200 ");
            assert!(
                log.lines().any(|l| found(&l)),
                "node {}: {reference}: no `{w}` answered 200 in the registry's access log",
                node.name()
            );
        }
        pulled += 1;
    }
    assert!(pulled > 1, "node {} pulled its images: {listed}", node.name());
    eprintln!("node {}: {pulled} images, each pulled through the site registry", node.name());
}

/// The pods that are not ready, with their events, and the end of each node's logs.
fn diagnosis(planes: &[KubeControlPlane; 2], nodes: &[RealNode; 2]) -> String {
    let mut out = String::new();
    for (name, plane) in CLUSTERS.iter().zip(planes) {
        out.push_str(&format!("cluster {name}:\n"));
        out.push_str(&plane.kubectl(&["get", "pods", "-A", "-o", "wide"]).unwrap_or_default());
        let pods = kubectl_json(plane, &["get", "pods", "-A"]);
        for p in pods["items"].as_array().unwrap() {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if !ready && p["status"]["phase"] != "Succeeded" {
                let ns = p["metadata"]["namespace"].as_str().unwrap();
                out.push_str(
                    &plane
                        .kubectl(&["describe", "pod", "-n", ns, p["metadata"]["name"].as_str().unwrap()])
                        .unwrap_or_default(),
                );
            }
        }
    }
    for n in nodes {
        out.push_str(&n.logs());
    }
    out
}
