//! A chart's own word on where it runs: Chart.yaml's `kubeVersion`, which helm enforces, and
//! Rancher's `catalog.cattle.io/kube-version` annotation, which only Rancher's catalog reads, so
//! helm installs a chart outside the range its publisher supports.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;

pub const RANCHER_KUBE_VERSION: &str = "catalog.cattle.io/kube-version";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
    pub kube_version: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ChartMeta {
    /// From a chart archive (`<name>/Chart.yaml` inside) or a chart folder.
    pub fn read(chart: &Path) -> Result<ChartMeta> {
        let what = || format!("chart {}", chart.display());
        let text = if chart.is_dir() {
            std::fs::read_to_string(chart.join("Chart.yaml")).with_context(what)?
        } else {
            let file = std::fs::File::open(chart).with_context(what)?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
            let mut found = None;
            for entry in archive.entries().with_context(what)? {
                let mut entry = entry.with_context(what)?;
                let path = entry.path().with_context(what)?;
                if path.components().count() == 2 && path.ends_with("Chart.yaml") {
                    let mut text = String::new();
                    entry.read_to_string(&mut text).with_context(what)?;
                    found = Some(text);
                    break;
                }
            }
            found.ok_or_else(|| anyhow!("{}: no Chart.yaml", what()))?
        };
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}: Chart.yaml", what()))
    }

    /// `kubeVersion` and the Rancher annotation that are present: (field, range).
    pub fn ranges(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(k) = self.kube_version.as_deref().filter(|k| !k.trim().is_empty()) {
            out.push(("kubeVersion".to_string(), k));
        }
        if let Some(r) = self.annotations.get(RANCHER_KUBE_VERSION) {
            out.push((format!("annotations[\"{RANCHER_KUBE_VERSION}\"]"), r.as_str()));
        }
        out
    }

    /// Helm's refusal, when `kubeVersion` excludes `version`.
    pub fn refused_by_helm(&self, version: &str) -> Result<Option<String>> {
        let Some(range) = self.kube_version.as_deref().filter(|k| !k.trim().is_empty()) else { return Ok(None) };
        let v = super::kube_version::parse_version(version)?;
        Ok((!super::kube_version::satisfies(range, &v)?).then(|| {
            format!(
                "chart {} {} requires kubeVersion {range}, which excludes Kubernetes {version}",
                self.name, self.version
            )
        }))
    }
}
