//! Packing as the format promises it: the same bytes whatever the number of compression
//! threads, and a layout blob that does not match its digest refused with nothing left behind.
//! The layout is generated here: file artifacts of pseudo-random and text content.

mod common;

use std::fs;
use std::path::Path;

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use bundles::pack::{pack, PackOptions};
use common::noise;

fn text(lines: usize) -> Vec<u8> {
    (0..lines).flat_map(|i| format!("line {i}: request handled in {} ms\n", i % 997).into_bytes()).collect()
}

/// Writes the layout; returns the digest of its largest blob.
fn layout(root: &Path) -> String {
    let mut w = LayoutWriter::open(root).unwrap();
    let big =
        w.add_single_layer("files.example/noise:1", Kind::File, "noise", &noise(3 << 20, 7)[..], None, None).unwrap();
    w.add_single_layer("files.example/text:1", Kind::File, "text", &text(40_000)[..], None, None).unwrap();
    w.finish().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("blobs/sha256").join(big.digest().digest())).unwrap()).unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_string()
}

fn options(threads: usize) -> PackOptions<'static> {
    PackOptions { max_part_size: 1 << 20, frame_size: 64 << 10, threads, ..PackOptions::default() }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    layout(&root);
    let (one, three) = (tmp.path().join("one"), tmp.path().join("three"));
    let packed = pack(&root, &one, &options(1)).unwrap();
    pack(&root, &three, &options(3)).unwrap();
    assert!(packed.parts.len() > 2, "the archive is cut into several parts: {:?}", packed.parts);
    let (a, b) = (files(&one), files(&three));
    assert_eq!(a.iter().map(|f| &f.0).collect::<Vec<_>>(), b.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs between one and three compression threads");
    }
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    let digest = layout(&root);
    let blob = root.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[1 << 20] ^= 1;
    fs::write(&blob, bytes).unwrap();
    let out = tmp.path().join("bundle");
    let err = pack(&root, &out, &options(2)).unwrap_err().to_string();
    assert!(err.contains(digest.trim_start_matches("sha256:")) && err.contains("damaged"), "{err}");
    assert!(!out.exists(), "a failed pack leaves no bundle directory behind");
}
