//! Bundles served in place: the repositories and tags come from the references annotated in
//! each bundle's `index.json`; blobs are read from the parts through the bundle's seek table.
//!
//! Several bundles form one store. A later bundle's tag wins over an earlier one's, and a blob
//! is taken from whichever bundle carries it, so a delta laid over its base serves whole images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::Context;
use bundles::artifact::{Reference, ANNOTATION_REF};
use bundles::digest::{blob_path, parse_sha256, Digest};
use bundles::layout::BlobStore;
use bundles::Bundle;
use serde_json::Value;

use super::verified::Verified;
use super::{referrer_descriptor, Storage, StoredManifest};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{valid_name, valid_tag};

/// Bundles served read-only from their parts, as the bundle lays them out.
pub struct BundleStore {
    bundles: Vec<Bundle>,
    /// Repository (host-first, and bare where unambiguous) → tag → manifest.
    repos: BTreeMap<String, BTreeMap<String, Digest>>,
    /// Manifests reachable from the artifacts, with their media types and bytes: read once at
    /// start, since decompressing a frame for every manifest request would cost a hundred times
    /// more than the request itself, and a platform's manifests are small.
    manifests: HashMap<Digest, (String, Vec<u8>)>,
    referrers: HashMap<Digest, Vec<Value>>,
}

impl BundleStore {
    /// Opens the bundles (a delta after its base, which it is checked against) and names their
    /// repositories.
    pub fn open(dirs: &[PathBuf]) -> anyhow::Result<BundleStore> {
        let mut store = BundleStore {
            bundles: Vec::new(),
            repos: BTreeMap::new(),
            manifests: HashMap::new(),
            referrers: HashMap::new(),
        };
        for dir in dirs {
            store.bundles.push(Bundle::open(dir).with_context(|| format!("cannot open bundle {}", dir.display()))?);
        }
        // Served without its base, a delta would answer 404 for the blobs only the base carries.
        bundles::delta::check_bases(&store.bundles)?;
        let mut roots = Vec::new();
        for (bundle, dir) in store.bundles.clone().iter().zip(dirs) {
            let index = bundle.index().with_context(|| format!("bundle {}", dir.display()))?;
            for desc in index.manifests() {
                let Some(text) = desc.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF)) else { continue };
                let reference = Reference::parse(text).with_context(|| format!("bundle {}", dir.display()))?;
                let digest = parse_sha256(desc.digest().as_ref())?;
                roots.push((reference, digest.clone()));
                store.walk(&digest, desc.media_type().to_string(), text)?;
            }
        }
        store.name_repositories(&roots);
        Ok(store)
    }

    /// Records a manifest and, for an index, its children that the bundles carry.
    fn walk(&mut self, d: &Digest, media_type: String, reference: &str) -> anyhow::Result<()> {
        if self.manifests.contains_key(d) {
            return Ok(());
        }
        let Some(bundle) = self.bundle_with(d) else {
            // A platform the bundle chose not to carry, or a root only the base bundle has.
            return Ok(());
        };
        let bytes = bundle.read_json_blob(d).with_context(|| format!("{reference}: manifest {d}"))?;
        if bundles::digest::sha256_hex(&bytes) != d.digest() {
            anyhow::bail!(
                "{reference}: manifest {d} in bundle {} does not match its digest: the bundle is damaged or was \
                 altered (airgap bundle verify names what)",
                bundle.dir().display()
            );
        }
        let manifest: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{reference}: manifest {d} is not JSON"))?;
        let media_type = manifest.get("mediaType").and_then(Value::as_str).map(str::to_string).unwrap_or(media_type);
        if let Some((subject, desc)) = referrer_descriptor(&manifest, d, bytes.len() as u64, &media_type) {
            self.referrers.entry(subject).or_default().push(desc);
        }
        self.manifests.insert(d.clone(), (media_type, bytes));
        for child in manifest.get("manifests").and_then(Value::as_array).into_iter().flatten() {
            let (Some(cd), Some(mt)) =
                (child.get("digest").and_then(Value::as_str), child.get("mediaType").and_then(Value::as_str))
            else {
                continue;
            };
            let cd = parse_sha256(cd).with_context(|| format!("{reference}: index {d}"))?;
            self.walk(&cd, mt.to_string(), reference)?;
        }
        Ok(())
    }

    /// Each artifact under `host/path`, and under `path` alone when no other host has that path.
    fn name_repositories(&mut self, roots: &[(Reference, Digest)]) {
        let mut hosts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (r, _) in roots {
            hosts.entry(r.repository.as_str()).or_default().insert(r.registry.as_str());
        }
        for (r, digest) in roots {
            let mut names = vec![r.name()];
            if hosts[r.repository.as_str()].len() == 1 {
                names.push(r.repository.clone());
            }
            for name in names.into_iter().filter(|n| valid_name(n)) {
                let tags = self.repos.entry(name).or_default();
                if let Some(tag) = r.tag.as_deref().filter(|t| valid_tag(t)) {
                    tags.insert(tag.to_string(), digest.clone());
                }
            }
        }
    }

    fn bundle_with(&self, d: &Digest) -> Option<&Bundle> {
        self.bundles.iter().find(|b| b.has_blob(d))
    }
}

impl Storage for BundleStore {
    fn repositories(&self) -> ApiResult<Vec<String>> {
        Ok(self.repos.keys().cloned().collect())
    }

    fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        Ok(self.repos.get(repo).map(|t| t.keys().cloned().collect()))
    }

    fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        Ok(self.repos.get(repo).and_then(|t| t.get(tag)).cloned())
    }

    fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>> {
        let (Some(_), Some((media_type, bytes))) = (self.repos.get(repo), self.manifests.get(d)) else {
            return Ok(None);
        };
        Ok(Some(StoredManifest { bytes: bytes.clone(), media_type: media_type.clone() }))
    }

    // A bundle is one trusted set of content: any of its blobs and manifests may be read through
    // any of its repositories, as through a registry that deduplicates across repositories.
    fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        if !self.repos.contains_key(repo) {
            return Ok(None);
        }
        Ok(self.bundle_with(d).and_then(|b| b.member(&blob_path(d))).map(|(_, size)| size))
    }

    fn open_blob(&self, repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        let missing = || ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {repo}"));
        let bundle = self.bundle_with(d).ok_or_else(missing)?;
        let mut reader = bundle.open_member(&blob_path(d)).map_err(|_| missing())?;
        let size = reader.len();
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(ApiError::new(
                Code::RangeInvalid,
                format!("bytes {start}+{len} lie outside the {size} bytes of blob {d}"),
            ));
        }
        if start == 0 && len == size {
            return Ok(Box::new(Verified::new(reader, d.clone(), size, format!("bundle {}", bundle.dir().display()))));
        }
        reader.seek(SeekFrom::Start(start)).map_err(|e| ApiError::io(format!("blob {d}"), e))?;
        Ok(Box::new(reader.take(len)))
    }

    fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>> {
        if !self.repos.contains_key(repo) {
            return Ok(Vec::new());
        }
        Ok(self.referrers.get(d).cloned().unwrap_or_default())
    }

    // Names, tags and manifests are read at start; a blob's length is in the bundle's member index.
    fn answers_from_memory(&self) -> bool {
        true
    }
}
