//! Image discovery: render a chart with the real `helm template` and collect every image its
//! manifests name (what counts as an image: see the `kubemanifests` crate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::spec::ChartEntry;

/// `--helm`/`AIRGAP_HELM`, else the spec's `helm:`, else `helm` on PATH, else the copy that
/// `tests/tools/install.sh` builds into `.cache/tools/bin`.
pub fn helm_binary(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("AIRGAP_HELM") {
        return PathBuf::from(p);
    }
    let on_path =
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join("helm")).find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(d) = dir {
        for name in ["helm-v3.8.2", "helm-3.8.2", "helm"] {
            let candidate = d.join(".cache/tools/bin").join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    PathBuf::from("helm")
}

/// Renders the chart archive `tgz` with the entry's values and returns the images found.
pub fn chart_images(helm: &Path, tgz: &Path, entry: &ChartEntry) -> Result<BTreeSet<String>> {
    let mut cmd = Command::new(helm);
    // Test hooks run only under `helm test`, which a site does not: their images are not needed.
    cmd.args(["template", "airgap-discovery", "--skip-tests", "--include-crds"]).arg(tgz);
    for v in &entry.values {
        cmd.arg("--values").arg(v);
    }
    for (k, v) in &entry.set {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out =
        cmd.output().with_context(|| format!("cannot run {} (set helm: in the spec or --helm)", helm.display()))?;
    if !out.status.success() {
        bail!("helm template {} {}: {}", entry.name, entry.version, String::from_utf8_lossy(&out.stderr).trim());
    }
    images_in_manifests(&String::from_utf8_lossy(&out.stdout))
}

pub fn images_in_manifests(yaml: &str) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for doc in kubemanifests::parse_stream(yaml).context("helm template output is not YAML")? {
        kubemanifests::images(&doc, &mut found);
    }
    Ok(found)
}
