//! Where the registry's content lives. The server sees one [`Stores`]: an optional writable
//! store layered over the read-only bundles served in place. The writable store is one
//! [`LayoutStore`], which writes the registry's layout over an [`ObjectStore`] driver: a
//! directory or an S3-compatible bucket.
//!
//! The traits are blocking: a directory, a bundle's parts and an S3 client all do blocking
//! reads, and the server calls them through [`call`]: on tokio's blocking pool, unless every
//! store answers from memory. Blobs come back as readers over a byte range so nothing is held in
//! memory whole.

mod bundle;
mod dir;
mod layout;
mod objects;
mod s3;
mod verified;

use std::io::Read;
use std::sync::Arc;

use bundles::digest::Digest;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, Code};

pub use bundle::BundleStore;
pub use dir::DirObjects;
pub use layout::LayoutStore;
pub use objects::{Entry, ObjectStore, ObjectWriter};
pub use s3::{S3Location, S3Objects};

/// A manifest as served: its exact bytes (its digest is theirs) and the type it was pushed with.
pub struct StoredManifest {
    /// The bytes as pushed or carried.
    pub bytes: Vec<u8>,
    /// The `Content-Type` it is served with.
    pub media_type: String,
}

/// Reading: what every backend offers.
pub trait Storage: Send + Sync {
    /// The repositories with at least one manifest, sorted.
    fn repositories(&self) -> ApiResult<Vec<String>>;
    /// Sorted tags; `None` when the repository is not in this store.
    fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>>;
    /// The manifest `repo:tag` points at; `None` when this store does not hold the tag.
    fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>>;
    /// A manifest of `repo` by digest; `None` when this store does not hold it there.
    fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>>;
    /// A blob's length, which also says `repo` may serve it; `None` otherwise.
    fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>>;
    /// `len` bytes of the blob from `start`; the caller has checked the range against `blob_len`.
    fn open_blob(&self, repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>>;
    /// Descriptors of the manifests in `repo` whose `subject` is `d`.
    fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>>;
    /// `Some` for a store that accepts pushes.
    fn writable(&self) -> Option<&dyn WritableStorage> {
        None
    }
    /// Whether every call but reading a blob's bytes (`open_blob` and its reader) is answered
    /// from memory, never waiting on a disk or the network.
    fn answers_from_memory(&self) -> bool {
        false
    }
}

/// A manifest being stored, already validated by the server.
pub struct NewManifest<'a> {
    /// The digest of `bytes`, checked.
    pub digest: &'a Digest,
    /// The manifest as it was pushed.
    pub bytes: &'a [u8],
    /// The type it was pushed with, served back as its `Content-Type`.
    pub media_type: &'a str,
    /// Tags to point at it: the one in the URL, and any `tag` query parameters.
    pub tags: &'a [String],
    /// The subject's digest and this manifest's descriptor, for the referrers API.
    pub referrer: Option<(Digest, Value)>,
}

/// Writing: uploads are sessions identified by an id; a blob becomes visible only once its
/// upload is complete and its digest checked.
pub trait WritableStorage: Send + Sync {
    /// Opens an upload session for `repo` and returns its id.
    fn start_upload(&self, repo: &str) -> ApiResult<String>;
    /// Bytes received so far; `None` for an unknown session.
    fn upload_len(&self, repo: &str, id: &str) -> ApiResult<Option<u64>>;
    /// Appends at `offset`, which must be the current length (else `RANGE_INVALID`); returns
    /// the new length. A chunk that fails is not kept at all.
    fn append_upload(&self, repo: &str, id: &str, offset: u64, data: &mut dyn Read) -> ApiResult<u64>;
    /// Checks the content against `digest` and makes it a blob of `repo`; the session ends either way.
    fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> ApiResult<()>;
    /// Ends a session and removes what it received; `false` for an unknown session.
    fn cancel_upload(&self, repo: &str, id: &str) -> ApiResult<bool>;
    /// Ends every session that received nothing for `idle_for` (its client was killed or gave
    /// up); returns how many.
    fn expire_uploads(&self, idle_for: std::time::Duration) -> ApiResult<usize>;
    /// Links a blob this store already holds into `repo`; `false` when it does not hold it.
    fn mount_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool>;
    /// Stores a manifest in `repo` (also as a blob, as distribution serves it), with its tags and referrer.
    fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> ApiResult<()>;
    /// Removes a manifest from `repo`, with the tags that point at it; `false` when it was not there.
    fn delete_manifest(&self, repo: &str, d: &Digest) -> ApiResult<bool>;
    /// Removes a tag, leaving its manifest; `false` when there was no such tag.
    fn delete_tag(&self, repo: &str, tag: &str) -> ApiResult<bool>;
    /// Unlinks a blob from `repo` (other repositories keep theirs); `false` when it was not linked.
    fn delete_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool>;
}

/// The stores the server answers from, first match wins for reads.
#[derive(Clone)]
pub struct Stores {
    layers: Vec<Arc<dyn Storage>>,
    /// Every layer answers from memory (see [`Storage::answers_from_memory`]).
    in_memory: bool,
}

/// Runs `work`, which calls the stores, off the async threads on the blocking pool — or right
/// here when every store answers from memory: the hand-off to the pool costs more than such an
/// answer (measured: it halves the manifest requests a bundle serves per second).
/// `open_blob` never comes here; it may open files, so its callers always use the pool.
pub async fn call<C: Send + 'static, T: Send + 'static>(
    stores: &Stores,
    context: C,
    work: impl FnOnce(&C) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    if stores.in_memory {
        return work(&context);
    }
    crate::body::blocking(move || work(&context)).await
}

impl Stores {
    /// The layers in the order reads try them: the writable store first, then the bundles.
    pub fn new(layers: Vec<Arc<dyn Storage>>) -> Stores {
        let in_memory = layers.iter().all(|l| l.answers_from_memory());
        Stores { layers, in_memory }
    }

    /// The store pushes go to, if any.
    pub fn writer(&self) -> Option<&dyn WritableStorage> {
        self.layers.iter().find_map(|l| l.writable())
    }

    /// The store pushes go to, or the UNSUPPORTED answer a registry without one gives.
    pub fn writer_or_refuse(&self) -> ApiResult<&dyn WritableStorage> {
        self.writer().ok_or_else(|| {
            ApiError::new(Code::Unsupported, "this registry serves bundles only and has no storage for pushes")
        })
    }

    /// Every layer's repositories, sorted, each once.
    pub fn repositories(&self) -> ApiResult<Vec<String>> {
        let mut all = Vec::new();
        for l in &self.layers {
            all.extend(l.repositories()?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Every layer's tags of `repo`, sorted, each once; `None` when no layer has the repository.
    pub fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        let mut found: Option<Vec<String>> = None;
        for l in &self.layers {
            if let Some(t) = l.tags(repo)? {
                found.get_or_insert_with(Vec::new).extend(t);
            }
        }
        if let Some(t) = &mut found {
            t.sort();
            t.dedup();
        }
        Ok(found)
    }

    /// What `repo:tag` points at in the first layer that has it: a push overrides a carried tag.
    pub fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        self.first(|l| l.resolve_tag(repo, tag))
    }

    /// What `repo:tag` is in the read-only layers (the bundles), whatever a push laid over it.
    pub fn carried_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        for l in self.layers.iter().filter(|l| l.writable().is_none()) {
            if let Some(d) = l.resolve_tag(repo, tag)? {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// A manifest from the first layer that holds it in `repo`.
    pub fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>> {
        self.first(|l| l.manifest(repo, d))
    }

    /// A blob's length from the first layer that serves it in `repo`.
    pub fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        self.first(|l| l.blob_len(repo, d))
    }

    /// A byte range of a blob from the first layer that serves it in `repo`.
    pub fn open_blob(&self, repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        for l in &self.layers {
            if l.blob_len(repo, d)?.is_some() {
                return l.open_blob(repo, d, start, len);
            }
        }
        Err(ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {repo}")))
    }

    /// The referrers of `d` in `repo` across the layers, each descriptor once.
    pub fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>> {
        let mut all = Vec::new();
        for l in &self.layers {
            for r in l.referrers(repo, d)? {
                if !all.iter().any(|x: &Value| x.get("digest") == r.get("digest")) {
                    all.push(r);
                }
            }
        }
        Ok(all)
    }

    fn first<T>(&self, f: impl Fn(&dyn Storage) -> ApiResult<Option<T>>) -> ApiResult<Option<T>> {
        for l in &self.layers {
            if let Some(v) = f(l.as_ref())? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// The digest of the `subject` a stored manifest names, if any.
fn subject_of(manifest: &[u8]) -> Option<Digest> {
    let v: Value = serde_json::from_slice(manifest).ok()?;
    crate::names::parse_digest(v.get("subject")?.get("digest")?.as_str()?).ok()
}

/// The descriptor the referrers API lists for a manifest that names a subject.
pub fn referrer_descriptor(manifest: &Value, digest: &Digest, size: u64, media_type: &str) -> Option<(Digest, Value)> {
    let subject = manifest.get("subject")?.get("digest")?.as_str()?;
    let subject = crate::names::parse_digest(subject).ok()?;
    let artifact_type =
        manifest.get("artifactType").or_else(|| manifest.get("config").and_then(|c| c.get("mediaType"))).cloned();
    let mut desc = serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size});
    if let Some(t) = artifact_type {
        desc["artifactType"] = t;
    }
    if let Some(a) = manifest.get("annotations") {
        desc["annotations"] = a.clone();
    }
    Some((subject, desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that holds nothing and says where it would answer from.
    struct Empty {
        from_memory: bool,
    }

    impl Storage for Empty {
        fn repositories(&self) -> ApiResult<Vec<String>> {
            Ok(Vec::new())
        }
        fn tags(&self, _: &str) -> ApiResult<Option<Vec<String>>> {
            Ok(None)
        }
        fn resolve_tag(&self, _: &str, _: &str) -> ApiResult<Option<Digest>> {
            Ok(None)
        }
        fn manifest(&self, _: &str, _: &Digest) -> ApiResult<Option<StoredManifest>> {
            Ok(None)
        }
        fn blob_len(&self, _: &str, _: &Digest) -> ApiResult<Option<u64>> {
            Ok(None)
        }
        fn open_blob(&self, repo: &str, d: &Digest, _: u64, _: u64) -> ApiResult<Box<dyn Read + Send>> {
            Err(ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {repo}")))
        }
        fn referrers(&self, _: &str, _: &Digest) -> ApiResult<Vec<Value>> {
            Ok(Vec::new())
        }
        fn answers_from_memory(&self) -> bool {
            self.from_memory
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn storage_work_leaves_the_async_thread_unless_every_store_answers_from_memory() {
        let here = std::thread::current().id();
        let store = |from_memory| Arc::new(Empty { from_memory }) as Arc<dyn Storage>;
        let runs_on =
            |layers| async move { call(&Stores::new(layers), (), |_| Ok(std::thread::current().id())).await.unwrap() };
        assert_eq!(runs_on(vec![store(true), store(true)]).await, here);
        assert_ne!(runs_on(vec![store(false), store(true)]).await, here);
        assert_ne!(runs_on(vec![store(false)]).await, here);
    }
}
