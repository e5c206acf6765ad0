//! The README's auditor steps, run as they are written there: the shell blocks of its section
//! "3. Verify, as an auditor" are read from README.md itself, so the README and this test cannot
//! drift apart. They run from an empty folder, with `airgap` on PATH as the installed binary
//! would be, against a signed bundle of generated images (testkit::images) that holds the image
//! the README names.

use std::path::Path;
use std::process::Command;

use testkit::images::{noise, write_layout, Files, ImageSpec};
use testkit::{tool, tools_dir, workspace_root};

const SECTION: &str = "### 3. Verify, as an auditor";

/// Every ```sh block between the section's heading and the next heading.
fn auditor_blocks(readme: &str) -> Vec<String> {
    let start = readme.find(SECTION).unwrap_or_else(|| panic!("README.md has no {SECTION:?}"));
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    section.split("```sh\n").skip(1).map(|b| b.split("```").next().unwrap().to_string()).collect()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

#[test]
fn the_readme_auditor_steps_run_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let blocks = auditor_blocks(&readme);
    assert_eq!(blocks.len(), 2, "the standard-tools block and the airgap block");

    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let files = Files::from([("data/noise".to_string(), noise(200 << 10, 5))]);
    write_layout(
        &layout,
        &[ImageSpec {
            reference: "docker.io/mosipid/config-server:1.1.2",
            platforms: &["linux/amd64"],
            shared_layers: std::slice::from_ref(&files),
        }],
    );
    let (key, secret) = (tmp.path().join("airgap.pub"), tmp.path().join("airgap.key"));
    run_ok(Command::new(tool("minisign")).args(["-G", "-W", "-p"]).arg(&key).arg("-s").arg(&secret));
    let bundle = tmp.path().join("media/bundle");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_airgap"))
            .args(["bundle", "pack"])
            .arg(&layout)
            .arg("-o")
            .arg(&bundle)
            .arg("--sign-key")
            .arg(&secret),
    );

    // `airgap` on PATH, as after "Get the binary"; the standard tools from the peers' cache.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_airgap"), bin.join("airgap")).unwrap();
    for t in ["minisign", "skopeo", "pyspdxtools"] {
        tool(t);
    }
    let path = format!("{}:{}:{}", bin.display(), tools_dir().join("bin").display(), std::env::var("PATH").unwrap());
    let empty = tmp.path().join("auditor");
    std::fs::create_dir(&empty).unwrap();
    let before = listing(&bundle);
    let printed = run_ok(
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &blocks.concat()])
            .current_dir(&empty)
            .env("PATH", path)
            .env("BUNDLE", &bundle)
            .env("KEY", &key),
    );
    assert!(printed.contains("Signature and comment signature verified"), "minisign checked the signature:\n{printed}");
    assert!(printed.contains("docker.io/mosipid/config-server") || printed.contains("\"Digest\""), "{printed}");
    assert!(printed.contains("OK "), "airgap's verdict:\n{printed}");
    for written in ["layout/index.json", "audit/verify.json", "audit/verify.txt", "bundle.cdx.json"] {
        assert!(empty.join(written).is_file(), "{written} is in the auditor's folder");
    }
    assert_eq!(listing(&bundle), before, "nothing was written onto the media");
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}
