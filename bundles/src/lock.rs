//! The lock: exactly what a bundle carries, every artifact and every blob, by digest. A
//! reviewer approves it; a delta names its base by it.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::error::{Error, Result};
use crate::meta::{check_schema, BaseRef};

/// The lock's file name, beside the parts and inside the archive.
pub const LOCK_FILE: &str = "bundle.lock.json";

/// Every artifact and blob a bundle carries, by digest: what `create --lock` fetches again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    /// The schema version that wrote it.
    pub schema_version: String,
    /// Every artifact.
    pub artifacts: Vec<Artifact>,
    /// Every blob, once.
    pub blobs: Vec<LockedBlob>,
    /// The bundle a delta is laid over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// One blob a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedBlob {
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Lock {
    /// The lock as written: pretty JSON ending in a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a lock serializes");
        v.push(b'\n');
        v
    }

    /// Parses a lock; errors name `source`.
    pub fn from_json(raw: &[u8], source: &Path) -> Result<Lock> {
        check_schema(raw, source, "a lock file")?;
        serde_json::from_slice(raw).map_err(|e| Error::invalid(source, e.to_string()))
    }

    /// Reads a lock file, or the lock beside the parts when given a bundle directory.
    pub fn read(path: &Path) -> Result<Lock> {
        let file = if path.is_dir() { path.join(LOCK_FILE) } else { path.to_path_buf() };
        let raw = crate::regular_file::read_bounded(&file, crate::reader::MAX_WHOLE_MEMBER, "lock")?;
        Lock::from_json(&raw, &file)
    }

    /// The digests of every blob.
    pub fn blob_set(&self) -> BTreeSet<String> {
        self.blobs.iter().map(|b| b.digest.clone()).collect()
    }

    /// The SHA-256 of the lock as written, which names it as a base.
    pub fn sha256(&self) -> String {
        crate::digest::sha256_hex(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_artifact(extra: &str) -> String {
        format!(
            r#"{{"kind": "file", "reference": "files.airgap.local/eksctl:0.121.0", "digest": "sha256:{}",
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1{extra}}}"#,
            "a".repeat(64)
        )
    }

    fn lock_text(version: &str, artifact: &str) -> String {
        format!(r#"{{"schemaVersion": "{version}", "artifacts": [{artifact}], "blobs": []}}"#)
    }

    #[test]
    fn a_lock_without_published_checksums_reads_and_one_with_them_round_trips() {
        let old = Lock::from_json(lock_text("1.0", &file_artifact("")).as_bytes(), Path::new("l")).unwrap();
        assert_eq!(old.artifacts[0].published, None);
        let published = format!(
            r#", "published": {{"digest": "sha256:{}", "sha256From": "https://x/sums.txt", "sha256FromDigest": "sha256:{}"}}"#,
            "b".repeat(64),
            "c".repeat(64)
        );
        let new =
            Lock::from_json(lock_text(crate::SCHEMA_VERSION, &file_artifact(&published)).as_bytes(), Path::new("l"))
                .unwrap();
        assert_eq!(new.artifacts[0].published.as_ref().unwrap().sha256_from, "https://x/sums.txt");
        assert_eq!(Lock::from_json(&new.to_json(), Path::new("l")).unwrap(), new);
    }

    /// An artifact's digests are read as digests: what is not a SHA-256 is refused where the lock
    /// is read, naming the lock and the text, not where a blob is later looked up by it.
    #[test]
    fn a_digest_that_is_not_sha256_is_refused_as_the_lock_is_read() {
        let sha512 = lock_text("1.0", &file_artifact(""))
            .replace(&format!("sha256:{}", "a".repeat(64)), &format!("sha512:{}", "a".repeat(128)));
        let err = Lock::from_json(sha512.as_bytes(), Path::new("bundle.lock.json")).unwrap_err().to_string();
        assert!(err.starts_with("bundle.lock.json: ") && err.contains("only sha256"), "{err}");
        let published = format!(
            r#", "published": {{"digest": "sha256:short", "sha256From": "https://x/sums.txt", "sha256FromDigest": "sha256:{}"}}"#,
            "c".repeat(64)
        );
        let err = Lock::from_json(lock_text("1.0", &file_artifact(&published)).as_bytes(), Path::new("l"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("'sha256:short' is not a digest"), "{err}");
    }

    /// What lets a newer minor add optional fields: a reader skips the fields it does not know.
    #[test]
    fn fields_of_a_later_minor_are_skipped() {
        let later = lock_text("1.99", &file_artifact(r#", "somethingNew": {"x": 1}"#));
        let lock = Lock::from_json(later.as_bytes(), Path::new("l")).unwrap();
        assert_eq!(lock.artifacts[0].reference, "files.airgap.local/eksctl:0.121.0");
    }
}
