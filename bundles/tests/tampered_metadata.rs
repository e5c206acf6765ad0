//! A copy of a real bundle whose lock or SBOM was rewritten, with every checksum inside and
//! beside the archive made to match again (what anyone can do to an unsigned copy): verify must
//! see that they no longer say what index.json and the archive hold, and print what it names
//! with the escape codes shown, not acted on.

mod common;

use std::path::{Path, PathBuf};

use bundles::verify::{verify, VerifyOptions};
use common::*;
use serde_json::Value;

/// A real bundle with the JSON member `name` rewritten by `edit`, all checksums matching.
fn rewritten(tmp: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let (real, _) = packed(tmp);
    let mut members = members_of(&real);
    let (_, data) = members.iter_mut().find(|(n, _)| n == name).unwrap();
    let mut doc: Value = serde_json::from_slice(data).unwrap();
    edit(&mut doc);
    *data = serde_json::to_vec_pretty(&doc).unwrap();
    let bundle = tmp.join("copy");
    craft(&bundle, &with_matching_sums(&members));
    bundle
}

fn problems(bundle: &Path) -> Vec<String> {
    let report = verify(bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(!report.ok, "{}", report.to_text());
    report.problem_lines()
}

#[test]
fn a_lock_naming_another_reference_and_digest_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = format!("sha256:{}", "f".repeat(64));
    let bundle = rewritten(tmp.path(), "airgap/bundle.lock.json", |lock| {
        let image = lock["artifacts"].as_array_mut().unwrap().iter_mut().find(|a| a["kind"] == "image").unwrap();
        image["reference"] = "docker.io/library/innocent:1.0".into();
        image["digest"] = fake.clone().into();
    });
    let lines = problems(&bundle);
    let named = |what: &str| lines.iter().any(|l| l.contains(what));
    assert!(
        named("lock:docker.io/library/innocent:1.0: the lock names a image that index.json does not hold"),
        "{lines:?}"
    );
    assert!(
        named("lock:docker.io/library/app:1.0: index.json holds this image but the lock does not name it"),
        "{lines:?}"
    );
}

#[test]
fn a_lock_blob_of_another_size_or_not_carried_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let ghost = format!("sha256:{}", "e".repeat(64));
    let mut resized = String::new();
    let bundle = rewritten(tmp.path(), "airgap/bundle.lock.json", |lock| {
        let blobs = lock["blobs"].as_array_mut().unwrap();
        blobs[0]["size"] = (blobs[0]["size"].as_u64().unwrap() + 1).into();
        resized = blobs[0]["digest"].as_str().unwrap().to_string();
        blobs.push(serde_json::json!({"digest": ghost, "size": 1}));
    });
    let lines = problems(&bundle);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("lock:{resized}: the lock gives this blob another size"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("lock:{ghost}: listed in the lock but not carried"))),
        "{lines:?}"
    );
}

#[test]
fn an_sbom_naming_other_content_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = rewritten(tmp.path(), "airgap/sbom.spdx.json", |spdx| {
        let file = spdx["packages"].as_array_mut().unwrap().iter_mut().find(|p| p["name"] == "tool").unwrap();
        file["checksums"][0]["checksumValue"] = "d".repeat(64).into();
    });
    let lines = problems(&bundle);
    assert!(
        lines.iter().any(|l| l.starts_with("airgap/sbom.spdx.json: does not name pkg:generic/tool@1")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("names pkg:generic/tool@1?checksum=sha256%3A") && l.contains(&"d".repeat(64))),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("airgap/sbom.cdx.json")),
        "the CycloneDX SBOM was left alone: {lines:?}"
    );
}

/// A reference with a terminal escape in it: named by verify and listed by inspect, shown escaped.
#[test]
fn names_from_the_bundle_are_printed_with_their_escape_codes_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = rewritten(tmp.path(), "airgap/bundle.lock.json", |lock| {
        lock["artifacts"][0]["reference"] = "docker.io/library/app:1.0\u{1b}[2J\u{1b}[1;1HOK".into();
    });
    let lines = problems(&bundle);
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("app:1.0\\u{1b}[2J\\u{1b}[1;1HOK")), "{lines:?}");
    let report = verify(&bundle, &VerifyOptions { key: None, bases: vec![] });
    assert!(!report.to_text().contains('\u{1b}'));
    let table = bundles::cli::inspect_table(&bundles::Bundle::open(&bundle).unwrap()).unwrap();
    assert!(!table.contains('\u{1b}') && table.contains("app:1.0\\u{1b}[2J\\u{1b}[1;1HOK"), "{table}");
}
