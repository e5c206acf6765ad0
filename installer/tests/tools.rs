//! `airgap tools`: tool binaries carried by a bundle that `bundle create` made from downloads on a
//! local HTTP server (testkit's FileServer; the bytes are generated here and stand for kubectl and
//! helm), written out checked, executable and only inside the output folder.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use bundles::Bundle;
use installer::tools::{extract, Extracted};
use testkit::{FileServer, NewBundle};

fn sha256(bytes: &[u8]) -> String {
    bundles::digest::sha256_hex(bytes)
}

struct Downloads {
    kubectl_linux: Vec<u8>,
    kubectl_darwin: Vec<u8>,
    helm: Vec<u8>,
}

/// A bundle with kubectl for two platforms, helm for any, and a README that is not executable.
fn make_bundle(work: &Path) -> (std::path::PathBuf, Downloads) {
    let www = work.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let d = Downloads {
        kubectl_linux: testkit::images::noise(300_000, 1),
        kubectl_darwin: testkit::images::noise(200_000, 2),
        helm: b"#!/bin/sh\necho helm v3.8.2\n".repeat(500),
    };
    let readme = b"how to use the tools\n".to_vec();
    // The mirror below serves dl.k8s.io's paths under /dl and get.helm.sh's at the root.
    for (path, bytes) in [
        ("dl/release/v1.24.17/bin/linux/amd64/kubectl", &d.kubectl_linux),
        ("dl/release/v1.24.17/bin/darwin/arm64/kubectl", &d.kubectl_darwin),
        ("helm", &d.helm),
        ("README", &readme),
    ] {
        let p = www.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let server = FileServer::start(&www).unwrap();
    let spec = format!(
        "files:
  - url: https://dl.k8s.io/release/v1.24.17/bin/linux/amd64/kubectl
    sha256: {}
    version: v1.24.17
    executable: true
    platform: linux/amd64
  - url: https://dl.k8s.io/release/v1.24.17/bin/darwin/arm64/kubectl
    sha256: {}
    version: v1.24.17
    executable: true
    platform: darwin/arm64
  - url: https://get.helm.sh/helm
    sha256: {}
    version: v3.8.2
    executable: true
  - url: https://get.helm.sh/README
    sha256: {}
    version: v3.8.2
mirrors:
  dl.k8s.io: {url}/dl
  get.helm.sh: {url}
",
        sha256(&d.kubectl_linux),
        sha256(&d.kubectl_darwin),
        sha256(&d.helm),
        sha256(&readme),
        url = server.url()
    );
    let spec_path = work.join("bundle.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let bundle = NewBundle::new(&spec_path, &work.join("bundle"), &work.join("cache"));
    (bundle.max_part_size(1 << 20).create().unwrap(), d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn check(done: &[Extracted], dir: &Path, expected: &[(&str, &str, &[u8])]) {
    let got: Vec<(&str, &str)> = done.iter().map(|e| (e.name.as_str(), e.version.as_str())).collect();
    let want: Vec<(&str, &str)> = expected.iter().map(|(n, v, _)| (*n, *v)).collect();
    assert_eq!(got, want);
    for (e, (name, _, bytes)) in done.iter().zip(expected) {
        assert_eq!(e.path, dir.join(name));
        assert!(std::fs::read(&e.path).unwrap() == *bytes, "{name}: the extracted bytes differ from the download");
        assert_eq!(e.sha256, sha256(bytes));
        assert_eq!(mode(&e.path), 0o755, "{name}");
    }
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    let mut want_names: Vec<String> = expected.iter().map(|(n, _, _)| n.to_string()).collect();
    want_names.sort();
    assert_eq!(names, want_names, "nothing else is written: no README, no partial files");
}

#[test]
fn extracts_the_tools_for_a_platform_checked_and_executable() {
    let t = tempfile::tempdir().unwrap();
    let (bundle_dir, d) = make_bundle(t.path());
    let bundle = Bundle::open(&bundle_dir).unwrap();

    let linux = t.path().join("linux");
    let done = extract(&bundle, &linux, "linux/amd64").unwrap();
    check(&done, &linux, &[("helm", "v3.8.2", d.helm.as_slice()), ("kubectl", "v1.24.17", d.kubectl_linux.as_slice())]);
    assert_eq!(done[1].reference, "files.airgap.local/kubectl:v1.24.17-linux-amd64");

    let darwin = t.path().join("darwin");
    let done = extract(&bundle, &darwin, "darwin/arm64").unwrap();
    check(
        &done,
        &darwin,
        &[("helm", "v3.8.2", d.helm.as_slice()), ("kubectl", "v1.24.17", d.kubectl_darwin.as_slice())],
    );

    // A second run replaces the files in place, a stale copy included.
    std::fs::write(linux.join("kubectl"), b"stale").unwrap();
    std::fs::set_permissions(linux.join("kubectl"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let done = extract(&bundle, &linux, "linux/amd64").unwrap();
    check(&done, &linux, &[("helm", "v3.8.2", d.helm.as_slice()), ("kubectl", "v1.24.17", d.kubectl_linux.as_slice())]);
}

#[test]
fn a_file_name_that_leaves_the_folder_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let reference = "files.airgap.local/evil:1.0";
    let desc = w.add_single_layer(reference, Kind::File, "../evil", &b"#!/bin/sh\n"[..], None, None).unwrap();
    w.add(reference, Kind::File, desc, &[("io.airgap.file.executable", "true")]);
    w.finish().unwrap();
    let bundle_dir = t.path().join("bundle");
    bundles::pack::pack(&layout, &bundle_dir, &bundles::pack::PackOptions::default()).unwrap();

    let out = t.path().join("out");
    let err = extract(&Bundle::open(&bundle_dir).unwrap(), &out, "linux/amd64").unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(reference) && text.contains("refusing"), "{text}");
    assert!(!t.path().join("evil").exists());
}
