//! helm at the pinned version, and the MOSIP chart repository fixture served locally.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use testkit::{run, tool, HelmRepo};

fn helm(home: &Path) -> Command {
    let mut cmd = Command::new(tool("helm-3.8.2"));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

#[test]
fn helm_is_the_pinned_version() {
    let home = tempfile::tempdir().unwrap();
    let out = run(helm(home.path()).args(["version", "--template", "{{.Version}}"])).unwrap();
    assert_eq!(out.trim(), "v3.8.2");
}

#[derive(Deserialize)]
struct Index {
    entries: BTreeMap<String, Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    version: String,
    digest: String,
    urls: Vec<String>,
}

#[test]
fn chart_repository_serves_index_and_charts() {
    let repo = HelmRepo::start().unwrap();
    assert_eq!(repo.upstream_url(), "https://mosip.github.io/mosip-helm");
    assert_eq!(repo.upstream_host(), "mosip.github.io");

    let fixture_index = fs::read(HelmRepo::fixture_dir().join("index.yaml")).unwrap();
    let mut served = Vec::new();
    std::io::Read::read_to_end(
        &mut ureq::get(&format!("{}/index.yaml", repo.url())).call().unwrap().into_reader(),
        &mut served,
    )
    .unwrap();
    assert_eq!(served, fixture_index, "the index is served unchanged");

    let home = tempfile::tempdir().unwrap();
    run(helm(home.path()).args(["repo", "add", "mosip", &repo.url()])).unwrap();
    let search =
        run(helm(home.path()).args(["search", "repo", "mosip/regproc-group1", "--version", "12.0.1-B2"])).unwrap();
    assert!(search.contains("mosip/regproc-group1"), "{search}");

    // The index points at the upstream host; the mapped URL reaches the local server instead.
    let index: Index = serde_yaml_ng::from_slice(&fixture_index).unwrap();
    let entry = &index.entries["regproc-group1"][0];
    let mapped = repo.map_url(&entry.urls[0]);
    assert!(mapped.starts_with("http://127.0.0.1:"), "{mapped}");
    let out = tempfile::tempdir().unwrap();
    run(helm(home.path()).args(["pull", &mapped, "-d"]).arg(out.path())).unwrap();
    let file = out.path().join(format!("regproc-group1-{}.tgz", entry.version));
    let digest = hex::encode(Sha256::digest(fs::read(&file).unwrap()));
    assert_eq!(digest, entry.digest);
    assert_eq!(repo.map_url("https://example.org/x.tgz"), "https://example.org/x.tgz");
}
