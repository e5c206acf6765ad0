//! `bundle.json`: what a reader needs to use the parts in place, beside them on the media.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::archive::Member;
use crate::error::{Error, Result};

/// The metadata file beside the parts.
pub const META_FILE: &str = "bundle.json";
/// About 400,000 members; a platform's bundle has a few thousand. Beyond this a `bundle.json`
/// is damaged or hostile, and is refused before it is parsed.
pub const MAX_META_SIZE: u64 = 64 << 20;

/// What a reader needs before it opens the archive: its parts, its members and its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    /// The schema version that wrote it.
    pub schema_version: String,
    /// The airgap that wrote it.
    pub generator: String,
    /// The archive's parts and sizes.
    pub archive: ArchiveMeta,
    /// The bundle this one is a delta over, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    /// Every member of the archive and where its data is.
    pub members: Vec<Member>,
}

/// The archive as it is cut into parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveMeta {
    /// The parts, in order.
    pub parts: Vec<PartMeta>,
    /// The largest a part may be.
    pub max_part_size: u64,
    /// The size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The uncompressed size at which the writer cut frames: no frame of the archive is larger,
    /// so a reader never decompresses more than this at once. Absent before schema 1.2, whose
    /// writer always cut at [`crate::seekable::DEFAULT_FRAME_SIZE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<u64>,
}

/// One part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Names a base bundle by the SHA-256 of its lock, which lists every blob it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseRef {
    /// The SHA-256 of the base's lock.
    pub lock_sha256: String,
    /// What the base is, for people.
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

/// Reads the schema version of a JSON document (`what` says what it should be) before the rest,
/// so an unknown major is named as such rather than as whatever field it changed.
pub fn check_schema(raw: &[u8], source: &Path, what: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Versioned {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<String>,
    }
    let v: Versioned = serde_json::from_slice(raw).map_err(|e| Error::invalid(source, format!("not {what}: {e}")))?;
    let version = v
        .schema_version
        .ok_or_else(|| Error::invalid(source, format!("no schemaVersion: not {what}, or a damaged copy")))?;
    check_schema_version(&version, source)
}

impl BundleMeta {
    /// Reads the metadata of the bundle in `dir`, refusing an unknown major schema.
    pub fn read(dir: &Path) -> Result<BundleMeta> {
        let path = dir.join(META_FILE);
        let text = crate::regular_file::read_bounded(&path, MAX_META_SIZE, META_FILE)?;
        check_schema(&text, &path, "an airgap bundle")?;
        serde_json::from_slice(&text).map_err(|e| Error::invalid(&path, e.to_string()))
    }

    /// (name, size) of every part.
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
