//! `manifests/runtime-apis.yaml`: controller images that need an API no chart renders (see its
//! header). An entry matches a container's image by repository and by a tag below its version.

use anyhow::{Context, Result};
use serde::Deserialize;

use super::kube_version::parse_version;

const TABLE: &str = include_str!("../../../manifests/runtime-apis.yaml");

#[derive(Debug, Deserialize)]
struct Table {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    images: Vec<String>,
    below: String,
    pub needs: Needs,
    pub why: String,
    pub evidence: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Needs {
    pub api_version: String,
    pub kind: String,
}

pub fn entries() -> Result<Vec<Entry>> {
    let table: Table = serde_yaml_ng::from_str(TABLE).context("manifests/runtime-apis.yaml")?;
    for e in &table.entries {
        parse_version(&e.below).with_context(|| format!("manifests/runtime-apis.yaml: below {}", e.below))?;
    }
    Ok(table.entries)
}

impl Entry {
    /// Whether `image` (`host/path:tag`, a digest allowed after it) is one of this entry's
    /// versions.
    pub fn matches(&self, image: &str) -> bool {
        let image = image.split_once('@').map_or(image, |(name, _)| name);
        let Some((repository, tag)) = image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) else { return false };
        if !self.images.iter().any(|i| i == repository) {
            return false;
        }
        match (parse_version(tag), parse_version(&self.below)) {
            (Ok(tag), Ok(below)) => tag < below,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_nginx_before_1_0_needs_the_beta_ingress_api() {
        let entries = entries().unwrap();
        let hit = |image: &str| entries.iter().find(|e| e.matches(image)).map(|e| e.needs.api_version.as_str());
        assert_eq!(hit("k8s.gcr.io/ingress-nginx/controller:v0.41.2@sha256:1f4f"), Some("networking.k8s.io/v1beta1"));
        assert_eq!(hit("registry.k8s.io/ingress-nginx/controller:v1.3.1"), None);
        assert_eq!(hit("docker.io/jettech/kube-webhook-certgen:v1.5.0"), None);
        assert_eq!(hit("registry.k8s.io/ingress-nginx/controller:latest"), None, "a tag that is no version");
    }
}
