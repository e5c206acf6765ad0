//! OCI image layouts (image-spec 1.1): reading one from a directory, and walking the blobs
//! that every artifact in `index.json` needs, from any store of blobs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use serde_json::Value;

use crate::artifact::ANNOTATION_PLATFORMS;
use crate::digest::{blob_path, parse_sha256, Digest};
use crate::error::{Error, IoContext, Result};

/// The layout's index of artifacts.
pub const INDEX_FILE: &str = "index.json";
/// The file that marks a directory as an OCI layout.
pub const LAYOUT_FILE: &str = "oci-layout";
/// What the layout marker holds.
pub const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Manifests and configs are read whole; nothing legitimate is larger than this.
pub const MAX_JSON_BLOB: u64 = 16 << 20;

/// Anything that hands out blobs by digest: a layout directory, a bundle, several bundles.
pub trait BlobStore: Sync {
    /// The blob's size, or `None` when the store does not have it.
    fn blob_len(&self, d: &Digest) -> Result<Option<u64>>;
    /// A reader over the blob.
    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>>;

    /// A manifest or config read whole, refused when it is larger than [`MAX_JSON_BLOB`].
    fn read_json_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let len = self.blob_len(d)?.ok_or_else(|| Error::invalid(blob_path(d), "blob is missing"))?;
        if len > MAX_JSON_BLOB {
            return Err(Error::invalid(blob_path(d), format!("{len} bytes is too large for a manifest or config")));
        }
        self.read_whole(d)
    }

    /// A manifest or config read whole, its size already checked; a store with a faster way than
    /// streaming it says so here.
    fn read_whole(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut blob = self.open_blob(d)?.take(MAX_JSON_BLOB);
        blob.read_to_end(&mut out).map_err(|e| Error::io(blob_path(d), e))?;
        Ok(out)
    }
}

/// An OCI image layout on disk.
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// Opens a layout, refusing a directory that is not one with a message that says so.
    pub fn open(root: &Path) -> Result<(LayoutDir, ImageIndex, Vec<u8>)> {
        let marker = root.join(LAYOUT_FILE);
        let text = std::fs::read_to_string(&marker)
            .map_err(|e| Error::invalid(&marker, format!("not an OCI image layout ({e})")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::invalid(&marker, e.to_string()))?;
        if v.get("imageLayoutVersion").and_then(Value::as_str).is_none_or(|s| !s.starts_with("1.")) {
            return Err(Error::invalid(&marker, "unsupported imageLayoutVersion (expected 1.x)"));
        }
        let index_path = root.join(INDEX_FILE);
        let raw = std::fs::read(&index_path).at(&index_path)?;
        let index = parse_index(&raw, &index_path)?;
        Ok((LayoutDir { root: root.to_path_buf() }, index, raw))
    }

    /// Where the blob is (or would be) on disk.
    pub fn blob_file(&self, d: &Digest) -> PathBuf {
        self.root.join(blob_path(d))
    }
}

impl BlobStore for LayoutDir {
    fn blob_len(&self, d: &Digest) -> Result<Option<u64>> {
        let p = self.blob_file(d);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Err(Error::invalid(&p, "blob is not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        let p = self.blob_file(d);
        Ok(Box::new(File::open(&p).at(&p)?))
    }
}

/// Parses `index.json`; errors name `source`.
pub fn parse_index(raw: &[u8], source: &Path) -> Result<ImageIndex> {
    serde_json::from_slice(raw).map_err(|e| Error::invalid(source, format!("not an OCI image index: {e}")))
}

/// A descriptor's digest, checked to be SHA-256; errors name `context`.
pub fn descriptor_digest(desc: &Descriptor, context: &str) -> Result<Digest> {
    parse_sha256(desc.digest().as_ref()).map_err(|e| Error::invalid(context, e.to_string()))
}

fn platform_string(v: &Value) -> Option<String> {
    let os = v.get("os")?.as_str()?;
    let arch = v.get("architecture")?.as_str()?;
    Some(match v.get("variant").and_then(Value::as_str) {
        Some(var) => format!("{os}/{arch}/{var}"),
        None => format!("{os}/{arch}"),
    })
}

/// The platforms an artifact's root descriptor says it carries; `None` means all of them.
pub fn carried_platforms(desc: &Descriptor) -> Option<Vec<String>> {
    let list = desc.annotations().as_ref()?.get(ANNOTATION_PLATFORMS)?;
    Some(list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// Every blob an artifact needs (manifests, configs, layers), with the size its parent
/// descriptor declares. Children of an index for platforms the artifact does not carry may
/// be absent; anything else that is absent is an error naming the artifact and the blob.
pub struct Walk<'a> {
    /// Where blobs are read.
    pub store: &'a dyn BlobStore,
    /// Blobs that live elsewhere (a delta's base): known, but not read.
    pub elsewhere: &'a dyn Fn(&Digest) -> bool,
    /// Every blob found: digest → size.
    pub blobs: BTreeMap<String, u64>,
    /// The platforms found under each root index: digest → platforms.
    pub platforms: BTreeMap<String, Vec<String>>,
}

impl<'a> Walk<'a> {
    /// A walk over `store`, not reading what `elsewhere` has.
    pub fn new(store: &'a dyn BlobStore, elsewhere: &'a dyn Fn(&Digest) -> bool) -> Self {
        Walk { store, elsewhere, blobs: BTreeMap::new(), platforms: BTreeMap::new() }
    }

    /// Walks the artifact rooted at `root`, named `name` in errors.
    pub fn artifact(&mut self, root: &Descriptor, name: &str) -> Result<()> {
        let carried = carried_platforms(root);
        self.node(root, name, carried.as_deref(), true)
    }

    fn check_present(&self, d: &Digest, declared: u64, name: &str) -> Result<()> {
        match self.store.blob_len(d)? {
            Some(len) if len == declared => Ok(()),
            Some(len) => Err(Error::invalid(
                blob_path(d),
                format!("{name}: blob is {len} bytes, its descriptor says {declared}"),
            )),
            None => Err(Error::invalid(blob_path(d), format!("{name}: blob is missing"))),
        }
    }

    fn node(&mut self, desc: &Descriptor, name: &str, carried: Option<&[String]>, manifest: bool) -> Result<()> {
        let d = descriptor_digest(desc, name)?;
        let key = d.to_string();
        if self.blobs.contains_key(&key) {
            return Ok(());
        }
        let declared = desc.size();
        self.blobs.insert(key.clone(), declared);
        if (self.elsewhere)(&d) {
            // An index the base has may still gain platforms here: descend when it is at hand.
            if !manifest || self.store.blob_len(&d)?.is_none() {
                return Ok(());
            }
        } else {
            self.check_present(&d, declared, name)?;
        }
        if !manifest {
            return Ok(());
        }
        let raw = self.store.read_json_blob(&d)?;
        let v: Value = serde_json::from_slice(&raw)
            .map_err(|e| Error::invalid(blob_path(&d), format!("{name}: manifest is not JSON: {e}")))?;
        if let Some(children) = v.get("manifests").and_then(Value::as_array) {
            for child in children {
                let cd: Descriptor = serde_json::from_value(child.clone())
                    .map_err(|e| Error::invalid(blob_path(&d), format!("{name}: bad descriptor: {e}")))?;
                let platform = child.get("platform").and_then(platform_string);
                if let Some(p) = &platform {
                    self.platforms.entry(name.to_string()).or_default().push(p.clone());
                }
                let wanted = match (carried, &platform) {
                    (Some(list), Some(p)) => list.iter().any(|c| c == p),
                    _ => true,
                };
                // A platform not carried is part of the artifact only where its manifest is at hand:
                // a lock lists what a bundle carries, not what the index offers.
                let cdig = descriptor_digest(&cd, name)?;
                if wanted || self.store.blob_len(&cdig)?.is_some() {
                    self.node(&cd, name, carried, true)?;
                }
            }
            return Ok(());
        }
        let config = v.get("config").cloned();
        let layers = v.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(cfg) = config {
            let cd: Descriptor = serde_json::from_value(cfg)
                .map_err(|e| Error::invalid(blob_path(&d), format!("{name}: bad config descriptor: {e}")))?;
            self.node(&cd, name, carried, false)?;
        }
        for layer in layers {
            let ld: Descriptor = serde_json::from_value(layer)
                .map_err(|e| Error::invalid(blob_path(&d), format!("{name}: bad layer descriptor: {e}")))?;
            self.node(&ld, name, carried, false)?;
        }
        Ok(())
    }
}

/// The os/arch of a single-platform image, read from its config.
pub fn image_platform(store: &dyn BlobStore, manifest: &Digest) -> Result<Option<String>> {
    let m: Value = serde_json::from_slice(&store.read_json_blob(manifest)?)
        .map_err(|e| Error::invalid(blob_path(manifest), e.to_string()))?;
    let Some(cfg) = m.get("config").and_then(|c| c.get("digest")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let Ok(cd) = parse_sha256(cfg) else { return Ok(None) };
    if store.blob_len(&cd)?.is_none() {
        return Ok(None);
    }
    let c: Value = serde_json::from_slice(&store.read_json_blob(&cd)?).unwrap_or(Value::Null);
    Ok(platform_string(&c))
}
