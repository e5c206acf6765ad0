//! What a bundle takes: each artifact's blobs (manifests, configs, layers), the total with the
//! blobs that artifacts share counted once, and the files the bundle occupies on the media.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::artifact::{Artifact, ANNOTATION_REF};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::layout::Walk;
use crate::reader::Bundle;

/// An artifact and the size of everything it needs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizedArtifact {
    /// The artifact as the lock lists it.
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Every blob the artifact needs, its manifests included.
    pub carried_size: u64,
}

/// A file of the bundle directory.
#[derive(Debug, Clone, Serialize)]
pub struct MediaFile {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a bundle carries and what it takes on the media.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Footprint {
    /// Every artifact with its size.
    pub artifacts: Vec<SizedArtifact>,
    /// The artifacts' blobs, each counted once however many artifacts share it.
    pub total_size: u64,
    /// How many distinct blobs the artifacts need.
    pub blobs: usize,
    /// For a delta: the part of `total_size` its base carries instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_base: Option<u64>,
    /// Every file of the bundle directory: parts, metadata, signature, the airgap binary.
    pub on_media: Vec<MediaFile>,
    /// The size of `on_media`.
    pub on_media_size: u64,
}

/// Measures a bundle.
pub fn of(bundle: &Bundle) -> Result<Footprint> {
    let lock = bundle.lock()?;
    let index = bundle.index()?;
    let delta = lock.base.is_some();
    // A delta's blobs that its base carries are known by their descriptors, not read.
    let elsewhere = |d: &Digest| delta && !bundle.has_blob(d);
    let mut per_root: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
    for desc in index.manifests() {
        let reference = desc.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF)).cloned().unwrap_or_default();
        let mut walk = Walk::new(bundle, &elsewhere);
        walk.artifact(desc, &reference)?;
        per_root.insert((reference, desc.digest().to_string()), walk.blobs.values().sum());
        all.extend(walk.blobs);
    }
    let artifacts = lock
        .artifacts
        .into_iter()
        .map(|a| {
            let carried_size = per_root.get(&(a.reference.clone(), a.digest.to_string())).copied().unwrap_or(a.size);
            SizedArtifact { artifact: a, carried_size }
        })
        .collect();
    let in_base = delta.then(|| {
        all.iter()
            .filter(|(d, _)| crate::digest::parse_sha256(d).is_ok_and(|d| !bundle.has_blob(&d)))
            .map(|(_, s)| s)
            .sum()
    });
    let on_media = media_files(bundle.dir())?;
    Ok(Footprint {
        artifacts,
        total_size: all.values().sum(),
        blobs: all.len(),
        in_base,
        on_media_size: on_media.iter().map(|f| f.size).sum(),
        on_media,
    })
}

fn media_files(dir: &Path) -> Result<Vec<MediaFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let meta = entry.metadata().at(&entry.path())?;
        if meta.is_file() {
            files.push(MediaFile { name: entry.file_name().to_string_lossy().into_owned(), size: meta.len() });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}
