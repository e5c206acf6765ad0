//! Bundles made by hand for the hostile tests: a real one packed from a generated layout, its
//! members read back, and any list of members written as a bundle with every checksum consistent
//! (what an attacker without the signing key can do to a copy on the media).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bundles::archive::Member;
use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use bundles::meta::{ArchiveMeta, BundleMeta, PartMeta, META_FILE};
use bundles::pack::{pack, PackOptions};
use bundles::parts::PartWriter;
use bundles::seekable::FrameWriter;
use serde_json::json;

pub enum Entry {
    File(String, Vec<u8>),
    Symlink(String, String),
}

pub fn file(name: &str, data: &[u8]) -> Entry {
    Entry::File(name.to_string(), data.to_vec())
}

pub fn raw_header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> [u8; 512] {
    let mut h = tar::Header::new_old();
    // Written byte by byte: the tar crate's own setters refuse or rewrite these names, as they should.
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

/// Writes a bundle directory whose archive holds exactly `entries` (frames of 4 KiB), with a
/// truthful bundle.json, the archive's `airgap/` files copied beside the parts as pack does, and
/// an outer `SHA256SUMS` over all of it.
pub fn craft(dir: &Path, entries: &[Entry]) {
    let mut tar = Vec::new();
    let mut members = Vec::new();
    for e in entries {
        let (name, data, kind, link) = match e {
            Entry::File(n, d) => (n.as_str(), d.as_slice(), tar::EntryType::Regular, None),
            Entry::Symlink(n, l) => (n.as_str(), &b""[..], tar::EntryType::Symlink, Some(l.as_str())),
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
        schema_version: bundles::SCHEMA_VERSION.into(),
        generator: "test".into(),
        archive: ArchiveMeta {
            parts: parts.iter().map(|p| PartMeta { name: p.name.clone(), size: p.size }).collect(),
            max_part_size: 1 << 20,
            uncompressed_size: tar.len() as u64,
            frame_size: Some(4096),
        },
        base: None,
        members,
    };
    let mut beside: Vec<(String, Vec<u8>)> = vec![(META_FILE.into(), serde_json::to_vec(&meta).unwrap())];
    for e in entries {
        if let Entry::File(name, data) = e {
            if let Some(plain) = name.strip_prefix("airgap/").filter(|n| !n.contains('/')) {
                beside.push((plain.to_string(), data.clone()));
            }
        }
    }
    let mut sums: Vec<(String, String)> = parts.iter().map(|p| (p.name.clone(), p.sha256.clone())).collect();
    for (name, data) in &beside {
        fs::write(dir.join(name), data).unwrap();
        sums.push((name.clone(), bundles::digest::sha256_hex(data)));
    }
    sums.sort();
    fs::write(dir.join("SHA256SUMS"), bundles::checksums::render(&sums)).unwrap();
}

/// Bytes zstd cannot shrink (as gzip'd layers are), from a fixed seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A bundle packed by airgap from a generated layout: an image (manifest, config, two layers)
/// and a file artifact. Returns the bundle directory and the digest of the image's first layer.
pub fn packed(root: &Path) -> (PathBuf, String) {
    let layout = root.join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    let layers = [w.put_bytes(&noise(20_000, 1)).unwrap(), w.put_bytes(&noise(30_000, 2)).unwrap()];
    let config = w.put_bytes(br#"{"architecture":"amd64","os":"linux"}"#).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
        "layers": layers.iter().map(|l| json!({"mediaType": layer_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add("docker.io/library/app:1.0", Kind::Image, desc, &[]);
    w.add_single_layer("files.airgap.local/tool:1", Kind::File, "tool", &b"#!/bin/sh\n"[..], None, None).unwrap();
    w.finish().unwrap();
    let out = root.join("bundle");
    pack(&layout, &out, &PackOptions { max_part_size: 1 << 20, frame_size: 4096, ..PackOptions::default() }).unwrap();
    (out, layers[0].digest.to_string())
}

/// Every member of a bundle's archive, in archive order.
pub fn members_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let b = bundles::Bundle::open(dir).unwrap();
    let mut m = b.meta().members.clone();
    m.sort_by_key(|m| m.offset);
    m.iter().map(|m| (m.path.clone(), b.read_member(&m.path).unwrap())).collect()
}

/// The members as files, with the archive's own `SHA256SUMS` rewritten to match every other
/// member: the consistent forgery a check must see through.
pub fn with_matching_sums(members: &[(String, Vec<u8>)]) -> Vec<Entry> {
    let mut sums: Vec<(String, String)> = members
        .iter()
        .filter(|(n, _)| n != "SHA256SUMS")
        .map(|(n, d)| (n.clone(), bundles::digest::sha256_hex(d)))
        .collect();
    sums.sort();
    let text = bundles::checksums::render(&sums);
    let mut out = vec![file("SHA256SUMS", text.as_bytes())];
    out.extend(members.iter().filter(|(n, _)| n != "SHA256SUMS").map(|(n, d)| file(n, d)));
    out
}

/// Every file below `root`, links not followed.
pub fn walk(root: &Path) -> Vec<PathBuf> {
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

/// Peak resident memory of this process in MiB since `/proc/self/clear_refs` was last given "5".
pub fn peak_rss_mib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.parse::<u64>().ok()).unwrap()
        / 1024
}
