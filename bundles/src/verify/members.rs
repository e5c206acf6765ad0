//! The archive's members read back: the tar headers walked by seeking (names, types, the index in
//! bundle.json), and every member hashed in a few long runs over the archive, so that each frame
//! is decompressed about once however many small members it holds.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::Check;
use crate::archive::Member;
use crate::meta::META_FILE;
use crate::reader::{Bundle, RangeReader};
use crate::safe_path::check_bundle_member;

/// Walks the tar headers by seeking, so names and types are checked without reading blobs.
pub(super) fn header_checks(bundle: &Bundle) -> Vec<Check> {
    let mut checks = Vec::new();
    let recorded: BTreeMap<&str, (u64, u64)> =
        bundle.meta().members.iter().map(|m| (m.path.as_str(), (m.offset, m.size))).collect();
    let mut seen = 0usize;
    let mut pos = 0u64;
    let end = bundle.uncompressed_len();
    let mut archive = bundle.open_range(0, end);
    let mut block = [0u8; 512];
    while pos + 512 <= end {
        if let Err(e) = archive.seek(SeekFrom::Start(pos)).and_then(|_| archive.read_exact(&mut block)) {
            checks.push(Check::failed("archive", format!("tar header at offset {pos}"), e.to_string()));
            return checks;
        }
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let header = tar::Header::from_byte_slice(&block);
        let name =
            header.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "<unreadable name>".into());
        let size = header.entry_size().unwrap_or(u64::MAX);
        if let Err(e) = check_bundle_member(&name) {
            checks.push(Check::failed("member-name", format!("archive:{name}"), e.to_string()));
        }
        if header.entry_type() != tar::EntryType::Regular {
            checks.push(Check::failed(
                "member-type",
                format!("archive:{name}"),
                format!("{:?} entries are not allowed; bundles hold regular files only", header.entry_type()),
            ));
        }
        match recorded.get(name.as_str()) {
            Some(&(o, s)) if o == pos + 512 && s == size => seen += 1,
            Some(_) => checks.push(Check::failed(
                "member-index",
                format!("archive:{name}"),
                "bundle.json records another offset or size",
            )),
            None => checks.push(Check::failed(
                "member-index",
                format!("archive:{name}"),
                "in the archive but not in bundle.json",
            )),
        }
        let Some(next) = size.checked_add(511).map(|s| pos + 512 + s / 512 * 512) else {
            checks.push(Check::failed("archive", format!("archive:{name}"), "impossible size"));
            return checks;
        };
        pos = next;
    }
    if seen != recorded.len() {
        checks.push(Check::failed("member-index", META_FILE, "lists members the archive does not hold"));
    } else {
        checks.push(Check {
            detail: Some(format!("{seen} members, names and types safe")),
            ..Check::ok("headers", "archive")
        });
    }
    checks
}

/// The SHA-256 of each member, or why it could not be read. Members are taken in archive order
/// and cut into runs of about equal size, a few per core; each run is read front to back.
pub(super) fn hash<'a>(bundle: &Bundle, members: &[&'a Member]) -> Vec<(&'a str, Result<String, String>)> {
    let mut ordered = members.to_vec();
    ordered.sort_by_key(|m| (m.offset, m.size));
    let total: u64 = ordered.iter().map(|m| m.size).sum();
    let run_size = (total / (rayon::current_num_threads() as u64 * 4)).max(1 << 20);
    let mut runs: Vec<&[&Member]> = Vec::new();
    let (mut start, mut in_run) = (0, 0u64);
    for (i, m) in ordered.iter().enumerate() {
        in_run += m.size;
        if in_run >= run_size {
            runs.push(&ordered[start..=i]);
            (start, in_run) = (i + 1, 0);
        }
    }
    if start < ordered.len() {
        runs.push(&ordered[start..]);
    }
    runs.par_iter()
        .flat_map_iter(|run| {
            let mut archive = bundle.open_range(0, bundle.uncompressed_len());
            let mut buf = vec![0u8; 256 << 10];
            run.iter()
                .map(move |m| (m.path.as_str(), hash_member(&mut archive, m, &mut buf).map_err(|e| e.to_string())))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn hash_member(archive: &mut RangeReader, m: &Member, buf: &mut [u8]) -> io::Result<String> {
    archive.seek(SeekFrom::Start(m.offset))?;
    let mut hasher = Sha256::new();
    let mut left = m.size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = archive.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside this member"));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}
