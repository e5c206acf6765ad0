//! Writing an OCI image layout: blobs by digest, artifacts added under their references, and
//! the file and git artifact shapes the rest of airgap reads.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use serde_json::json;

use crate::artifact::{
    Kind, ANNOTATION_KIND, ANNOTATION_REF, ANNOTATION_SOURCE, ANNOTATION_TITLE, EMPTY_CONFIG_MEDIA_TYPE,
    FILE_ARTIFACT_TYPE, FILE_LAYER_MEDIA_TYPE, GIT_ARTIFACT_TYPE, GIT_LAYER_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
};
use crate::digest::{blob_path, sha256_digest, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::layout::{LayoutDir, INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE};
use crate::outdir::write_atomic;

/// Writes an OCI image layout: blobs by digest, and artifacts under their references.
pub struct LayoutWriter {
    root: PathBuf,
    manifests: Vec<Descriptor>,
}

/// What a blob was stored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
}

impl LayoutWriter {
    /// Opens a layout for adding, creating it when the directory holds none yet.
    pub fn open(root: &Path) -> Result<LayoutWriter> {
        let manifests = if root.join(LAYOUT_FILE).exists() {
            LayoutDir::open(root)?.1.manifests().clone()
        } else {
            fs::create_dir_all(root.join("blobs/sha256")).at(root)?;
            write_atomic(root, LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?;
            Vec::new()
        };
        Ok(LayoutWriter { root: root.to_path_buf(), manifests })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the layout holds the blob.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.root.join(blob_path(d)).is_file()
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Stored> {
        self.put_reader(bytes, None)
    }

    /// Streams a blob in, hashing as it goes; with `expected`, a different digest is refused
    /// and nothing is stored.
    pub fn put_reader(&self, mut data: impl Read, expected: Option<&Digest>) -> Result<Stored> {
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile_in(&dir)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, File::create(&tmp).at(&tmp)?));
        let copied = io::copy(&mut data, &mut w);
        let (buf, hex, size) = w.finish();
        let flushed = copied.and_then(|_| buf.into_inner().map_err(|e| e.into_error())?.sync_all());
        if let Err(e) = flushed {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        let digest = sha256_digest(&hex);
        if let Some(want) = expected {
            if want != &digest {
                let _ = fs::remove_file(&tmp);
                return Err(Error::invalid(blob_path(want), format!("content hashes to {digest}, expected {want}")));
            }
        }
        let dest = self.root.join(blob_path(&digest));
        fs::rename(&tmp, &dest).at(&dest)?;
        Ok(Stored { digest, size })
    }

    /// Adds (or replaces) the artifact named `reference` in the index.
    pub fn add(&mut self, reference: &str, kind: Kind, mut desc: Descriptor, extra: &[(&str, &str)]) {
        let mut ann: HashMap<String, String> = desc.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_REF.into(), reference.into());
        ann.insert(ANNOTATION_KIND.into(), kind.to_string());
        for (k, v) in extra {
            ann.insert((*k).into(), (*v).into());
        }
        desc.set_annotations(Some(ann));
        self.manifests.retain(|d| {
            d.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF)).map(String::as_str) != Some(reference)
        });
        self.manifests.push(desc);
    }

    /// Stores a manifest and returns its descriptor.
    pub fn put_manifest(&self, media_type: &str, manifest: &serde_json::Value) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(manifest).expect("a manifest serializes");
        let stored = self.put_bytes(&bytes)?;
        Ok(descriptor(media_type, &stored))
    }

    /// A single-layer OCI artifact: a file (tool binary, dashboard) or a git repository.
    pub fn add_single_layer(
        &mut self,
        reference: &str,
        kind: Kind,
        title: &str,
        content: impl Read,
        expected: Option<&Digest>,
        source: Option<&str>,
    ) -> Result<Descriptor> {
        let (artifact_type, layer_type) = match kind {
            Kind::File => (FILE_ARTIFACT_TYPE, FILE_LAYER_MEDIA_TYPE),
            Kind::Git => (GIT_ARTIFACT_TYPE, GIT_LAYER_MEDIA_TYPE),
            other => return Err(Error::Usage(format!("{reference}: a {other} is not a single-layer artifact"))),
        };
        let layer = self.put_reader(content, expected)?;
        let empty = self.put_bytes(b"{}")?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE, "digest": empty.digest.to_string(), "size": empty.size},
            "layers": [{
                "mediaType": layer_type,
                "digest": layer.digest.to_string(),
                "size": layer.size,
                "annotations": {ANNOTATION_TITLE: title},
            }],
        });
        let desc = self.put_manifest(OCI_MANIFEST_MEDIA_TYPE, &manifest)?;
        let extra: Vec<(&str, &str)> = source.map(|s| vec![(ANNOTATION_SOURCE, s)]).unwrap_or_default();
        self.add(reference, kind, desc.clone(), &extra);
        Ok(desc)
    }

    /// Writes `index.json` with the artifacts in a stable order.
    pub fn finish(mut self) -> Result<()> {
        let key = |d: &Descriptor| d.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF)).cloned();
        self.manifests.sort_by_key(key);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX_MEDIA_TYPE,
            "manifests": self.manifests,
        });
        write_atomic(&self.root, INDEX_FILE, &serde_json::to_vec(&index).expect("index serializes"))
    }
}

/// A descriptor of a stored blob.
pub fn descriptor(media_type: &str, stored: &Stored) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(stored.digest.clone())
        .size(stored.size)
        .build()
        .expect("digest, size and media type are set")
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = dir.join(format!(".incoming-{}-{n}", std::process::id()));
    File::create(&p).at(&p)?.flush().at(&p)?;
    Ok(p)
}
