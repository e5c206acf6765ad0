//! `airgap install` of the MOSIP 1.2.0.1-B2 plan from a MOSIP bundle built against the stand-in
//! upstream of `testkit::mosip_upstream` (the real MOSIP charts and mosip-config from
//! shared/fixtures; generated stand-ins for the images and the other charts, under their real names,
//! since the real ones cannot be fetched here), served by `airgap registry serve`. The bundle carries
//! a stand-in helm and istioctl, so the test passes the real helm 3.8.2 with --helm and the
//! istioctl of tests/tools with --istioctl.
//!
//! One test, so the bundle is built once: `install plan` of both clusters, then `install apply` of
//! each onto its own control plane with kwok nodes, then a second apply that changes nothing.
//! `plan_benchmark`, ignored here, is what `bench/install.sh` runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_yaml_ng::Value;
use testkit::{free_port, tool, workspace_root, KubeControlPlane};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");

fn plan_path() -> PathBuf {
    workspace_root().join("manifests/mosip-1.2.0.1-B2/plan.yaml")
}

struct Served {
    child: Child,
    url: String,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bundle: &Path) -> Served {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(AIRGAP)
        .args(["registry", "serve"])
        .arg(bundle)
        .args(["--listen", &address])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Served { child, url, address }
}

/// site.example.yaml with the registry, a site CA made here and a kubeconfig for each cluster of
/// this test.
fn site(dir: &Path, address: &str, kubeconfigs: [(&str, &Path); 2]) -> PathBuf {
    let example = workspace_root().join("manifests/mosip-1.2.0.1-B2/site.example.yaml");
    let mut site: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    site["registry"]["address"] = address.into();
    let ca = dir.join("site-ca.pem");
    std::fs::write(&ca, testkit::TestCa::new("site CA").unwrap().cert_pem()).unwrap();
    site["registry"]["ca_cert"] = ca.display().to_string().into();
    for (cluster, kubeconfig) in kubeconfigs {
        site["clusters"][cluster]["kubeconfig"] = kubeconfig.display().to_string().into();
    }
    let path = dir.join("site.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    path
}

fn install(verb: &str, site: &Path, plan: &Path, served: &Served, extra: &[&str]) -> Output {
    Command::new(AIRGAP)
        .args(["install", verb, "--site"])
        .arg(site)
        .arg("--plan")
        .arg(plan)
        .args(["--registry", &served.url, "--helm"])
        .arg(tool("helm-3.8.2"))
        .arg("--istioctl")
        .arg(tool("istioctl"))
        .args(extra)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kubectl_json(kube: &KubeControlPlane, args: &[&str]) -> Json {
    serde_json::from_str(&kube.kubectl(&[args, &["-o", "json"]].concat()).unwrap()).unwrap()
}

/// `install plan --json` of both clusters: every step printed once, every image pointed at the
/// site registry. Returns the rendered clusters.
fn check_plan(site: &Path, plan_file: &Path, served: &Served) -> Vec<Json> {
    let started = Instant::now();
    let out = install("plan", site, plan_file, served, &["--json"]);
    assert!(out.status.success(), "plan: {}", text(&out.stderr));
    eprintln!("install plan of both clusters: {:.1?}", started.elapsed());
    let rendered: Json = serde_json::from_slice(&out.stdout).unwrap();
    let plan: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(plan_file).unwrap()).unwrap();
    let clusters = rendered["clusters"].as_array().unwrap().clone();
    for cluster in &clusters {
        let name = cluster["cluster"].as_str().unwrap();
        let steps = cluster["steps"].as_array().unwrap();
        let mut ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
        let mut declared: Vec<&str> =
            plan["clusters"][name]["steps"].as_sequence().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        ids.sort();
        declared.sort();
        assert_eq!(ids, declared, "cluster {name}: every step of the plan is printed once");
        for s in steps {
            for (from, to) in s["images"].as_object().unwrap() {
                let to = to.as_str().unwrap();
                assert!(to.starts_with(&format!("{}/", served.address)), "step {}: {from} -> {to}", s["id"]);
            }
        }
        let helm_steps = steps.iter().filter(|s| s["summary"].as_str().unwrap().starts_with("helm release")).count();
        assert!(helm_steps > 0, "cluster {name} renders helm releases");
    }
    let mosip = clusters.iter().find(|c| c["cluster"] == "mosip").unwrap();
    let images: usize = mosip["steps"].as_array().unwrap().iter().map(|s| s["images"].as_object().unwrap().len()).sum();
    assert!(images > 50, "the MOSIP cluster's releases name the carried images ({images})");
    clusters
}

/// The helm releases a rendered cluster installs: (namespace, release), skipped steps left out.
fn releases(rendered: &Json) -> BTreeSet<(String, String)> {
    rendered["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["skipped"].is_null())
        .filter_map(|s| s["summary"].as_str().unwrap().strip_prefix("helm release "))
        .map(|rest| {
            let (namespace, release) = rest.split_once(" from ").unwrap().0.split_once('/').unwrap();
            (namespace.to_string(), release.to_string())
        })
        .collect()
}

/// Every release deployed, every workload ready and every Job complete, every pod's image pointed
/// at the site registry and pinned to the digest the bundle carries for it.
fn check_cluster(
    name: &str,
    kube: &KubeControlPlane,
    rendered: &Json,
    served: &Served,
    carried: &BTreeMap<String, String>,
) {
    let helm = Command::new(tool("helm-3.8.2"))
        .args(["list", "--all-namespaces", "--all", "--output", "json"])
        .env("KUBECONFIG", kube.kubeconfig())
        .output()
        .unwrap();
    assert!(helm.status.success(), "helm list: {}", text(&helm.stderr));
    let listed: Vec<Json> = serde_json::from_slice(&helm.stdout).unwrap();
    let deployed: BTreeSet<(String, String)> = listed
        .iter()
        .filter(|r| r["status"] == "deployed")
        .map(|r| (r["namespace"].as_str().unwrap().to_string(), r["name"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(deployed, releases(rendered), "cluster {name}: every release of the plan is deployed, and only those");
    assert_eq!(deployed.len(), listed.len(), "cluster {name}: a release is not deployed: {listed:?}");

    let workloads = kubectl_json(kube, &["get", "deployments,statefulsets,daemonsets,jobs", "--all-namespaces"]);
    let mut not_ready = Vec::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for w in workloads["items"].as_array().unwrap() {
        let (kind, s) = (w["kind"].as_str().unwrap(), &w["status"]);
        let want = w["spec"]["replicas"].as_i64().unwrap_or(1);
        let ready = match kind {
            "Deployment" => s["availableReplicas"].as_i64().unwrap_or(0) >= want,
            "StatefulSet" => s["readyReplicas"].as_i64().unwrap_or(0) >= want,
            "DaemonSet" => s["numberReady"].as_i64() == s["desiredNumberScheduled"].as_i64(),
            _ => s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Complete" && c["status"] == "True"),
        };
        let shown = format!(
            "{kind} {}/{}",
            w["metadata"]["namespace"].as_str().unwrap(),
            w["metadata"]["name"].as_str().unwrap()
        );
        eprintln!("cluster {name}: {shown} {}", if ready { "ready" } else { "NOT READY" });
        *kinds.entry(kind.to_string()).or_default() += 1;
        if !ready {
            not_ready.push(shown);
        }
    }
    eprintln!("cluster {name}: workloads {kinds:?}");
    assert!(not_ready.is_empty(), "cluster {name}: not ready: {not_ready:?}");

    let pods = kubectl_json(kube, &["get", "pods", "--all-namespaces"]);
    let pods = pods["items"].as_array().unwrap();
    assert!(!pods.is_empty(), "cluster {name} runs pods");
    let prefix = format!("{}/", served.address);
    for pod in pods {
        let pod_name =
            format!("{}/{}", pod["metadata"]["namespace"].as_str().unwrap(), pod["metadata"]["name"].as_str().unwrap());
        for list in ["initContainers", "containers"] {
            for c in pod["spec"][list].as_array().into_iter().flatten() {
                let image = c["image"].as_str().unwrap();
                let (reference, digest) =
                    image.strip_prefix(&prefix).and_then(|r| r.split_once('@')).unwrap_or_else(|| {
                        panic!("cluster {name}: pod {pod_name} runs {image}, not a pinned image of the site registry")
                    });
                assert_eq!(
                    carried.get(reference),
                    Some(&digest.to_string()),
                    "cluster {name}: pod {pod_name}: {image} is not what the bundle carries"
                );
            }
        }
    }
    eprintln!(
        "cluster {name}: {} releases deployed, {} workloads ready, {} pods on carried images",
        deployed.len(),
        kinds.values().sum::<usize>(),
        pods.len()
    );
}

/// The releases that clone from the site registry themselves (`site_ca: true`) have the site CA
/// mounted in every container, with the variables git and Java read.
fn check_site_ca(kube: &KubeControlPlane, site: &Path) {
    let site: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(site).unwrap()).unwrap();
    let pem = std::fs::read_to_string(site["registry"]["ca_cert"].as_str().unwrap()).unwrap();
    for (namespace, workload) in
        [("config-server", "deployment/config-server"), ("masterdata-loader", "job/masterdata-loader")]
    {
        let cm = kubectl_json(kube, &["-n", namespace, "get", "configmap", "airgap-site-ca"]);
        assert_eq!(cm["data"]["ca.crt"].as_str(), Some(pem.as_str()), "{namespace}: the site CA's ConfigMap");
        assert!(cm["binaryData"]["truststore.p12"].is_string(), "{namespace}: the truststore");
        let spec = &kubectl_json(kube, &["-n", namespace, "get", workload])["spec"]["template"]["spec"];
        assert!(
            spec["volumes"].as_array().unwrap().iter().any(|v| v["configMap"]["name"] == "airgap-site-ca"),
            "{spec}"
        );
        for c in spec["containers"].as_array().unwrap() {
            let env = |name: &str| {
                c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
            };
            assert_eq!(env("GIT_SSL_CAINFO"), Some("/etc/airgap/site-ca/ca.crt".into()), "{workload}: {c}");
            let java = env("JAVA_TOOL_OPTIONS").unwrap_or_else(|| panic!("{workload}: {c}"));
            assert!(java.as_str().unwrap().contains("-Djavax.net.ssl.trustStore=/etc/airgap/site-ca/truststore.p12"));
        }
    }
}

/// Injected sidecars and their init containers pull proxyv2 pinned to what the bundle carries:
/// the injector's values name it whole.
fn check_sidecar_image(kube: &KubeControlPlane, served: &Served, carried: &BTreeMap<String, String>) {
    let injector = kubectl_json(kube, &["-n", "istio-system", "get", "configmap", "istio-sidecar-injector"]);
    let values: Json = serde_json::from_str(injector["data"]["values"].as_str().unwrap()).unwrap();
    let reference = "docker.io/istio/proxyv2:1.15.0";
    let pinned = format!("{}/{reference}@{}", served.address, carried[reference]);
    for image in ["proxy", "proxy_init"] {
        assert_eq!(values["global"][image]["image"], pinned.as_str(), "the injector's {image} image");
    }
}

/// Every image reference the bundle carries and the digest it carries it at.
fn carried_images(bundle: &Path) -> BTreeMap<String, String> {
    let lock: Json = serde_json::from_slice(&std::fs::read(bundle.join("bundle.lock.json")).unwrap()).unwrap();
    lock["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "image")
        .map(|a| (a["reference"].as_str().unwrap().to_string(), a["digest"].as_str().unwrap().to_string()))
        .collect()
}

/// `install apply` of one cluster, with `extra` arguments; the run's progress is printed.
fn apply(cluster: &str, site: &Path, plan: &Path, served: &Served, extra: &[&str]) -> String {
    let started = Instant::now();
    let out = install("apply", site, plan, served, &[&["--cluster", cluster][..], extra].concat());
    let err = text(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "apply of cluster {cluster} failed:\n{err}");
    eprintln!("install apply of cluster {cluster}: {:.1?}", started.elapsed());
    err
}

#[test]
fn the_mosip_plan_renders_then_applies_both_clusters_and_a_second_apply_changes_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    // The control planes start while the bundle is built.
    let (observation, mosip) = std::thread::scope(|s| {
        let built = s.spawn(|| testkit::mosip_upstream::create_bundle(Path::new(AIRGAP), &bundle).map(drop));
        let planes = [s.spawn(KubeControlPlane::start), s.spawn(KubeControlPlane::start)]
            .map(|p| p.join().unwrap().expect("a control plane with kwok nodes"));
        built.join().unwrap().expect("the MOSIP bundle");
        let [mut observation, mut mosip] = planes;
        observation.provision_volumes().unwrap();
        mosip.provision_volumes().unwrap();
        (observation, mosip)
    });
    eprintln!("bundle and control planes ready: {:.1?}", started.elapsed());
    let served = serve(&bundle);
    let site =
        site(dir.path(), &served.address, [("observation", &observation.kubeconfig()), ("mosip", &mosip.kubeconfig())]);

    let plan = plan_path();
    let rendered = check_plan(&site, &plan, &served);
    let rendered_cluster = |name: &str| rendered.iter().find(|c| c["cluster"] == name).unwrap().clone();

    let plans = [("observation", &observation), ("mosip", &mosip)];

    apply("observation", &site, &plan, &served, &[]);
    apply("mosip", &site, &plan, &served, &["--to", "istio"]);
    // Istio's sidecar injector calls istiod, and a kwok pod answers nothing: with its failurePolicy
    // Fail, no pod could start in an injected namespace. A real cluster keeps it; here it goes once
    // Istio is installed, and the steps after it apply. (Istio's validator fails open.)
    mosip
        .kubectl(&["delete", "mutatingwebhookconfiguration/istio-sidecar-injector"])
        .unwrap_or_else(|e| panic!("the istio step installs the sidecar injector: {e}"));
    apply("mosip", &site, &plan, &served, &[]);
    let carried = carried_images(&bundle);
    for (name, kube) in &plans {
        check_cluster(name, kube, &rendered_cluster(name), &served, &carried);
    }
    check_site_ca(&mosip, &site);
    check_sidecar_image(&mosip, &served, &carried);

    for (name, _) in &plans {
        let err = apply(name, &site, &plan, &served, &[]);
        let steps = err.lines().filter(|l| l.starts_with('[')).count();
        let unchanged = err
            .lines()
            .filter(|l| l.starts_with('[') && (l.ends_with(" unchanged") || l.contains(" skipped (")))
            .count();
        assert!(steps > 0 && unchanged == steps, "cluster {name}: a second apply changes nothing:\n{err}");
    }
    eprintln!("the whole test: {:.1?}", started.elapsed());
}

/// `bench/install.sh`: `install plan` of both clusters, `AIRGAP_BENCH_RUNS` times (default 3)
/// from one bundle, one timing line per run. No cluster is needed: plan only renders.
#[test]
#[ignore = "a benchmark: bench/install.sh runs it"]
fn plan_benchmark() {
    let runs: usize = std::env::var("AIRGAP_BENCH_RUNS").map_or(3, |r| r.parse().expect("AIRGAP_BENCH_RUNS"));
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    testkit::mosip_upstream::create_bundle(Path::new(AIRGAP), &bundle).expect("the MOSIP bundle");
    let served = serve(&bundle);
    let unused = dir.path().join("no-cluster.kubeconfig");
    let site = site(dir.path(), &served.address, [("observation", &unused), ("mosip", &unused)]);
    for _ in 0..runs {
        check_plan(&site, &plan_path(), &served);
    }
}
