//! `install plan --manifests DIR`: every object a cluster's steps would send, as files a reviewer
//! (or a test deriving stand-ins from them) reads without a cluster: `DIR/<cluster>/<NNN>-<step>.yaml`,
//! `NNN` the step's place in the cluster's order, one YAML document per object, post-rendered and
//! hooks included. Steps turned off by the site, and steps that send no object, have no file.

use std::path::Path;

use anyhow::{Context, Result};
use bundles::outdir::{write_atomic, OutDir};

use crate::render::Rendered;

/// The folder the files go to: it must not exist or be empty, and it is removed again unless
/// [`OutDir::keep`] is called once every cluster is written.
pub fn prepare(dir: &Path) -> Result<OutDir> {
    OutDir::prepare(dir).with_context(|| format!("--manifests {}", dir.display()))
}

/// Writes one cluster's rendered steps under `out/<cluster>/`.
pub fn write_cluster(out: &OutDir, cluster: &str, rendered: &[Rendered<'_>]) -> Result<()> {
    let dir = out.path().join(cluster);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (i, r) in rendered.iter().enumerate() {
        if r.skipped.is_some() || r.docs.is_empty() {
            continue;
        }
        let docs = r
            .docs
            .iter()
            .map(serde_yaml_ng::to_string)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("step {}: an object that is not YAML", r.step.id))?;
        let name = format!("{:03}-{}.yaml", i + 1, r.step.id);
        write_atomic(&dir, &name, docs.join("---\n").as_bytes()).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}
