//! Archives made by hand to attack the reader: members that climb out with `..`, absolute
//! paths, and symlinks that point outside. Extract must refuse each, naming the member, and
//! write nothing outside (or inside) the destination; verify must name each one.

use std::fs;
use std::io::Write;
use std::path::Path;

use bundles::archive::Member;
use bundles::meta::{ArchiveMeta, BundleMeta, PartMeta, META_FILE};
use bundles::parts::PartWriter;
use bundles::seekable::FrameWriter;
use bundles::verify::{verify, VerifyOptions};

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn raw_header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> [u8; 512] {
    let mut h = tar::Header::new_old();
    // Written byte by byte: the tar crate's own setters refuse these names, as they should.
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    *h.as_bytes()
}

/// Writes a bundle directory whose archive holds exactly `entries`, with a truthful index.
fn craft(dir: &Path, entries: &[Entry<'_>]) {
    let mut tar = Vec::new();
    let mut members = Vec::new();
    for e in entries {
        let (name, data, kind, link) = match e {
            Entry::File(n, d) => (*n, *d, tar::EntryType::Regular, None),
            Entry::Symlink(n, l) => (*n, &b""[..], tar::EntryType::Symlink, Some(*l)),
        };
        tar.extend_from_slice(&raw_header(name, data.len() as u64, kind, link));
        members.push(Member { path: name.to_string(), offset: tar.len() as u64, size: data.len() as u64 });
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    fs::create_dir_all(dir).unwrap();
    let mut w = FrameWriter::new(PartWriter::new(dir, 1 << 20), 3, 4096, 2);
    w.write_all(&tar).unwrap();
    let (parts, _) = w.finish().unwrap();
    let parts = parts.finish().unwrap();
    let meta = BundleMeta {
        schema_version: "1.0".into(),
        generator: "test".into(),
        archive: ArchiveMeta {
            parts: parts.iter().map(|p| PartMeta { name: p.name.clone(), size: p.size }).collect(),
            max_part_size: 1 << 20,
            uncompressed_size: tar.len() as u64,
        },
        base: None,
        members,
    };
    fs::write(dir.join(META_FILE), serde_json::to_vec(&meta).unwrap()).unwrap();
    let mut sums = String::new();
    for p in &parts {
        sums.push_str(&format!("{}  {}\n", p.sha256, p.name));
    }
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

fn attempt(entries: &[Entry<'_>], culprit: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("media/bundle");
    craft(&bundle, entries);
    let dest = tmp.path().join("site/layout");
    let err = bundles::extract::extract(&bundle, &dest).unwrap_err().to_string();
    assert!(err.contains(culprit), "the error names {culprit}: {err}");
    assert!(!dest.exists(), "a refused extract leaves no destination behind");
    let outside: Vec<_> = walk(tmp.path()).into_iter().filter(|p| !p.starts_with(&bundle)).collect();
    assert!(outside.is_empty(), "nothing was written outside the bundle: {outside:?}");

    let report = verify(&bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(!report.ok);
    assert!(
        report.problem_lines().iter().any(|l| l.contains(culprit)),
        "verify names {culprit}: {:?}",
        report.problem_lines()
    );
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_member_that_climbs_out_is_refused() {
    attempt(&[Entry::File("oci-layout", b"{}"), Entry::File("../x", b"escaped")], "../x");
}

#[test]
fn an_absolute_member_is_refused() {
    attempt(&[Entry::File("/tmp/airgap-absolute-member", b"escaped")], "/tmp/airgap-absolute-member");
    assert!(!Path::new("/tmp/airgap-absolute-member").exists());
}

#[test]
fn a_symlink_that_escapes_is_refused() {
    attempt(&[Entry::Symlink("blobs", "/tmp"), Entry::File("blobs/airgap-through-link", b"escaped")], "blobs");
    assert!(!Path::new("/tmp/airgap-through-link").exists());
}
