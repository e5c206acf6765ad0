//! `airgap install plan` of the MOSIP 1.2.0.1-B2 plan from a MOSIP bundle built against the stand-in
//! upstream of `testkit::mosip_upstream` (the real MOSIP charts from shared/fixtures, generated
//! stand-ins for the images and the other charts: the real ones cannot be fetched here), served by
//! `airgap registry serve`. The bundle carries a stand-in helm, so the test passes the real helm
//! 3.8.2 with --helm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;
use testkit::{free_port, tool, workspace_root};

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
    let child = Command::new(env!("CARGO_BIN_EXE_airgap"))
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

/// site.example.yaml with the registry and the two clusters of this test.
fn site(dir: &Path, address: &str, kubeconfig: &Path) -> PathBuf {
    let example = workspace_root().join("manifests/mosip-1.2.0.1-B2/site.example.yaml");
    let mut site: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    site["registry"]["address"] = address.into();
    for cluster in ["observation", "mosip"] {
        site["clusters"][cluster]["kubeconfig"] = kubeconfig.display().to_string().into();
    }
    let path = dir.join("site.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    path
}

fn install(verb: &str, site: &Path, served: &Served, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(["install", verb, "--site"])
        .arg(site)
        .arg("--plan")
        .arg(plan_path())
        .args(["--registry", &served.url, "--helm"])
        .arg(tool("helm-3.8.2"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_mosip_plan_of_both_clusters_renders_and_passes_the_leak_check() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let _upstream = testkit::mosip_upstream::create_bundle(Path::new(env!("CARGO_BIN_EXE_airgap")), &bundle).unwrap();
    let served = serve(&bundle);
    // plan reads no cluster: the kubeconfig only has to be named.
    let site = site(dir.path(), &served.address, &dir.path().join("kubeconfig"));

    let started = Instant::now();
    let out = install("plan", &site, &served, &["--json"]);
    assert!(out.status.success(), "plan: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("install plan of both clusters: {:.1?}", started.elapsed());
    let rendered: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(plan_path()).unwrap()).unwrap();
    for cluster in rendered["clusters"].as_array().unwrap() {
        let name = cluster["cluster"].as_str().unwrap();
        let steps = cluster["steps"].as_array().unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
        let mut declared: Vec<&str> =
            plan["clusters"][name]["steps"].as_sequence().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        declared.sort();
        assert_eq!(sorted, declared, "cluster {name}: every step of the plan is printed once");
        for s in steps {
            for (from, to) in s["images"].as_object().unwrap() {
                let to = to.as_str().unwrap();
                assert!(to.starts_with(&format!("{}/", served.address)), "step {}: {from} -> {to}", s["id"]);
            }
        }
        let helm_steps = steps.iter().filter(|s| s["summary"].as_str().unwrap().starts_with("helm release")).count();
        assert!(helm_steps > 0, "cluster {name} renders helm releases");
    }
    let mosip = rendered["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == "mosip").unwrap();
    let images: usize = mosip["steps"].as_array().unwrap().iter().map(|s| s["images"].as_object().unwrap().len()).sum();
    assert!(images > 50, "the MOSIP cluster's releases name the carried images ({images})");
}
