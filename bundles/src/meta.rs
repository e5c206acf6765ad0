//! `bundle.json`: what a reader needs to use the parts in place, beside them on the media.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::archive::Member;
use crate::error::{Error, IoContext, Result};

pub const META_FILE: &str = "bundle.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    pub schema_version: String,
    pub generator: String,
    pub archive: ArchiveMeta,
    /// The bundle this one is a delta over, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveMeta {
    pub parts: Vec<PartMeta>,
    pub max_part_size: u64,
    pub uncompressed_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    pub name: String,
    pub size: u64,
}

/// Names a base bundle by the SHA-256 of its lock, which lists every blob it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseRef {
    pub lock_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Refuses a schema whose major version this build does not know, before reading anything else.
pub fn check_schema_version(found: &str, source: &Path) -> Result<()> {
    let ours = crate::SCHEMA_VERSION.split('.').next().expect("a major version");
    let major = found.split('.').next().unwrap_or_default();
    if major != ours {
        return Err(Error::invalid(
            source,
            format!("schema version {found} is not supported: this airgap reads {ours}.x; use the airgap release that wrote the bundle or a newer one"),
        ));
    }
    Ok(())
}

impl BundleMeta {
    pub fn read(dir: &Path) -> Result<BundleMeta> {
        let path = dir.join(META_FILE);
        let text = std::fs::read(&path).at(&path)?;
        let raw: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::invalid(&path, format!("not valid JSON: {e}")))?;
        let version = raw
            .get("schemaVersion")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::invalid(&path, "no schemaVersion: not an airgap bundle, or a damaged copy"))?;
        check_schema_version(version, &path)?;
        serde_json::from_value(raw).map_err(|e| Error::invalid(&path, e.to_string()))
    }

    pub fn part_list(&self) -> Vec<(String, u64)> {
        self.archive.parts.iter().map(|p| (p.name.clone(), p.size)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_major_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), r#"{"schemaVersion":"2.0"}"#).unwrap();
        let err = BundleMeta::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bundle.json") && err.contains("2.0") && err.contains("1.x"), "{err}");
        assert!(check_schema_version("1.7", Path::new("x")).is_ok());
    }
}
