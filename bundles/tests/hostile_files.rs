//! Files on the media that are not what a bundle's files are: a zstd frame that decompresses to
//! gigabytes from a few kilobytes, a FIFO or a device where SHA256SUMS or bundle.json names a
//! file, a bundle.json of 75 MB. Each is refused by name, without hanging and without the memory
//! it asks for. Everything here is made by the test.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use bundles::meta::{ArchiveMeta, BundleMeta, PartMeta, META_FILE};
use bundles::seekable::{FrameEntry, SeekTable};
use bundles::verify::{verify, VerifyOptions};
use common::*;

/// The tests that measure this process's peak memory run one at a time.
static MEASURED: Mutex<()> = Mutex::new(());

/// A zstd frame of `len` zero bytes made of RLE blocks (4 bytes per 128 KiB); its header declares
/// the size when `declared`, and otherwise only a 128 KiB window.
fn rle_frame(len: u64, declared: bool) -> Vec<u8> {
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    if declared {
        f.push(0xA0); // a 4-byte content size, single segment
        f.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    } else {
        f.extend_from_slice(&[0x00, 0x38]); // no content size; a window of 2^17
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(128 << 10);
        left -= n;
        let header = u32::from(left == 0) | (1 << 1) | ((n as u32) << 3);
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.push(0);
    }
    f
}

/// A bundle of one part holding `frame`, its seek table declaring `table_says` bytes, and a
/// bundle.json consistent with that table.
fn one_frame_bundle(dir: &Path, frame: &[u8], table_says: u32) {
    fs::create_dir_all(dir).unwrap();
    let mut part = frame.to_vec();
    part.extend(
        SeekTable { frames: vec![FrameEntry { compressed: frame.len() as u32, decompressed: table_says }] }.to_bytes(),
    );
    fs::write(dir.join("bundle.tar.zst.000"), &part).unwrap();
    let hex = "0".repeat(64);
    let meta = BundleMeta {
        schema_version: bundles::SCHEMA_VERSION.into(),
        generator: "test".into(),
        archive: ArchiveMeta {
            parts: vec![PartMeta { name: "bundle.tar.zst.000".into(), size: part.len() as u64 }],
            max_part_size: 1 << 30,
            uncompressed_size: table_says.into(),
            frame_size: Some(2 << 20),
        },
        base: None,
        members: vec![bundles::archive::Member {
            path: format!("blobs/sha256/{hex}"),
            offset: 512,
            size: u64::from(table_says) - 1536,
        }],
    };
    fs::write(dir.join(META_FILE), serde_json::to_vec(&meta).unwrap()).unwrap();
    let sums = format!("{}  bundle.tar.zst.000\n", bundles::digest::sha256_hex(&part));
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

fn fails_naming(bundle: &Path, words: &[&str]) {
    let report = verify(bundle, &VerifyOptions { key: None, bases: vec![] });
    let lines = report.problem_lines();
    assert!(
        !report.ok && lines.iter().any(|l| words.iter().all(|w| l.contains(w))),
        "verify names {words:?}: {lines:?}"
    );
    let err = bundles::extract::extract(bundle, &bundle.with_file_name("out")).unwrap_err().to_string();
    assert!(words.iter().all(|w| err.contains(w)), "extract names {words:?}: {err}");
}

/// One frame of 3 GiB in a part of 100 KB. verify, extract and the in-place reader (what inspect
/// and the registry open) refuse it by its part and frame before allocating any of it.
#[test]
fn a_frame_declaring_gigabytes_is_refused_without_the_memory() {
    let _one = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let three_gib = 3u32 << 30;
    one_frame_bundle(&bundle, &rle_frame(three_gib.into(), true), three_gib);
    assert!(fs::metadata(bundle.join("bundle.tar.zst.000")).unwrap().len() < 110_000);

    fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_mib();
    fails_naming(&bundle, &["bundle.tar.zst.000", "frame 0", "3221225472"]);
    let err = bundles::Bundle::open(&bundle).unwrap_err().to_string();
    assert!(err.contains("bundle.tar.zst.000") && err.contains("frame 0 declares 3221225472 bytes"), "{err}");
    let peak = peak_rss_mib();
    assert!(peak < before + 256, "peak memory grew from {before} MiB to {peak} MiB");
}

/// The seek table declares 1 MiB, the frame holds 3 GiB: its own header says so, or, when it
/// does not, the frame outgrows what was declared. Either is a damaged frame, named.
#[test]
fn a_frame_larger_than_its_seek_table_entry_is_refused() {
    let _one = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_mib();
    let declared = tmp.path().join("declared/bundle");
    one_frame_bundle(&declared, &rle_frame(3 << 30, true), 1 << 20);
    fails_naming(&declared, &["bundle.tar.zst.000: frame 0 is damaged", "declares 3221225472 bytes"]);
    let silent = tmp.path().join("silent/bundle");
    one_frame_bundle(&silent, &rle_frame(3 << 20, false), 1 << 20);
    fails_naming(&silent, &["bundle.tar.zst.000: frame 0 is damaged"]);
    let peak = peak_rss_mib();
    assert!(peak < before + 256, "peak memory grew from {before} MiB to {peak} MiB");
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// SHA256SUMS names a FIFO and a link to /dev/zero: verify names both and finishes.
#[test]
fn verify_refuses_a_fifo_or_a_device_named_by_the_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = packed(tmp.path());
    mkfifo(&bundle.join("notes"));
    std::os::unix::fs::symlink("/dev/zero", bundle.join("zeros")).unwrap();
    let mut sums = fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    sums += &format!("{}  notes\n{}  zeros\n", "a".repeat(64), "b".repeat(64));
    fs::write(bundle.join("SHA256SUMS"), sums).unwrap();
    let report = verify(&bundle, &VerifyOptions { key: None, bases: vec![] });
    let lines = report.problem_lines();
    assert!(lines.iter().any(|l| l.starts_with("notes: a FIFO, not a regular file")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("zeros: a character device, not a regular file")), "{lines:?}");
}

/// A part or bundle.json that is a FIFO: opening the bundle (inspect, serve, cat) says so at once.
#[test]
fn opening_a_bundle_whose_part_or_metadata_is_a_fifo_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = packed(tmp.path());
    fs::remove_file(bundle.join("bundle.tar.zst.000")).unwrap();
    mkfifo(&bundle.join("bundle.tar.zst.000"));
    let err = bundles::Bundle::open(&bundle).unwrap_err().to_string();
    assert!(err.contains("bundle.tar.zst.000: a FIFO, not a regular file"), "{err}");
    fs::remove_file(bundle.join(META_FILE)).unwrap();
    mkfifo(&bundle.join(META_FILE));
    let err = bundles::Bundle::open(&bundle).unwrap_err().to_string();
    assert!(err.contains("bundle.json: a FIFO, not a regular file"), "{err}");
    let report = verify(&bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.problem_lines().iter().any(|l| l.contains("bundle.json") && l.contains("a FIFO")));
}

/// 75 MB of bundle.json (a million members) cost 1.6 GiB and 100 s to refuse; now it is refused
/// by its size before it is read.
#[test]
fn a_bundle_json_larger_than_any_bundle_s_is_refused_unread() {
    let _one = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = packed(tmp.path());
    let member = r#"{"path":"a","offset":0,"size":0},"#;
    let mut huge = String::from(
        r#"{"schemaVersion":"1.2","generator":"x","archive":{"parts":[],"maxPartSize":1,"uncompressedSize":0},"members":["#,
    );
    huge += &member.repeat(75_000_000 / member.len());
    huge += r#"{"path":"b","offset":0,"size":0}]}"#;
    fs::write(bundle.join(META_FILE), &huge).unwrap();
    fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_mib();
    let err = bundles::Bundle::open(&bundle).unwrap_err().to_string();
    assert!(err.contains("bundle.json") && err.contains(&format!("{} bytes", huge.len())), "{err}");
    let peak = peak_rss_mib();
    assert!(peak < before + 64, "peak memory grew from {before} MiB to {peak} MiB");
}

/// Under the bound, many members cost what they are: parsed into their structs, not a generic
/// JSON tree, and a path listed twice is named.
#[test]
fn a_member_listed_twice_in_bundle_json_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = packed(tmp.path());
    let mut meta: BundleMeta = serde_json::from_slice(&fs::read(bundle.join(META_FILE)).unwrap()).unwrap();
    let first = meta.members[0].clone();
    meta.members.push(first.clone());
    fs::write(bundle.join(META_FILE), serde_json::to_vec(&meta).unwrap()).unwrap();
    let err = bundles::Bundle::open(&bundle).unwrap_err().to_string();
    assert!(err.contains(&format!("member {} is listed twice", first.path)), "{err}");
}
