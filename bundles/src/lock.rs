//! The lock: exactly what a bundle carries, every artifact and every blob, by digest. A
//! reviewer approves it; a delta names its base by it.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::error::{Error, IoContext, Result};
use crate::meta::{check_schema_version, BaseRef};

pub const LOCK_FILE: &str = "bundle.lock.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    pub schema_version: String,
    pub artifacts: Vec<Artifact>,
    pub blobs: Vec<LockedBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedBlob {
    pub digest: String,
    pub size: u64,
}

impl Lock {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a lock serializes");
        v.push(b'\n');
        v
    }

    pub fn from_json(raw: &[u8], source: &Path) -> Result<Lock> {
        let v: serde_json::Value =
            serde_json::from_slice(raw).map_err(|e| Error::invalid(source, format!("not a lock file: {e}")))?;
        let version = v.get("schemaVersion").and_then(|s| s.as_str()).unwrap_or_default();
        check_schema_version(version, source)?;
        serde_json::from_value(v).map_err(|e| Error::invalid(source, e.to_string()))
    }

    /// Reads a lock file, or the lock beside the parts when given a bundle directory.
    pub fn read(path: &Path) -> Result<Lock> {
        let file = if path.is_dir() { path.join(LOCK_FILE) } else { path.to_path_buf() };
        let raw = std::fs::read(&file).at(&file)?;
        Lock::from_json(&raw, &file)
    }

    pub fn blob_set(&self) -> BTreeSet<String> {
        self.blobs.iter().map(|b| b.digest.clone()).collect()
    }

    pub fn sha256(&self) -> String {
        crate::digest::sha256_hex(&self.to_json())
    }
}
