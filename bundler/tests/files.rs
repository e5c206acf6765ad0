//! Files and tool binaries from a local HTTP file server, with their real checksums.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use bundles::lock::Lock;
use bundles::verify::{verify, VerifyOptions};
use common::*;
use testkit::FileServer;

const KUBECTL_PATH: &str = "release-mirror/release/v1.24.17/bin/linux/amd64/kubectl";

/// What the tests' file server serves: a raw binary (as kubectl ships) at the path the spec's
/// mirror maps kubectl's URL to, and a tar.gz holding one (as helm ships).
struct Downloads {
    www: PathBuf,
    kubectl: Vec<u8>,
    helm: Vec<u8>,
    kubectl_sha: String,
    helm_sha: String,
}

fn make_downloads(dir: &Path) -> Downloads {
    let www = dir.join("www");
    std::fs::create_dir_all(www.join(KUBECTL_PATH).parent().unwrap()).unwrap();
    let kubectl: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(www.join(KUBECTL_PATH), &kubectl).unwrap();
    let helm: Vec<u8> = b"#!/bin/sh\necho helm v3.8.2\n".repeat(1000);
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(www.join("helm-v3.8.2-linux-amd64.tar.gz")).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, data) in [("linux-amd64/README.md", b"readme".to_vec()), ("linux-amd64/helm", helm.clone())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let kubectl_sha = sha256_file(&www.join(KUBECTL_PATH));
    let helm_sha = sha256_file(&www.join("helm-v3.8.2-linux-amd64.tar.gz"));
    Downloads { www, kubectl, helm, kubectl_sha, helm_sha }
}

fn spec(dir: &Path, server: &FileServer, kubectl_sha: &str, helm_tgz_sha: &str) -> PathBuf {
    write_spec(
        dir,
        &format!(
            "files:
  - url: https://dl.k8s.io/release/v1.24.17/bin/linux/amd64/kubectl
    sha256: {kubectl_sha}
    version: v1.24.17
    executable: true
    platform: linux/amd64
  - url: https://get.helm.sh/helm-v3.8.2-linux-amd64.tar.gz
    sha256: {helm_tgz_sha}
    extract: linux-amd64/helm
    version: v3.8.2
    executable: true
mirrors:
  dl.k8s.io: {url}/release-mirror
  get.helm.sh: {url}
",
            url = server.url()
        ),
    )
}

fn layer_of(bundle: &Path, reference: &str) -> Vec<u8> {
    let b = bundles::Bundle::open(bundle).unwrap();
    let a = b.lock().unwrap().artifacts.into_iter().find(|a| a.reference == reference).unwrap();
    let c = a.content.unwrap();
    let d = c.digest;
    let mut out = Vec::new();
    b.open_member(&bundles::digest::blob_path(&d)).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn carries_binaries_and_a_member_of_a_tar_gz() {
    let t = tempfile::tempdir().unwrap();
    let Downloads { www, kubectl, helm, kubectl_sha, helm_sha } = make_downloads(t.path());
    let server = FileServer::start(&www).unwrap();
    let spec = spec(t.path(), &server, &kubectl_sha, &helm_sha);
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();

    let report = verify(&out, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());
    let lock = Lock::read(&out).unwrap();
    let refs: Vec<&str> = lock.artifacts.iter().map(|a| a.reference.as_str()).collect();
    assert_eq!(refs, ["files.airgap.local/helm:v3.8.2", "files.airgap.local/kubectl:v1.24.17-linux-amd64"]);
    let k = &lock.artifacts[1];
    assert_eq!(k.content.as_ref().unwrap().digest.to_string(), format!("sha256:{kubectl_sha}"));
    assert_eq!(k.content.as_ref().unwrap().name, "kubectl");
    assert_eq!(k.source.as_deref(), Some("https://dl.k8s.io/release/v1.24.17/bin/linux/amd64/kubectl"));
    assert_eq!(layer_of(&out, "files.airgap.local/kubectl:v1.24.17-linux-amd64"), kubectl);
    assert_eq!(layer_of(&out, "files.airgap.local/helm:v3.8.2"), helm);
}

#[test]
fn a_wrong_checksum_fails_naming_the_entry() {
    let t = tempfile::tempdir().unwrap();
    let d = make_downloads(t.path());
    let server = FileServer::start(&d.www).unwrap();
    let helm_sha = d.helm_sha;
    let wrong = "0".repeat(64);
    let spec = spec(t.path(), &server, &wrong, &helm_sha);
    let cache = t.path().join("cache");
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &cache)).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("files[0] https://dl.k8s.io/release/v1.24.17/bin/linux/amd64/kubectl"), "{text}");
    assert!(text.contains(&format!("expected sha256:{wrong}")) && text.contains("nothing stored"), "{text}");
    assert!(!cache.join("partial").join(&wrong).exists());
}

#[test]
fn a_connection_dropped_mid_download_is_resumed() {
    fast_retries();
    let t = tempfile::tempdir().unwrap();
    let Downloads { www, kubectl, kubectl_sha, helm_sha, .. } = make_downloads(t.path());
    let server = FileServer::start(&www).unwrap();
    let spec = spec(t.path(), &server, &kubectl_sha, &helm_sha);
    server.drop_connection_after_once(1_000_000);
    let out = t.path().join("bundle");
    let mut args = create_options(&spec, &out, &t.path().join("cache"));
    args.fetch.jobs = 1;
    bundler::create(&args).unwrap();
    assert_eq!(layer_of(&out, "files.airgap.local/kubectl:v1.24.17-linux-amd64"), kubectl);
    let resumed: Vec<_> =
        server.requests().into_iter().filter(|r| r.path.ends_with("/kubectl") && r.range.is_some()).collect();
    assert_eq!(resumed.len(), 1, "{:?}", server.requests());
    assert_eq!(resumed[0].range.as_deref(), Some("bytes=1000000-"));
}

#[test]
fn an_interrupted_run_leaves_a_partial_that_the_next_run_resumes() {
    let t = tempfile::tempdir().unwrap();
    let Downloads { www, kubectl, kubectl_sha, helm_sha, .. } = make_downloads(t.path());
    // What a crash leaves: the first 700 kB in partial/.
    let cache = t.path().join("cache");
    std::fs::create_dir_all(cache.join("partial")).unwrap();
    std::fs::write(cache.join("partial").join(&kubectl_sha), &kubectl[..700_000]).unwrap();
    let server = FileServer::start(&www).unwrap();
    let spec = spec(t.path(), &server, &kubectl_sha, &helm_sha);
    bundler::create(&create_options(&spec, &t.path().join("bundle"), &cache)).unwrap();
    let ranges: Vec<_> = server.requests().into_iter().filter_map(|r| r.range).collect();
    assert_eq!(ranges, ["bytes=700000-"]);
    assert!(cached_blobs(&cache).contains(&kubectl_sha));
}

#[test]
fn two_members_of_one_archive_download_it_once() {
    let t = tempfile::tempdir().unwrap();
    let d = make_downloads(t.path());
    let server = FileServer::start(&d.www).unwrap();
    let sha = d.helm_sha;
    let url = server.url_of("helm-v3.8.2-linux-amd64.tar.gz");
    let spec = write_spec(
        t.path(),
        &format!(
            "files:\n  - url: {url}\n    sha256: {sha}\n    extract: linux-amd64/helm\n    version: v3.8.2\n  - url: {url}\n    sha256: {sha}\n    extract: linux-amd64/README.md\n    name: helm-readme.md\n    version: v3.8.2\n"
        ),
    );
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    assert_eq!(layer_of(&out, "files.airgap.local/helm-readme.md:v3.8.2"), b"readme");
    let gets = server.requests().into_iter().filter(|r| r.method == "GET").count();
    assert_eq!(gets, 1, "{:?}", server.requests());
}

#[test]
fn leftovers_of_a_killed_run_are_removed_and_partials_kept() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    // No process has an id this large (pid_max is at most 2^22).
    let dead = "99999999";
    for d in [format!("runs/{dead}-1/blobs"), format!("runs/git-{dead}-2/repo.git")] {
        std::fs::create_dir_all(cache.join(d)).unwrap();
    }
    std::fs::create_dir_all(cache.join("partial")).unwrap();
    std::fs::write(cache.join(format!("partial/build.{dead}-0.tmp")), b"x").unwrap();
    std::fs::write(cache.join("partial").join("a".repeat(64)), b"resume me").unwrap();
    let www = t.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("f"), b"f").unwrap();
    let server = FileServer::start(&www).unwrap();
    let spec = write_spec(
        t.path(),
        &format!(
            "files:\n  - url: {}\n    sha256: {}\n    version: v1\n",
            server.url_of("f"),
            sha256_file(&www.join("f"))
        ),
    );
    bundler::lock(&lock_options(&spec, &t.path().join("l.json"), &cache)).unwrap();
    assert_eq!(std::fs::read_dir(cache.join("runs")).unwrap().count(), 0);
    assert!(!cache.join(format!("partial/build.{dead}-0.tmp")).exists());
    assert!(cache.join("partial").join("a".repeat(64)).exists());
}
