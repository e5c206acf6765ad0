//! The Kubernetes control plane with kwok nodes: kubectl, the `kube` crate and `helm --wait`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use testkit::{run, tool, KubeControlPlane};

fn helm(home: &Path, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(tool("helm-3.8.2"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", kubeconfig);
    cmd
}

async fn deployment_becomes_ready(kubeconfig: &Path) {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = Client::try_from(config).unwrap();
    let labels = BTreeMap::from([("app".to_string(), "smoke".to_string())]);
    let deployment = Deployment {
        metadata: ObjectMeta { name: Some("smoke".into()), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("docker.io/library/nginx:1.25".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let start = Instant::now();
    loop {
        let d = deployments.get("smoke").await.unwrap();
        if d.status.and_then(|s| s.ready_replicas) == Some(3) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "deployment not ready in 90s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let listed = pods.list(&ListParams::default().labels("app=smoke")).await.unwrap();
    assert_eq!(listed.items.len(), 3);
    for pod in listed.items {
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(pod.spec.unwrap().node_name.unwrap().starts_with("kwok-node-"));
    }
}

#[test]
fn control_plane_runs_deployments_and_helm_releases() {
    let plane = KubeControlPlane::start().unwrap();

    let nodes = plane.kubectl(&["get", "nodes", "-o", "name"]).unwrap();
    for node in plane.nodes() {
        assert!(nodes.contains(&format!("node/{node}")), "{nodes}");
    }
    let version = plane.kubectl(&["version", "-o", "json"]).unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert!(version["serverVersion"]["gitVersion"].as_str().unwrap().starts_with("v1.24."), "{version}");

    tokio::runtime::Runtime::new().unwrap().block_on(deployment_becomes_ready(&plane.kubeconfig()));

    let home = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig();
    run(helm(home.path(), &kubeconfig).arg("create").arg(home.path().join("smoke"))).unwrap();
    let installed = run(helm(home.path(), &kubeconfig)
        .args(["install", "smoke-release"])
        .arg(home.path().join("smoke"))
        .args(["--wait", "--timeout", "2m", "--set", "replicaCount=2"]));
    if let Err(e) = &installed {
        panic!("{e:#}\n{}", plane.logs());
    }
    let status = run(helm(home.path(), &kubeconfig).args(["status", "smoke-release", "-o", "json"])).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["info"]["status"], "deployed");
    let ready =
        plane.kubectl(&["get", "deployment", "smoke-release", "-o", "jsonpath={.status.readyReplicas}"]).unwrap();
    assert_eq!(ready.trim(), "2");
}
