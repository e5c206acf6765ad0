//! The check's table of served kinds (`manifests/kubernetes-apis.yaml`, generated from the
//! k8s-openapi crate) against what a real kube-apiserver 1.24.17 serves (`testkit`'s control
//! plane, built from the Kubernetes sources at that tag): the two must list the same kinds.

use installer::check::Apis;
use kube::discovery::Discovery;
use testkit::KubeControlPlane;

#[test]
fn the_1_24_table_lists_what_a_1_24_api_server_serves() {
    let kube = KubeControlPlane::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let discovered = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(kube.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        let discovery = Discovery::new(kube::Client::try_from(config).unwrap()).run().await.unwrap();
        Apis::from_discovery(&discovery, "1.24.17")
    });
    let table = Apis::for_version("1.24").unwrap();
    let (served, listed) = (discovered.helm_api_versions(), table.helm_api_versions());
    let missing: Vec<&String> = served.iter().filter(|v| !listed.contains(v)).collect();
    let extra: Vec<&String> = listed.iter().filter(|v| !served.contains(v)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not in the table: {missing:?}\nin the table but not served: {extra:?}"
    );
}
