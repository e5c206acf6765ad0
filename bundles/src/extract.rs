//! Bundle → OCI image layout on disk, refusing anything that would land outside the destination,
//! and finishing only when what was written is a whole layout that the archive's own
//! `SHA256SUMS` vouches for, file by file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::artifact::list_artifacts;
use crate::checksums;
use crate::digest::{from_blob_path, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::layout::{BlobStore, LayoutDir, Walk};
use crate::lock::{Lock, LOCK_FILE};
use crate::outdir::OutDir;
use crate::pack::{INNER_DIR, SUMS_FILE};
use crate::reader::{Bundle, MAX_WHOLE_MEMBER};
use crate::safe_path::check_bundle_member;

/// What extraction wrote.
#[derive(Debug)]
pub struct Extracted {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Unpacks the bundle in `dir` into `dest` (see [`extract_stream`]).
pub fn extract(dir: &Path, dest: &Path) -> Result<Extracted> {
    let bundle = Bundle::open(dir)?;
    extract_stream(bundle.open_range(0, bundle.uncompressed_len()), &dir.join("bundle.tar.zst.*"), dest)
}

/// Unpacks a bundle's tar stream into `dest`: regular files with the names a bundle holds, each
/// listed in and matching the archive's own `SHA256SUMS`, each blob matching its digest, and
/// every blob that `index.json` needs present (or, in a delta, left to its base). On any error the
/// destination is left as it was found.
pub fn extract_stream(stream: impl Read, source: &Path, dest: &Path) -> Result<Extracted> {
    let out = OutDir::prepare(dest)?;
    let mut archive = tar::Archive::new(stream);
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut bytes = 0u64;
    for entry in archive.entries().at(source)? {
        let mut entry = entry.at(source)?;
        let name = std::str::from_utf8(&entry.path_bytes())
            .map_err(|_| Error::invalid(source, "a member name is not UTF-8"))?
            .to_string();
        check_bundle_member(&name).map_err(|e| Error::invalid(source, e.to_string()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Error::invalid(
                source,
                format!(
                    "member '{name}' is a {:?} entry; bundles hold regular files only",
                    entry.header().entry_type()
                ),
            ));
        }
        if hashes.contains_key(&name) {
            return Err(Error::invalid(source, format!("member '{name}' appears twice")));
        }
        let target = out.path().join(&name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        // No member's name starts with a dot, so this name is nobody's.
        let file_name = target.file_name().expect("a checked member name").to_string_lossy();
        let tmp = target.with_file_name(format!(".{file_name}.partial"));
        let file = fs::File::create(&tmp).at(&tmp)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        io::copy(&mut entry, &mut w).map_err(|e| Error::io(source.join(&name), e))?;
        let (buf, hex, n) = w.finish();
        buf.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?.sync_all().at(&tmp)?;
        fs::rename(&tmp, &target).at(&target)?;
        hashes.insert(name, hex);
        bytes += n;
    }
    check_against_sums(&hashes, out.path(), source)?;
    check_layout(out.path())?;
    let files = hashes.len();
    out.keep();
    Ok(Extracted { files, bytes })
}

/// Every member but `SHA256SUMS` itself listed there with its hash, every listed one written,
/// and every blob the hash its name says.
fn check_against_sums(hashes: &BTreeMap<String, String>, dir: &Path, source: &Path) -> Result<()> {
    let sums_path = dir.join(SUMS_FILE);
    if !hashes.contains_key(SUMS_FILE) {
        return Err(Error::invalid(source, "archive has no SHA256SUMS: not a bundle archive"));
    }
    let raw = crate::regular_file::read_bounded(&sums_path, MAX_WHOLE_MEMBER, "archive SHA256SUMS")?;
    let text = String::from_utf8(raw).map_err(|_| Error::invalid(source, "the archive's SHA256SUMS is not text"))?;
    let expected: BTreeMap<String, String> = checksums::parse(&text, "archive SHA256SUMS")
        .map_err(|e| Error::invalid(source, e.to_string()))?
        .into_iter()
        .collect();
    for (name, got) in hashes.iter().filter(|(n, _)| n.as_str() != SUMS_FILE) {
        match expected.get(name) {
            Some(want) if want == got => {}
            Some(want) => {
                return Err(Error::invalid(source, format!("member '{name}' hashes to {got}, SHA256SUMS says {want}")))
            }
            None => {
                return Err(Error::invalid(
                    source,
                    format!("member '{name}' is not listed in the archive's SHA256SUMS"),
                ))
            }
        }
        if let Some(d) = from_blob_path(name) {
            if d.digest() != got {
                return Err(Error::invalid(
                    source,
                    format!("member '{name}' hashes to {got}, not the digest it is named by"),
                ));
            }
        }
    }
    if let Some(name) = expected.keys().find(|n| !hashes.contains_key(*n)) {
        return Err(Error::invalid(source, format!("member '{name}' is listed in SHA256SUMS but missing")));
    }
    Ok(())
}

/// What was written is a layout whose every artifact has its blobs, at the sizes their
/// descriptors give; a delta's blobs that it does not carry are its base's.
fn check_layout(dir: &Path) -> Result<()> {
    let (layout, index, _) = LayoutDir::open(dir)?;
    let lock_path = dir.join(INNER_DIR).join(LOCK_FILE);
    let delta = Lock::read(&lock_path)?.base.is_some();
    let in_base = |d: &Digest| delta && !matches!(layout.blob_len(d), Ok(Some(_)));
    let mut walk = Walk::new(&layout, &in_base);
    list_artifacts(&layout, &index, &mut walk)?;
    Ok(())
}
