//! Before anything is applied: the cluster answers (and which version it runs), its nodes are
//! ready (a warning when all are cordoned), the storage classes the site names exist, the
//! registry answers, and the site's domains resolve (a warning: DNS is often set up last).

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::cluster::Cluster;
use crate::registry_client::RegistryClient;
use crate::site::Site;

#[derive(Deserialize, Default)]
struct SiteDomains {
    #[serde(default)]
    domains: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// Returns the cluster's version.
pub async fn run(cluster: &Cluster, site: &Site, registry: &RegistryClient) -> Result<String> {
    let name = &cluster.name;
    let version = cluster.version().await?;
    let nodes = cluster.nodes().await?;
    if nodes.ready == 0 {
        bail!("cluster {name}: no node is Ready ({} nodes)", nodes.total);
    }
    eprintln!("preflight {name}: Kubernetes {version}, {}/{} nodes ready", nodes.ready, nodes.total);
    if nodes.cordoned == nodes.ready {
        eprintln!("preflight {name}: warning: every Ready node is cordoned; no new pod can be scheduled");
    }
    let classes = cluster.storage_classes().await?;
    for key in ["storage.default_class", "storage.rwx_class"] {
        if let Ok(class) = site.lookup(key) {
            if !class.is_empty() && !classes.contains(&class) {
                eprintln!("preflight {name}: warning: storage class {class} ({key}) does not exist yet");
            }
        }
    }
    registry.ping().await?;
    let domains: SiteDomains = site.view().unwrap_or_default();
    let mut lookups = tokio::task::JoinSet::new();
    for key in domains.domains.keys() {
        let Ok(host) = site.lookup(&format!("domains.{key}")) else { continue };
        lookups.spawn(async move {
            let resolves = tokio::net::lookup_host((host.as_str(), 443)).await.is_ok();
            (!resolves).then_some(host)
        });
    }
    let mut unresolved: Vec<String> = lookups.join_all().await.into_iter().flatten().collect();
    if !unresolved.is_empty() {
        unresolved.sort();
        eprintln!(
            "preflight {name}: warning: {} of {} site domains do not resolve here: {}",
            unresolved.len(),
            domains.domains.len(),
            unresolved.join(", ")
        );
    }
    Ok(version)
}
