//! Files whose published SHA-256 lives in a checksums file (`sha256_from`), served with the
//! download by the test's own file server. The archive and the checksums file are generated here,
//! named as eksctl's release names them.

mod common;

use std::path::{Path, PathBuf};

use bundles::lock::Lock;
use common::*;
use testkit::FileServer;

const RELEASE: &str = "weaveworks/eksctl/releases/download/v0.121.0";
const URL: &str = "https://github.com/weaveworks/eksctl/releases/download/v0.121.0/eksctl_Linux_amd64.tar.gz";
const FROM: &str = "https://github.com/weaveworks/eksctl/releases/download/v0.121.0/eksctl_checksums.txt";
const REFERENCE: &str = "files.airgap.local/eksctl:0.121.0-linux-amd64";

struct Release {
    www: PathBuf,
    archive: PathBuf,
    checksums: PathBuf,
}

/// What the checksums file says of the archive.
enum Line {
    Right,
    Says(String),
    Missing,
}

/// A release folder: the archive (holding `eksctl`) and a goreleaser checksums file with lines
/// for other archives around the archive's `line`.
fn release(dir: &Path, line: Line) -> Release {
    let www = dir.join("www");
    let folder = www.join(RELEASE);
    std::fs::create_dir_all(&folder).unwrap();
    let archive = folder.join("eksctl_Linux_amd64.tar.gz");
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&archive).unwrap(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let binary = b"#!/bin/sh\necho eksctl 0.121.0\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(binary.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "eksctl", &binary[..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let mut text = format!("{}  eksctl_Darwin_amd64.tar.gz\n", "1".repeat(64));
    match line {
        Line::Right => text += &format!("{}  eksctl_Linux_amd64.tar.gz\n", sha256_file(&archive)),
        Line::Says(hex) => text += &format!("{hex}  eksctl_Linux_amd64.tar.gz\n"),
        Line::Missing => {}
    }
    text += &format!("{}  eksctl_Linux_arm64.tar.gz\n", "2".repeat(64));
    let checksums = folder.join("eksctl_checksums.txt");
    std::fs::write(&checksums, text).unwrap();
    Release { www, archive, checksums }
}

fn spec(dir: &Path, server: &FileServer) -> PathBuf {
    write_spec(
        dir,
        &format!(
            "files:
  - url: {URL}
    sha256_from: {FROM}
    extract: eksctl
    version: 0.121.0
    executable: true
    platform: linux/amd64
mirrors:
  github.com: {}
",
            server.url()
        ),
    )
}

#[test]
fn the_checksums_file_s_line_is_locked_and_create_checks_against_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let r = release(t.path(), Line::Right);
    let archive_sha = sha256_file(&r.archive);
    let server = FileServer::start(&r.www).unwrap();
    let spec = spec(t.path(), &server);
    let cache = t.path().join("cache");
    let lock_file = t.path().join("lock.json");
    bundler::lock(&lock_options(&spec, &lock_file, &cache)).unwrap();

    let lock = Lock::read(&lock_file).unwrap();
    let eksctl = lock.artifacts.iter().find(|a| a.reference == REFERENCE).unwrap();
    let published = eksctl.published.as_ref().expect("the lock records where the checksum came from");
    assert_eq!(published.digest.to_string(), format!("sha256:{archive_sha}"));
    assert_eq!(published.sha256_from, FROM);
    assert_eq!(published.sha256_from_digest.to_string(), format!("sha256:{}", sha256_file(&r.checksums)));
    assert_eq!(eksctl.source.as_deref(), Some(URL));

    // `create --lock` takes the checksum from the lock: the checksums file, gone now, is not read.
    std::fs::remove_file(&r.checksums).unwrap();
    let out = t.path().join("bundle");
    let mut args = create_options(&spec, &out, &t.path().join("fresh-cache"));
    args.lock = Some(lock_file.clone());
    bundler::create(&args).unwrap();
    assert_eq!(Lock::read(&out).unwrap().artifacts, lock.artifacts);
    let sbom = std::fs::read_to_string(out.join("sbom.cdx.json")).unwrap();
    assert!(sbom.contains("airgap:sha256From") && sbom.contains(FROM), "{sbom}");

    // A spec that now names another checksums file no longer matches the lock.
    let moved = std::fs::read_to_string(&spec).unwrap().replace("eksctl_checksums.txt", "checksums-v2.txt");
    std::fs::write(&spec, moved).unwrap();
    let mut args = create_options(&spec, &t.path().join("b2"), &cache);
    args.lock = Some(lock_file);
    let err = format!("{:#}", bundler::create(&args).unwrap_err());
    assert!(err.contains(&format!("files[0] {URL}")) && err.contains("checksums-v2.txt"), "{err}");
}

#[test]
fn a_checksums_file_without_the_download_s_line_fails_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let r = release(t.path(), Line::Missing);
    let server = FileServer::start(&r.www).unwrap();
    let spec = spec(t.path(), &server);
    let err = bundler::lock(&lock_options(&spec, &t.path().join("lock.json"), &t.path().join("cache"))).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains(&format!("files[0] {URL}")), "{err}");
    assert!(err.contains(&format!("the checksums file {FROM} lists no 'eksctl_Linux_amd64.tar.gz'")), "{err}");
    assert!(!t.path().join("lock.json").exists());
}

#[test]
fn a_download_that_differs_from_its_published_checksum_fails_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let r = release(t.path(), Line::Says(wrong.clone()));
    let server = FileServer::start(&r.www).unwrap();
    let spec = spec(t.path(), &server);
    let cache = t.path().join("cache");
    let err = bundler::create(&create_options(&spec, &t.path().join("bundle"), &cache)).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains(&format!("files[0] {URL}")), "{err}");
    assert!(err.contains(&format!("expected sha256:{wrong}")) && err.contains("nothing stored"), "{err}");
    assert!(!cached_blobs(&cache).contains(&sha256_file(&r.archive)));
}
