//! Waits against a real control plane with kwok nodes (testkit): what a wait that times out says
//! when the workload's pods cannot be created or cannot be scheduled. The objects are made here
//! with kubectl; the image is never pulled (kwok runs no container).

use installer::cluster::Cluster;
use installer::plan::{Wait, WaitKind};
use testkit::KubeControlPlane;

fn deployment(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: app, image: registry.site.test/app:1}}]\n"
    )
}

fn apply(kube: &KubeControlPlane, dir: &std::path::Path, yaml: &str) {
    let file = dir.join("object.yaml");
    std::fs::write(&file, yaml).unwrap();
    kube.kubectl(&["apply", "-f", file.to_str().unwrap()]).unwrap();
}

#[test]
fn a_timed_out_wait_names_the_quota_or_the_scheduler_that_holds_it() {
    let kube = KubeControlPlane::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    kube.kubectl(&["create", "namespace", "quota"]).unwrap();
    apply(&kube, dir.path(), "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-pods, namespace: quota}\nspec: {hard: {pods: \"0\"}}\n");
    apply(&kube, dir.path(), &deployment("quota", "refused"));
    kube.kubectl(&["create", "namespace", "cordoned"]).unwrap();
    for node in kube.kubectl(&["get", "nodes", "-o", "name"]).unwrap().lines() {
        kube.kubectl(&["cordon", node]).unwrap();
    }
    apply(&kube, dir.path(), &deployment("cordoned", "unplaced"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(Cluster::connect("test", &kube.kubeconfig())).unwrap();
    let wait = |namespace: &str, name: &str| {
        let w = Wait { kind: WaitKind::Deployment, namespace: namespace.into(), name: name.into(), timeout: 10 };
        format!("{:#}", rt.block_on(installer::wait::wait(&cluster.client, &w)).unwrap_err())
    };

    let refused = wait("quota", "refused");
    assert!(
        refused.starts_with("Deployment quota/refused is not ready after 10 s: no pod of refused exists"),
        "{refused}"
    );
    assert!(
        refused.contains("event FailedCreate on ReplicaSet refused-") && refused.contains("forbidden"),
        "{refused}"
    );

    let unplaced = wait("cordoned", "unplaced");
    assert!(unplaced.contains("pod unplaced-") && unplaced.contains("Pending"), "{unplaced}");
    assert!(unplaced.contains("event FailedScheduling") && unplaced.contains("unschedulable"), "{unplaced}");
}
