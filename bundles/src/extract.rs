//! Bundle → OCI image layout on disk, refusing anything that would land outside the destination.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::checksums;
use crate::digest::HashingWriter;
use crate::error::{Error, IoContext, Result};
use crate::outdir::OutDir;
use crate::pack::SUMS_FILE;
use crate::reader::Bundle;
use crate::safe_path::check_member_name;

#[derive(Debug)]
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
}

pub fn extract(dir: &Path, dest: &Path) -> Result<Extracted> {
    let bundle = Bundle::open(dir)?;
    extract_stream(bundle.open_range(0, bundle.uncompressed_len()), &dir.join("bundle.tar.zst.*"), dest)
}

/// Unpacks a tar stream of regular files into `dest`, checking each against the archive's own
/// `SHA256SUMS`. On any error the destination is left as it was found.
pub fn extract_stream(stream: impl Read, source: &Path, dest: &Path) -> Result<Extracted> {
    let out = OutDir::prepare(dest)?;
    let mut archive = tar::Archive::new(stream);
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut bytes = 0u64;
    for entry in archive.entries().at(source)? {
        let mut entry = entry.at(source)?;
        let name = entry.path().at(source)?.to_string_lossy().into_owned();
        check_member_name(&name).map_err(|e| Error::invalid(source, e))?;
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
        let tmp = target.with_extension("partial");
        let file = fs::File::create(&tmp).at(&tmp)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        io::copy(&mut entry, &mut w).map_err(|e| Error::io(source.join(&name), e))?;
        let (buf, hex, n) = w.finish();
        buf.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?.sync_all().at(&tmp)?;
        fs::rename(&tmp, &target).at(&target)?;
        hashes.insert(name, hex);
        bytes += n;
    }
    let sums_text = fs::read_to_string(out.path().join(SUMS_FILE))
        .map_err(|_| Error::invalid(source, "archive has no SHA256SUMS: not a bundle archive"))?;
    let expected = checksums::parse(&sums_text, "archive SHA256SUMS").map_err(|e| Error::invalid(source, e))?;
    for (name, want) in &expected {
        match hashes.get(name) {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(Error::invalid(source, format!("member '{name}' hashes to {got}, SHA256SUMS says {want}")))
            }
            None => return Err(Error::invalid(source, format!("member '{name}' is listed in SHA256SUMS but missing"))),
        }
    }
    let files = hashes.len();
    out.keep();
    Ok(Extracted { files, bytes })
}
