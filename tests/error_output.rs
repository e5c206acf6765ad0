//! How the airgap binary reports a failure, as a person or a script reading its output meets it:
//! an operating-system error said once, a spec's typo inside an image map named by file and line,
//! and `create --json` ending its events with the error. Specs and folders are written by the
//! tests; no upstream is involved (every spec fails before anything is fetched).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn airgap(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(args)
        .current_dir(cwd)
        .env("AIRGAP_CACHE", cwd.join("cache"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run airgap {args:?}: {e}"));
    assert!(!out.status.success(), "airgap {args:?} should have failed");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A missing bundle: the path and the system's words, once each (`{:#}` used to repeat the I/O
/// error after the path that already quoted it).
#[test]
fn an_operating_system_error_is_said_once() {
    let t = tempfile::tempdir().unwrap();
    let stderr = text(&airgap(&["bundle", "inspect", "no-such-bundle"], t.path()).stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("no-such-bundle"), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

/// `platfroms:` inside an image's map: the file, the line and the field, not serde's "did not match
/// any variant of untagged enum".
#[test]
fn a_typo_inside_an_image_map_names_the_file_line_and_field() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("bundle.yaml"),
        "images:\n  - nginx:1.25\n  - ref: busybox:1.36\n    platfroms: [linux/arm64]\n",
    )
    .unwrap();
    let stderr = text(&airgap(&["bundle", "lock", "bundle.yaml", "-o", "lock.json"], t.path()).stderr);
    assert!(stderr.contains("bundle.yaml:4:") && stderr.contains("unknown field `platfroms`"), "{stderr}");
    assert!(!stderr.contains("untagged"), "{stderr}");
}

/// `create --json`: every stdout line is an event, and the last says why the run failed; no
/// bundle folder is left behind.
#[test]
fn create_json_ends_with_an_error_event() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("bundle.yaml"), "images:\n  - busybox:1.36\nimagez: []\n").unwrap();
    let out = airgap(&["bundle", "create", "bundle.yaml", "-o", "out", "--json"], t.path());
    let stdout = text(&out.stdout);
    let events: Vec<Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    let last = events.last().unwrap_or_else(|| panic!("no events on stdout; stderr: {}", text(&out.stderr)));
    assert_eq!(last["event"], "error", "{stdout}");
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("bundle.yaml:3:1:") && message.contains("imagez"), "{message}");
    assert!(!t.path().join("out").exists());
}
