//! Archives made by hand to attack the reader: members that climb out with `..`, absolute
//! paths, symlinks that point outside, a second spelling of a checked member, members the
//! archive's SHA256SUMS does not list, a missing or a wrong blob. Extract must refuse each,
//! naming the member, and write nothing outside (or inside) the destination; verify must name
//! each one.

mod common;

use std::path::Path;

use bundles::verify::{verify, VerifyOptions};
use common::*;

/// Extract and verify of the crafted bundle both fail, naming `culprit`; nothing is left.
fn refused(bundle: &Path, culprit: &str) {
    let tmp = bundle.parent().unwrap();
    let dest = tmp.join("site/layout");
    let err = bundles::extract::extract(bundle, &dest).unwrap_err().to_string();
    assert!(err.contains(culprit), "the error names {culprit}: {err}");
    assert!(!dest.exists(), "a refused extract leaves no destination behind");
    // What `packed` made (the layout and the real bundle) stays beside the crafted bundle.
    let made = [bundle.to_path_buf(), tmp.join("layout"), tmp.join("bundle")];
    let outside: Vec<_> = walk(tmp).into_iter().filter(|p| !made.iter().any(|m| p.starts_with(m))).collect();
    assert!(outside.is_empty(), "nothing was written outside the bundle: {outside:?}");

    let report = verify(bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(!report.ok);
    assert!(
        report.problem_lines().iter().any(|l| l.contains(culprit)),
        "verify names {culprit}: {:?}",
        report.problem_lines()
    );
}

fn attempt(entries: &[Entry], culprit: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("media/bundle");
    craft(&bundle, entries);
    refused(&bundle, culprit);
}

#[test]
fn a_member_that_climbs_out_is_refused() {
    attempt(&[file("oci-layout", b"{}"), file("../x", b"escaped")], "../x");
}

#[test]
fn an_absolute_member_is_refused() {
    attempt(&[file("/tmp/airgap-absolute-member", b"escaped")], "/tmp/airgap-absolute-member");
    assert!(!Path::new("/tmp/airgap-absolute-member").exists());
}

#[test]
fn a_symlink_that_escapes_is_refused() {
    attempt(&[Entry::Symlink("blobs".into(), "/tmp".into()), file("blobs/airgap-through-link", b"escaped")], "blobs");
    assert!(!Path::new("/tmp/airgap-through-link").exists());
}

/// A real bundle, rewritten by `edit` with every checksum made to match again.
fn forged(tmp: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>, &str)) -> std::path::PathBuf {
    let (real, layer) = packed(tmp);
    let mut members = members_of(&real);
    edit(&mut members, &layer);
    let bundle = tmp.join("media/bundle");
    craft(&bundle, &with_matching_sums(&members));
    bundle
}

/// `./index.json` after `index.json`: checked under one name, it would land on the other.
#[test]
fn a_second_spelling_of_the_index_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = forged(tmp.path(), |m, _| {
        m.push(("./index.json".into(), br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()));
    });
    refused(&bundle, "./index.json");
}

#[test]
fn a_second_spelling_of_a_blob_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut alias = String::new();
    let bundle = forged(tmp.path(), |m, layer| {
        alias = format!("blobs/sha256/./{}", layer.trim_start_matches("sha256:"));
        m.push((alias.clone(), b"not the layer".to_vec()));
    });
    refused(&bundle, &alias);
}

/// A member the archive's SHA256SUMS does not list was written unchecked.
#[test]
fn a_member_not_in_the_archive_sums_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = bundles::digest::sha256_hex(b"smuggled");
    let name = format!("blobs/sha256/{extra}");
    let (real, _) = packed(tmp.path());
    let mut entries: Vec<Entry> = members_of(&real).into_iter().map(|(n, d)| Entry::File(n, d)).collect();
    entries.push(file(&name, b"smuggled"));
    let bundle = tmp.path().join("media/bundle");
    craft(&bundle, &entries);
    refused(&bundle, &name);
}

/// A layer taken out of the archive and out of its SHA256SUMS: the layout is no longer whole.
#[test]
fn a_missing_blob_fails_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gone = String::new();
    let bundle = forged(tmp.path(), |m, layer| {
        gone = layer.trim_start_matches("sha256:").to_string();
        m.retain(|(n, _)| !n.ends_with(&gone));
    });
    refused(&bundle, &gone);
}

/// A layer with other bytes under its old name, SHA256SUMS rewritten to match them.
#[test]
fn a_wrong_blob_fails_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let mut name = String::new();
    let bundle = forged(tmp.path(), |m, layer| {
        let hex = layer.trim_start_matches("sha256:");
        let (n, data) = m.iter_mut().find(|(n, _)| n.ends_with(hex)).unwrap();
        data[0] ^= 1;
        name = n.clone();
    });
    refused(&bundle, &name);
}

/// The bundle as packed, crafted again from its own members: what the tests above change is
/// all that makes them fail.
#[test]
fn the_unchanged_members_extract_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = forged(tmp.path(), |_, _| {});
    bundles::extract::extract(&bundle, &tmp.path().join("site/layout")).unwrap();
    let report = verify(&bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());
}
