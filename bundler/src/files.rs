//! Files and tool binaries fetched over HTTP and checked against their published SHA-256, given
//! in the spec or read from the checksums file it names (`sha256_from`, see [`crate::published`]).
//!
//! Named by [`bundles::naming`]: the layer's title is the file name, so the registry serves it at
//! `/files/files.airgap.local/<name>/<tag>/<name>` and `oras pull` writes it under that name.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{
    Artifact, Kind, Published, ANNOTATION_EXECUTABLE, ANNOTATION_FILE_PLATFORM, ANNOTATION_PUBLISHED_DIGEST,
    ANNOTATION_PUBLISHED_SHA256_FROM, ANNOTATION_PUBLISHED_SHA256_FROM_DIGEST, ANNOTATION_SOURCE,
};
use bundles::digest::{parse_sha256, Digest};
use bundles::layout_writer::LayoutWriter;

use crate::cache::Cache;
use crate::http::{get_with_retry, Mirrors};
use crate::progress::Progress;
use crate::published;
use crate::spec::FileEntry;

/// What the entry's name depends on, for [`bundles::naming`].
fn naming(entry: &FileEntry) -> bundles::naming::FileEntry<'_> {
    bundles::naming::FileEntry {
        url: &entry.url,
        name: entry.name.as_deref(),
        extract: entry.extract.as_deref(),
        version: &entry.version,
        platform: entry.platform.as_deref(),
    }
}

pub fn title(entry: &FileEntry) -> String {
    naming(entry).title()
}

pub fn reference(entry: &FileEntry) -> Result<String> {
    Ok(naming(entry).reference()?)
}

/// What a file's download must hash to, and the checksums file that said so when the spec names
/// one.
pub struct Expected {
    pub download: Digest,
    pub published: Option<Published>,
}

/// The spec's `sha256`; for `sha256_from`, the checksum the lock pinned (`locked`: the entry's
/// artifact in the lock, when creating from one), else the one the checksums file lists now.
pub async fn expected(
    http: &reqwest::Client,
    mirrors: &Mirrors,
    entry: &FileEntry,
    locked: Option<&Artifact>,
) -> Result<Expected> {
    let Some(from) = &entry.sha256_from else {
        let hex = entry.sha256.as_deref().unwrap_or_default();
        return Ok(Expected { download: sha256_of_hex(hex)?, published: None });
    };
    let published = match locked {
        None => published::read(http, mirrors, &entry.url, from).await?,
        Some(a) => match &a.published {
            Some(p) if p.sha256_from == *from => p.clone(),
            _ => bail!(
                "the lock records no checksum read from {from} for {}; run `airgap bundle lock` again",
                a.reference
            ),
        },
    };
    Ok(Expected { download: published.digest.clone(), published: Some(published) })
}

fn sha256_of_hex(hex: &str) -> Result<Digest> {
    Ok(parse_sha256(&format!("sha256:{}", hex.to_ascii_lowercase()))?)
}

/// Downloads what the entry's URL serves into the cache, checked against `expected`.
pub async fn fetch(
    http: &reqwest::Client,
    mirrors: &Mirrors,
    cache: &Cache,
    progress: &Progress,
    entry: &FileEntry,
    expected: &Digest,
) -> Result<()> {
    let what = format!("files: {} ({})", title(entry), entry.url);
    let url = mirrors.map_url(&entry.url);
    cache.download(expected, None, &what, progress, async |offset| get_with_retry(http, &url, offset).await).await
}

/// Adds the file artifact to the layout: the download itself, or the member `extract` names.
pub fn stage(w: &mut LayoutWriter, cache: &Cache, entry: &FileEntry, expected: &Expected) -> Result<()> {
    let reference = reference(entry)?;
    let title = title(entry);
    let path = cache.blob_path(&expected.download);
    let desc = match &entry.extract {
        None => {
            let f = File::open(&path).with_context(|| path.display().to_string())?;
            w.add_single_layer(&reference, Kind::File, &title, f, None, Some(&entry.url))?
        }
        Some(member) => with_member(&path, member, |r| {
            Ok(w.add_single_layer(&reference, Kind::File, &title, r, None, Some(&entry.url))?)
        })
        .with_context(|| format!("files: {} ({})", title, entry.url))?,
    };
    let mut extra = vec![(ANNOTATION_SOURCE, entry.url.as_str())];
    if entry.executable {
        extra.push((ANNOTATION_EXECUTABLE, "true"));
    }
    if let Some(p) = &entry.platform {
        extra.push((ANNOTATION_FILE_PLATFORM, p.as_str()));
    }
    if let Some(p) = &expected.published {
        extra.extend([
            (ANNOTATION_PUBLISHED_DIGEST, p.digest.as_ref()),
            (ANNOTATION_PUBLISHED_SHA256_FROM, p.sha256_from.as_str()),
            (ANNOTATION_PUBLISHED_SHA256_FROM_DIGEST, p.sha256_from_digest.as_ref()),
        ]);
    }
    w.add(&reference, Kind::File, desc, &extra);
    Ok(())
}

fn with_member<T>(archive: &Path, member: &str, f: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
    let file = File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let want = member.trim_start_matches("./");
    let mut names = Vec::new();
    for entry in tar.entries().context("not a .tar.gz")? {
        let mut entry = entry.context("not a .tar.gz")?;
        let name = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if name == want && entry.header().entry_type().is_file() {
            return f(&mut entry);
        }
        if names.len() < 20 {
            names.push(name);
        }
    }
    Err(anyhow!("no file '{member}' in the archive (it has {}…)", names.join(", ")))
}
