//! `airgap install verify` on the sample plan, applied to a real control plane with kwok nodes:
//! each check passes on a good install and fails, naming the object and the reason, when its
//! thing is broken; `install status` shows live health; the HTML report, opened in a real
//! headless Chromium, shows every failed check and loads nothing from the network.
//!
//! The sample bundle is the one `airgap demo` builds from its generated upstream; a second bundle,
//! made here with `airgap bundle create`, carries one file of objects that exercise the checks
//! (written by this test). Both are served together by `airgap registry serve`. The test rig's
//! report is read from a real MinIO holding pages the test writes in the rig's own format
//! (`ReportStore`). Checks that need
//! pods that really run (the network edge, node mirrors, crash loops) are in
//! `install_verify_real_node.rs`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use testkit::crds::Crd;
use testkit::{tool, workspace_root, FileServer, KubeControlPlane, MinioServer, SiteRegistry};

mod verify_checks;

use verify_checks::{detail, failed};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");

/// Objects that give every kwok-checkable check something to look at, applied in namespace
/// `verify` by the plan's `objects` step.
const OBJECTS: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: verify-local}
# Nothing provisions it but the test's stand-in provisioner (KubeControlPlane::provision_volumes).
provisioner: airgap.test/none
---
apiVersion: v1
kind: Secret
metadata: {name: api-creds}
stringData: {password: not-a-secret, user: api}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: api-settings}
data: {mode: verify}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: docker.io/airgap/hello:1.0
          env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: api-creds, key: password}}}]
          envFrom: [{configMapRef: {name: api-settings}}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 443, targetPort: 8443}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: api-data}
spec: {storageClassName: verify-local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache}
spec:
  replicas: 1
  serviceName: cache
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: cache, image: docker.io/airgap/hello:1.0, volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {storageClassName: verify-local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: verify-api}
webhooks:
  - name: api.verify.airgap.example
    clientConfig: {service: {namespace: verify, name: api, path: /validate}}
    rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}]
    # No namespace has this label: the API server never calls it.
    namespaceSelector: {matchLabels: {airgap-verify-webhook: "on"}}
    sideEffects: None
    admissionReviewVersions: [v1]
    failurePolicy: Ignore
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: smoke}
spec:
  schedule: "0 0 1 1 *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: smoke
              image: quay.io/airgap/toolbox:2.1
              # As the MOSIP API test rig's CronJobs have it: the module, and the object store its
              # report goes to (made by the test, as the MOSIP plan's apitestrig steps make them).
              env: [{name: MODULES, value: masterdata}]
              envFrom: [{configMapRef: {name: s3}}, {secretRef: {name: s3}}]
---
# This cluster imported into a Rancher, the declarative way Rancher 2.6 reads.
apiVersion: provisioning.cattle.io/v1
kind: Cluster
metadata: {name: verify-lab}
spec: {}
"#;

/// Stand-ins for Rancher's CRDs (names and versions as Rancher 2.6 serves them).
const RANCHER_CRDS: &[Crd] = &[
    Crd { group: "provisioning.cattle.io", kind: "Cluster", plural: "clusters", namespaced: true, versions: &["v1"] },
    Crd { group: "management.cattle.io", kind: "Cluster", plural: "clusters", namespaced: false, versions: &["v3"] },
];

/// What Rancher makes of the import once its agent connects: a management cluster under an id,
/// its display name the imported one's, Ready (the test plays Rancher's part: none runs here).
fn rancher_registers(ready: &str, message: &str) -> String {
    format!(
        "apiVersion: management.cattle.io/v3\nkind: Cluster\nmetadata: {{name: c-m-verify1}}\nspec: {{displayName: verify-lab}}\nstatus: {{conditions: [{{type: Ready, status: \"{ready}\", message: \"{message}\"}}]}}\n"
    )
}

/// The sample plan with the objects' steps after its own.
const EXTRA_STEPS: &str = r#"      - id: ns-verify
        after: [hello]
        namespace: {name: verify}
      - id: crds
        after: [ns-verify]
        apply: {file: "files.airgap.local/verify-crds.yaml:1"}
      - id: objects
        after: [crds]
        apply: {file: "files.airgap.local/verify-objects.yaml:1", namespace: verify}
        wait: [{kind: Deployment, namespace: verify, name: api, timeout: 120}]
"#;

/// The demo's sample bundle, built and then left on disk: the demo stops once it serves it.
fn sample_bundle(dir: &Path) -> PathBuf {
    let mut child = Command::new(AIRGAP)
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("airgap demo starts");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let serving = lines.take_while(|l| !l.starts_with("REGISTRY ")).count();
    let _ = child.kill();
    let status = child.wait().unwrap();
    let bundle = dir.join("bundle");
    assert!(bundle.join("SHA256SUMS").is_file(), "the demo made no bundle ({serving} lines, {status})");
    bundle
}

/// A bundle carrying the objects file, from a file server standing in for its upstream.
fn objects_bundle(dir: &Path) -> (PathBuf, String) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let carried =
        [("verify-objects.yaml", OBJECTS.to_string()), ("verify-crds.yaml", testkit::crds::yaml(RANCHER_CRDS))];
    let mut entry = String::new();
    for (name, text) in &carried {
        std::fs::write(www.join(name), text).unwrap();
    }
    let files = FileServer::start(&www).unwrap();
    for (name, text) in &carried {
        entry += &format!(
            "  - url: {}\n    sha256: {}\n    name: {name}\n    version: \"1\"\n",
            files.url_of(name),
            hex::encode(Sha256::digest(text))
        );
    }
    let spec = dir.join("objects-bundle.yaml");
    std::fs::write(&spec, format!("platforms: [linux/amd64]\nfiles:\n{entry}")).unwrap();
    let bundle = dir.join("objects-bundle");
    run_ok(
        Command::new(AIRGAP)
            .args(["bundle", "create"])
            .arg(&spec)
            .arg("-o")
            .arg(&bundle)
            .arg("--cache")
            .arg(dir.join("cache")),
    );
    (bundle, entry)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Site {
    dir: PathBuf,
    registry: String,
    plan: PathBuf,
}

impl Site {
    /// The sample plan with the objects' steps, its bundle spec the sample's plus the objects
    /// file (what the plan reads to know what is carried), and a site file for the plane.
    fn write(dir: &Path, registry: &str, kube: &KubeControlPlane, file_entry: &str) -> Site {
        let sample = workspace_root().join("manifests/sample");
        let spec = std::fs::read_to_string(sample.join("bundle.yaml")).unwrap();
        assert!(spec.contains("\nfiles:\n"), "the sample spec has a files list");
        std::fs::write(dir.join("bundle.yaml"), spec.replace("\nfiles:\n", &format!("\nfiles:\n{file_entry}")))
            .unwrap();
        let plan = std::fs::read_to_string(sample.join("plan.yaml")).unwrap() + EXTRA_STEPS;
        std::fs::write(dir.join("plan.yaml"), plan).unwrap();
        let site = format!(
            "installation_name: verify-test\nregistry: {{address: '{registry}'}}\nclusters:\n  sample: {{kubeconfig: {}}}\ndomains:\n  greeting: {{host: greeting.test.internal, lb: internal}}\n",
            kube.kubeconfig().display()
        );
        std::fs::write(dir.join("site.yaml"), site).unwrap();
        Site { dir: dir.to_path_buf(), registry: format!("http://{registry}"), plan: dir.join("plan.yaml") }
    }

    fn command(&self, verb: &str, plan: &Path) -> Command {
        let mut cmd = Command::new(AIRGAP);
        cmd.args(["install", verb, "--site"]).arg(self.dir.join("site.yaml")).arg("--plan").arg(plan);
        if verb != "status" {
            cmd.args(["--registry", &self.registry]).arg("--helm").arg(tool("helm-3.8.2"));
        }
        cmd.env("XDG_CACHE_HOME", self.dir.join("xdg-cache"));
        cmd
    }

    fn apply(&self) {
        run_ok(&mut self.command("apply", &self.plan));
    }

    /// `install verify --json` with `extra` arguments: whether it exited 0, and its checks.
    fn verify(&self, plan: &Path, extra: &[&str]) -> (bool, Vec<Value>, Output) {
        let out = self.command("verify", plan).arg("--json").args(extra).output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify --json: {e}\n{}\n{}", text(&out.stdout), text(&out.stderr)));
        let checks = report["clusters"][0]["checks"].as_array().unwrap().clone();
        (out.status.success(), checks, out)
    }
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(k, s)| (k.to_string(), s.to_string())).collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen in 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn verify_passes_on_a_good_install_and_names_each_broken_thing() {
    let t = tempfile::tempdir().unwrap();
    let sample = sample_bundle(&t.path().join("demo"));
    let (objects, file_entry) = objects_bundle(t.path());
    let registry = SiteRegistry::bundles([&sample, &objects]).airgap(Path::new(AIRGAP)).start().unwrap();
    let address = registry.address().to_string();
    let mut kube = KubeControlPlane::start().unwrap();
    let store = ReportStore::start(&kube);
    let site = Site::write(t.path(), &address, &kube, &file_entry);
    site.apply();
    let registration = t.path().join("rancher-registration.yaml");
    std::fs::write(&registration, rancher_registers("True", "")).unwrap();
    kube.kubectl(&["apply", "-f", registration.to_str().unwrap()]).unwrap();

    // No provisioner yet: the claims wait, and the StatefulSet's pod with them.
    let (ok, checks, _) = site.verify(&site.plan, &[]);
    assert!(!ok);
    assert_eq!(
        failed(&checks),
        pairs(&[
            ("volume", "PersistentVolumeClaim verify/api-data"),
            ("volume", "PersistentVolumeClaim verify/data-cache-0"),
            ("workload", "StatefulSet verify/cache"),
        ]),
        "{checks:#?}"
    );
    assert_eq!(
        detail(&checks, "volume", "PersistentVolumeClaim verify/api-data"),
        "Pending, not Bound (storage class verify-local)"
    );
    assert!(detail(&checks, "workload", "StatefulSet verify/cache").starts_with("0 of 1 ready: pod cache-0 Pending"));

    // A good install: every check passes or says why it does not apply.
    kube.provision_volumes().unwrap();
    wait_for("the StatefulSet ready", || {
        kube.kubectl(&["-n", "verify", "get", "statefulset", "cache", "-o", "jsonpath={.status.readyReplicas}"])
            .is_ok_and(|r| r == "1")
    });
    let (ok, checks, out) = site.verify(&site.plan, &[]);
    assert!(ok && failed(&checks).is_empty(), "{checks:#?}\n{}", text(&out.stderr));
    let ok_checks: BTreeSet<(String, String)> = checks
        .iter()
        .filter(|c| c["status"] == "ok")
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["subject"].as_str().unwrap().to_string()))
        .collect();
    let mut expected = vec![
        ("workload", "Deployment hello/hello-hello"),
        ("workload", "Deployment verify/api"),
        ("workload", "StatefulSet verify/cache"),
        ("pods", "pods of Deployment verify/api"),
        ("volume", "PersistentVolumeClaim verify/api-data"),
        ("volume", "PersistentVolumeClaim verify/data-cache-0"),
        ("service", "Service verify/api"),
        ("webhook", "ValidatingWebhookConfiguration verify-api"),
        ("references", "references of Deployment verify/api"),
        ("objects", "objects of step objects"),
        ("objects", "objects of step crds"),
        ("rancher", "Rancher cluster verify-lab (in cluster sample)"),
    ];
    let steps =
        ["ns-hello", "settings", "greeting", "hello", "ns-verify", "crds", "objects"].map(|s| format!("step {s}"));
    expected.extend(steps.iter().map(|s| ("step", s.as_str())));
    let mirrors: Vec<String> =
        kube.nodes().iter().flat_map(|n| ["docker.io", "quay.io"].map(|h| format!("{h} on node {n}"))).collect();
    expected.extend(mirrors.iter().map(|m| ("mirror", m.as_str())));
    for (kind, subject) in &expected {
        assert!(
            ok_checks.contains(&(kind.to_string(), subject.to_string())),
            "no ok {kind} check of {subject}: {checks:#?}"
        );
    }
    assert_eq!(detail(&checks, "workload", "Deployment verify/api"), "2 of 2 ready");
    assert_eq!(detail(&checks, "service", "Service verify/api"), "2 ready endpoint(s)");
    let skipped: BTreeSet<&str> =
        checks.iter().filter(|c| c["status"] == "skipped").map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(skipped, BTreeSet::from(["route", "keycloak", "config"]), "{checks:#?}");
    assert_eq!(
        detail(&checks, "rancher", "Rancher cluster verify-lab (in cluster sample)"),
        "registered as c-m-verify1 and Ready"
    );
    // No probe pod is left behind.
    let left = kube.kubectl(&["-n", "airgap-system", "get", "pods", "-o", "name"]).unwrap();
    assert!(left.trim().is_empty(), "the mirror check left pods: {left}");
    // The same run for people: a line per check, and the counts.
    let human = site.command("verify", &site.plan).output().unwrap();
    let lines = text(&human.stdout);
    assert!(human.status.success(), "{lines}");
    assert!(
        lines.lines().any(|l| l == "ok      sample [objects] workload: Deployment verify/api: 2 of 2 ready"),
        "{lines}"
    );
    assert!(lines.lines().last().unwrap().starts_with("cluster sample: ") && lines.contains(" 0 failed"), "{lines}");

    // Rancher no longer hears from the imported cluster's agent.
    let rancher = "Rancher cluster verify-lab (in cluster sample)";
    std::fs::write(&registration, rancher_registers("False", "Cluster agent is not connected")).unwrap();
    kube.kubectl(&["apply", "-f", registration.to_str().unwrap()]).unwrap();
    let (ok, checks, _) = site.verify(&site.plan, &[]);
    assert!(!ok);
    assert_eq!(failed(&checks), pairs(&[("rancher", rancher)]), "{checks:#?}");
    assert_eq!(
        detail(&checks, "rancher", rancher),
        "registered as c-m-verify1 but not Ready: Ready False: Cluster agent is not connected"
    );
    std::fs::write(&registration, rancher_registers("True", "")).unwrap();
    kube.kubectl(&["apply", "-f", registration.to_str().unwrap()]).unwrap();

    // A Secret loses a key that a Deployment reads.
    kube.kubectl(&[
        "-n",
        "verify",
        "patch",
        "secret",
        "api-creds",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/password"}]"#,
    ])
    .unwrap();
    let (ok, checks, _) = site.verify(&site.plan, &[]);
    assert!(!ok);
    assert_eq!(
        failed(&checks),
        pairs(&[("references", "references of Deployment verify/api"), ("objects", "objects of step objects")]),
        "{checks:#?}"
    );
    assert_eq!(
        detail(&checks, "references", "references of Deployment verify/api"),
        "Secret verify/api-creds has no key password (containers[0].env[0].valueFrom.secretKeyRef)"
    );
    assert_eq!(detail(&checks, "objects", "objects of step objects"), "Secret verify/api-creds has no key password");

    // The Deployment scaled to nothing as well: its Service and the webhook lose their endpoints.
    kube.kubectl(&["-n", "verify", "scale", "deployment", "api", "--replicas=0"]).unwrap();
    let ready_addresses = |kube: &KubeControlPlane| {
        let path = "jsonpath={.subsets[*].addresses[*].ip}";
        kube.kubectl(&["-n", "verify", "get", "endpoints", "api", "-o", path]).map(|s| s.split_whitespace().count())
    };
    wait_for("the endpoints emptied", || ready_addresses(&kube).is_ok_and(|n| n == 0));
    let report = t.path().join("report");
    let (ok, checks, out) = site.verify(&site.plan, &["--report", report.to_str().unwrap()]);
    assert!(!ok && text(&out.stderr).contains("error: 5 check(s) failed"), "{}", text(&out.stderr));
    assert_eq!(
        failed(&checks),
        pairs(&[
            ("references", "references of Deployment verify/api"),
            ("objects", "objects of step objects"),
            ("workload", "Deployment verify/api"),
            ("service", "Service verify/api"),
            ("webhook", "ValidatingWebhookConfiguration verify-api"),
        ]),
        "{checks:#?}"
    );
    assert_eq!(
        detail(&checks, "workload", "Deployment verify/api"),
        "scaled to 0 replica(s); the plan renders 2 (0 ready)"
    );
    assert_eq!(
        detail(&checks, "service", "Service verify/api"),
        "no ready endpoint: its selector app=api matches 0 pod(s), 0 ready"
    );
    assert_eq!(
        detail(&checks, "webhook", "ValidatingWebhookConfiguration verify-api"),
        "api.verify.airgap.example calls Service verify/api, which has no ready endpoint"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(report.join("verify.json")).unwrap()).unwrap();
    assert_eq!(saved["clusters"][0]["failed"], 5);
    check_html_in_chromium(&report, &failed_checks(&checks));

    // Put back: the install is good again.
    kube.kubectl(&[
        "-n",
        "verify",
        "patch",
        "secret",
        "api-creds",
        "-p",
        r#"{"stringData":{"password":"not-a-secret"}}"#,
    ])
    .unwrap();
    kube.kubectl(&["-n", "verify", "scale", "deployment", "api", "--replicas=2"]).unwrap();
    kube.kubectl(&["-n", "verify", "rollout", "status", "deployment/api", "--timeout=120s"]).unwrap();
    wait_for("the endpoints back", || ready_addresses(&kube).is_ok_and(|n| n == 2));
    let (ok, checks, _) = site.verify(&site.plan, &[]);
    assert!(ok, "{checks:#?}");

    // `install status`: the recorded state beside the live health; a ConfigMap the plan makes
    // loses a key.
    let status = run_ok(&mut site.command("status", &site.plan));
    let line = |status: &str, step: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("{status}"))
            .to_string()
    };
    assert!(
        line(&status, "objects").contains("done")
            && line(&status, "objects").contains("live: healthy: Deployment verify/api ready"),
        "{status}"
    );
    assert!(line(&status, "settings").ends_with("live: healthy: ConfigMap hello/global"), "{status}");
    kube.kubectl(&[
        "-n",
        "hello",
        "patch",
        "configmap",
        "global",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/greeting-host"}]"#,
    ])
    .unwrap();
    let status = run_ok(&mut site.command("status", &site.plan));
    assert!(
        line(&status, "settings").ends_with("live: UNHEALTHY: ConfigMap hello/global has no key greeting-host"),
        "{status}"
    );
    let (_, checks, _) = site.verify(&site.plan, &[]);
    assert_eq!(failed(&checks), pairs(&[("objects", "objects of step settings")]), "{checks:#?}");
    assert_eq!(
        detail(&checks, "objects", "objects of step settings"),
        "ConfigMap hello/global has no key greeting-host"
    );
    kube.kubectl(&[
        "-n",
        "hello",
        "patch",
        "configmap",
        "global",
        "-p",
        r#"{"data":{"greeting-host":"greeting.test.internal"}}"#,
    ])
    .unwrap();

    // A plan that no longer matches what was applied: the step says so, and the workload is
    // smaller than the plan now renders it.
    let plan = std::fs::read_to_string(&site.plan).unwrap();
    let changed = t.path().join("changed-plan.yaml");
    std::fs::write(&changed, plan.replace("replicaCount: \"2\"", "replicaCount: \"3\"")).unwrap();
    let (_, checks, _) = site.verify(&changed, &[]);
    assert_eq!(
        failed(&checks),
        pairs(&[("step", "step hello"), ("workload", "Deployment hello/hello-hello")]),
        "{checks:#?}"
    );
    assert!(
        detail(&checks, "step", "step hello").contains("but the plan renders it differently now: run install apply")
    );
    assert_eq!(
        detail(&checks, "workload", "Deployment hello/hello-hello"),
        "scaled to 2 replica(s); the plan renders 3 (2 ready)"
    );

    // The test rig: the step's CronJob runs once as a Job, and its module's report is read from
    // the object store; each run is compared with the one before.
    let job = "CronJob verify/smoke (run once)";
    let module = "module masterdata (CronJob verify/smoke)";
    let first = store.put_report("2026-12-06_03:00:01", &[("Create", 2, 0, 0), ("Search", 1, 0, 0)]);
    let (ok, checks, _) = site.verify(&site.plan, &["--testrig", "objects"]);
    assert!(ok, "{checks:#?}");
    assert_eq!(detail(&checks, "testrig", job), "passed (no earlier run kept)");
    let read = detail(&checks, "testrig", module);
    assert!(
        read.starts_with(&format!(
            "3 of 3 passed, 0 failed, 0 skipped (no earlier run kept; report automation/smokeAndRegression/{first} of "
        )),
        "{read}"
    );
    // The rig wrote no report this time.
    let (ok, checks, _) = site.verify(&site.plan, &["--testrig", "objects"]);
    assert!(!ok);
    assert_eq!(failed(&checks), pairs(&[("testrig", module)]), "{checks:#?}");
    assert!(detail(&checks, "testrig", job).starts_with("passed (as in the run of "), "{checks:#?}");
    let read = detail(&checks, "testrig", module);
    assert!(
        read.starts_with(&format!(
            "this run wrote no report: the newest, report automation/smokeAndRegression/{first} of "
        )),
        "{read}"
    );
    // A test of the module fails that passed before.
    store.put_report("2026-12-07_03:00:01", &[("Create", 1, 0, 1), ("Search", 1, 0, 0)]);
    let (ok, checks, _) = site.verify(&site.plan, &["--testrig", "objects"]);
    assert!(!ok);
    assert_eq!(failed(&checks), pairs(&[("testrig", module)]), "{checks:#?}");
    let read = detail(&checks, "testrig", module);
    assert!(
        read.starts_with("regressed: 2 of 3 passed, 1 failed, 0 skipped; in the run of ")
            && read.contains(": 3 of 3 passed, 0 failed, 0 skipped (report "),
        "{read}"
    );
    // Fixed again.
    store.put_report("2026-12-08_03:00:01", &[("Create", 2, 0, 0), ("Search", 1, 0, 0)]);
    let (ok, checks, _) = site.verify(&site.plan, &["--testrig", "objects"]);
    assert!(ok, "{checks:#?}");
    let read = detail(&checks, "testrig", module);
    assert!(
        read.starts_with("3 of 3 passed, 0 failed, 0 skipped; in the run of ")
            && read.contains(": 2 of 3 passed, 1 failed, 0 skipped (report "),
        "{read}"
    );
    let jobs = kube.kubectl(&["-n", "verify", "get", "jobs", "-o", "name"]).unwrap();
    assert!(jobs.trim().is_empty(), "the test rig's Jobs are deleted once read: {jobs}");

    // An aggregated API whose Service is not there: a discovery of every group would fail. verify
    // names it, and its discovery leaves that group out (as kubectl's does), so the rest is
    // checked with the plan rendered against the cluster's API versions.
    let apiservice = t.path().join("apiservice.yaml");
    std::fs::write(
        &apiservice,
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.verify.airgap.example}\nspec: {group: verify.airgap.example, version: v1beta1, service: {namespace: verify, name: not-there, port: 443}, insecureSkipTLSVerify: true, groupPriorityMinimum: 1000, versionPriority: 15}\n",
    )
    .unwrap();
    kube.kubectl(&["apply", "-f", apiservice.to_str().unwrap()]).unwrap();
    let available = r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#;
    wait_for("the APIService found unavailable", || {
        kube.kubectl(&["get", "apiservice", "v1beta1.verify.airgap.example", "-o", available])
            .is_ok_and(|s| s == "False")
    });
    let (ok, checks, _) = site.verify(&site.plan, &[]);
    assert!(!ok);
    let apiservice = "APIService v1beta1.verify.airgap.example";
    assert!(detail(&checks, "apiservice", apiservice).starts_with("not available: ServiceNotFound"), "{checks:#?}");
    let expected = pairs(&[("apiservice", apiservice)]);
    assert_eq!(failed(&checks), expected, "{checks:#?}");
    assert!(
        checks.iter().any(|c| c["kind"] == "workload" && c["status"] == "ok"),
        "the rest is still checked: {checks:#?}"
    );
}

/// The object store the test rig reports to: a real MinIO, reached by the API server as the
/// Service `minio/minio:9000` (the MOSIP plan's `s3-host`). The API server's proxy goes only to
/// an endpoint that is a pod's address, and kwok's pods' addresses lead nowhere; so the Service's
/// pod is given this machine's own address (`KubeControlPlane::point_service_at`), and a relay
/// there passes each connection on to MinIO, which listens on loopback. The rig's settings (`s3`
/// ConfigMap and Secret, as the MOSIP plan's apitestrig steps make them) are in namespace
/// `verify` before the plan is applied.
struct ReportStore {
    minio: MinioServer,
    dir: tempfile::TempDir,
}

impl ReportStore {
    fn start(kube: &KubeControlPlane) -> ReportStore {
        let minio = MinioServer::start().unwrap();
        // The rig's own default bucket (s3-account unset).
        minio.create_bucket("automation").unwrap();
        let port: u16 = minio.endpoint().rsplit(':').next().unwrap().parse().unwrap();
        let relayed = relay(port);
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "minio"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "verify"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "minio", "namespace": "minio", "labels": {"app": "minio"}},
                "spec": {"containers": [{"name": "minio", "image": "docker.io/bitnamilegacy/minio:2022.2.7-debian-10-r0"}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "minio", "namespace": "minio"},
                "spec": {"selector": {"app": "minio"}, "ports": [{"name": "http", "port": 9000, "targetPort": relayed}]}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s3", "namespace": "verify"},
                "data": {"s3-host": "http://minio.minio:9000", "s3-region": minio.region(), "s3-user-key": minio.access_key()}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "verify"},
                "stringData": {"s3-user-secret": minio.secret_key()}},
        ]});
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store.json");
        std::fs::write(&file, objects.to_string()).unwrap();
        kube.kubectl(&["apply", "-f", file.to_str().unwrap()]).unwrap();
        kube.kubectl(&["-n", "minio", "wait", "--for=condition=Ready", "pod/minio", "--timeout=60s"]).unwrap();
        kube.point_service_at("minio", "minio", &testkit::host_address().unwrap()).unwrap();
        ReportStore { minio, dir }
    }

    /// A report of module masterdata as the rig uploads it (`EmailableReport`: the counts in its
    /// name, under the test level), with a row per TestNG test `(name, passed, skipped, failed)`;
    /// its object name.
    fn put_report(&self, time: &str, tests: &[(&str, u32, u32, u32)]) -> String {
        let sum = |f: fn(&(&str, u32, u32, u32)) -> u32| tests.iter().map(f).sum::<u32>();
        let (p, s, f) = (sum(|t| t.1), sum(|t| t.2), sum(|t| t.3));
        let name = format!(
            "mosip-api-internal.verify.test-masterdata-{time}-report_T-{}_P-{p}_S-{s}_F-{f}_I-0.html",
            p + s + f
        );
        let file = self.dir.path().join(&name);
        std::fs::write(&file, emailable_report(tests)).unwrap();
        let to = format!("testkit/automation/smokeAndRegression/{name}");
        let out = self.minio.mc().args(["cp", "--quiet"]).arg(&file).arg(&to).output().unwrap();
        assert!(out.status.success(), "mc cp: {}{}", text(&out.stdout), text(&out.stderr));
        name
    }
}

/// The page mosip-functional-tests' `EmailableReport` writes (automationtests, `customReport`):
/// its head and suite summary table as `writeSuiteSummary` prints them, then the per-method
/// table it prints after (cut short: verify reads only the summary).
fn emailable_report(tests: &[(&str, u32, u32, u32)]) -> String {
    let mut rows = String::new();
    for (i, (name, p, s, f)) in tests.iter().enumerate() {
        let class = |n: &u32, set: &str| if *n > 0 { format!("num {set}") } else { "num".into() };
        rows += &format!(
            "<tr><td><a href=\"#t{i}\">{name}</a></td><td class=\"num\">{}</td><td class=\"{}\">{p}</td><td class=\"{}\">{s}</td><td class=\"{}\">{f}</td><td class=\"num\">0</td><td class=\"num\">1,204</td></tr>",
            p + s + f,
            class(p, "green-bg"),
            class(s, "orange-bg"),
            class(f, "attn"),
        );
    }
    let total = |f: fn(&(&str, u32, u32, u32)) -> u32| tests.iter().map(f).sum::<u32>();
    format!(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.1//EN\" \"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>TestNG Report</title><style type=\"text/css\">table {{margin-bottom:10px;border-collapse:collapse;empty-cells:show}}</style></head><body><table><tr><th colspan=\"7\">masterdata-Commit Id is: 1a2b3c4 &amp; Branch Name is:release-1.2.0.1</th></tr><tr><th colspan=\"7\"><span class=\"not-bold\"><pre>Server Component Details </pre></span></th></tr><tr><th>Test</th><th># Total</th><th># Passed</th><th># Skipped</th><th># Failed</th><th># Ignored</th><th>Time (ms)</th></tr>{rows}<tr><th>Total</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\">0</th><th class=\"num\">2,408</th></tr></table><table id='summary'><thead><tr><th>Method</th><th>Time (ms)</th></tr></thead></table></body></html>",
        total(|t| t.1 + t.2 + t.3),
        total(|t| t.1),
        total(|t| t.2),
        total(|t| t.3),
    )
}

/// Passes each connection to a port of this machine's loopback; the port it listens on, on every
/// address.
fn relay(to: u16) -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = std::net::TcpStream::connect(("127.0.0.1", to)) else { continue };
            for (mut from, mut into) in
                [(inbound.try_clone().unwrap(), outbound.try_clone().unwrap()), (outbound, inbound)]
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    port
}

/// `(kind, subject, detail)` of every failed check.
fn failed_checks(checks: &[Value]) -> Vec<(String, String, String)> {
    checks
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("kind"), s("subject"), s("detail"))
        })
        .collect()
}

/// A proxy that records the first line of every connection made to it: Chromium is pointed at
/// it, so any request the page makes shows up here instead of reaching a network.
struct Recorder {
    address: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut first = [0u8; 256];
                let n = (&stream).read(&mut first).unwrap_or(0);
                let line = text(&first[..n]).lines().next().unwrap_or("(nothing sent)").to_string();
                log.lock().unwrap().push(line);
            }
        });
        Recorder { address, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Debian's Chromium, headless, every request through `proxy`. Chromium's own services (update
/// checks, accounts) are sent past the proxy: they are Chromium's, not the page's, and the page
/// names no Google host (asserted by the caller).
fn chromium(proxy: &Recorder, profile: &Path, args: &[&str], page: &Path) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--proxy-server=http://{}", proxy.address))
        .arg("--proxy-bypass-list=*.google.com;*.googleapis.com;<-loopback>")
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (tests/tools/install.sh installs Debian's chromium)")
}

fn check_html_in_chromium(report: &Path, failures: &[(String, String, String)]) {
    let page = report.join("verify.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.to_lowercase().contains("google"), "the page must name no host the proxy lets past");
    let proxy = Recorder::start();

    // The recorder does catch a page that loads something: a control page with an image.
    let control = report.join("control.html");
    std::fs::write(&control, "<!DOCTYPE html><title>control</title><img src=\"http://assets.example.invalid/x.png\">")
        .unwrap();
    chromium(&proxy, &report.join("profile-control"), &["--dump-dom"], &control);
    let seen = proxy.take();
    assert!(seen.iter().any(|l| l.contains("assets.example.invalid")), "the recorder saw {seen:?}");
    std::fs::remove_file(&control).unwrap();

    let out = chromium(&proxy, &report.join("profile-dom"), &["--dump-dom"], &page);
    let dom = text(&out.stdout);
    assert!(out.status.success() && dom.contains("</html>"), "chromium --dump-dom: {}", text(&out.stderr));
    // The rendered text: tags dropped, entities read back.
    let shown = dom_text(&dom);
    for (kind, subject, detail) in failures {
        for part in [kind, subject, detail] {
            assert!(shown.contains(part.as_str()), "the page does not show {part:?}:\n{shown}");
        }
    }
    let problems = shown.find("Problems").unwrap();
    assert!(shown.find("Cluster sample").unwrap() > problems, "problems come before the cluster's checks");
    assert!(shown[..problems].contains("problems found"), "{shown}");

    let screenshot = report.join("verify.png");
    let out = chromium(
        &proxy,
        &report.join("profile-shot"),
        &[&format!("--screenshot={}", screenshot.display()), "--window-size=1400,2200"],
        &page,
    );
    assert!(out.status.success(), "chromium --screenshot: {}", text(&out.stderr));
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a screenshot of the report ({} bytes)",
        png.len()
    );
    let seen = proxy.take();
    assert!(seen.is_empty(), "the report made requests: {seen:?}");
}

/// The text of an HTML document as a reader sees it, roughly: no tags, entities decoded.
fn dom_text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in dom.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}
