//! Helpers shared by the bundler's tests: specs on disk, the library entry points with a quiet
//! reporter, and upstream content made by the test.
#![allow(dead_code)]

pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use bundler::run::{stage, Options, Staged};
use bundler::{CreateOptions, FetchOptions, LockOptions, Progress};

pub fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("bundle.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

pub fn create_options(spec: &Path, out: &Path, cache: &Path) -> CreateOptions {
    CreateOptions { max_part_size: 1 << 20, ..CreateOptions::new(spec, out, FetchOptions::new(cache)) }
}

pub fn lock_options(spec: &Path, out: &Path, cache: &Path) -> LockOptions {
    LockOptions { spec: spec.to_path_buf(), output: out.to_path_buf(), fetch: FetchOptions::new(cache) }
}

/// Stages without packing, for tests that look at what was resolved.
pub fn stage_only(spec: &Path, cache: &Path, fetch_layers: bool) -> Result<Staged> {
    let opts = Options {
        spec: spec.to_path_buf(),
        cache: cache.to_path_buf(),
        jobs: 4,
        platforms: vec![],
        helm: None,
        lock: None,
        fetch_layers,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(stage(&opts, &Progress::quiet()))
}

pub fn fast_retries() {
    std::env::set_var("AIRGAP_RETRY_BASE_MS", "20");
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Every blob file in a cache.
pub fn cached_blobs(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("blobs/sha256"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// What `create --lock` must reproduce: the same lock, the same index (as JSON), the same members.
/// Checked before the bytes so that a difference says where it is.
pub fn assert_same_content(a: &Path, b: &Path) {
    let (ba, bb) = (bundles::Bundle::open(a).unwrap(), bundles::Bundle::open(b).unwrap());
    assert_eq!(std::fs::read(a.join("bundle.lock.json")).unwrap(), std::fs::read(b.join("bundle.lock.json")).unwrap());
    let index = |x: &bundles::Bundle| {
        serde_json::from_slice::<serde_json::Value>(&x.read_member("index.json").unwrap()).unwrap()
    };
    assert_eq!(index(&ba), index(&bb));
    let members =
        |x: &bundles::Bundle| x.meta().members.iter().map(|m| serde_json::to_string(m).unwrap()).collect::<Vec<_>>();
    let (ma, mb) = (members(&ba), members(&bb));
    assert_eq!(ma.len(), mb.len());
    for blob in ma.iter().filter(|m| m.contains("blobs/sha256/")) {
        assert!(mb.contains(blob), "{blob} differs");
    }
}

pub fn assert_identical_parts(a: &Path, b: &Path) {
    assert_eq!(
        std::fs::read_to_string(a.join("SHA256SUMS")).unwrap(),
        std::fs::read_to_string(b.join("SHA256SUMS")).unwrap(),
        "two runs from one lock give byte-identical parts"
    );
}
