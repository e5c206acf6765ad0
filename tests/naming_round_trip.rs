//! Every kind of spec entry the installer's plan can name (chart, file, extracted file, git
//! repository), under the names that once made the bundler and the installer disagree: a version
//! with `+`, upper-case file names, a `?query` URL and a `user@` git URL. A bundle is made from
//! the spec; the plan naming them loads and finds each in the bundle.
//!
//! Upstream content is made by the test: a chart and its classic repository index, a tool
//! archive and a text file, served by a local file server; the git repository is
//! `shared/fixtures`' MOSIP config bundle with a `release/1.2` branch added.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use bundles::artifact::Kind;
use installer::plan::{Carried, Plan};
use sha2::Digest as _;
use testkit::{shared_fixtures, tool, FileServer};

const CHART_VERSION: &str = "1.0.0+up2";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The upstream web under `www`; returns the SHA-256 of the tool archive and of the text file.
fn upstream(www: &Path) -> (String, String) {
    let charts = www.join("stable");
    std::fs::create_dir_all(&charts).unwrap();
    let chart = tar_gz(&[(
        "mychart/Chart.yaml",
        format!("apiVersion: v2\nname: mychart\nversion: {CHART_VERSION}\n").as_bytes(),
    )]);
    std::fs::write(charts.join(format!("mychart-{CHART_VERSION}.tgz")), &chart).unwrap();
    let index = format!(
        "apiVersion: v1\nentries:\n  mychart:\n  - name: mychart\n    version: {CHART_VERSION}\n    digest: {}\n    urls: [mychart-{CHART_VERSION}.tgz]\n",
        sha256_hex(&chart)
    );
    std::fs::write(charts.join("index.yaml"), index).unwrap();

    let tools = www.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let archive = tar_gz(&[("bin/Tool-CLI", b"#!/bin/sh\necho tool\n")]);
    std::fs::write(tools.join("Tool-CLI.tar.gz"), &archive).unwrap();
    let readme = b"read me\n";
    std::fs::write(tools.join("Readme.TXT"), readme).unwrap();

    let repo = www.join("Org/Config.git");
    let fixture = shared_fixtures().join("git/mosip-config-1.2.0.1-v3.bundle");
    run(Command::new("git").args(["clone", "--quiet", "--mirror"]).arg(&fixture).arg(&repo));
    run(Command::new("git").arg("-C").arg(&repo).args(["branch", "release/1.2", "1.2.0.1-v3"]));
    run(Command::new("git").arg("-C").arg(&repo).arg("update-server-info"));
    (sha256_hex(&archive), sha256_hex(readme))
}

#[test]
fn what_the_bundler_carries_is_what_a_plan_names() {
    let t = tempfile::tempdir().unwrap();
    let (archive_sha, readme_sha) = upstream(&t.path().join("www"));
    let server = FileServer::start(t.path().join("www")).unwrap();
    let spec = t.path().join("bundle.yaml");
    std::fs::write(
        &spec,
        format!(
            "charts:
  - repo: https://charts.example.org/stable/
    name: mychart
    version: {CHART_VERSION}
files:
  - url: https://Downloads.example.org/tools/Tool-CLI.tar.gz?download=1
    sha256: {archive_sha}
    extract: bin/Tool-CLI
    version: 1.0+b1
    platform: linux/amd64
    executable: true
  - url: https://Downloads.example.org/tools/Readme.TXT?raw=true#top
    sha256: {readme_sha}
    version: 2+meta
git:
  - url: https://deploy@Git.Example.org/Org/Config.git
    ref: release/1.2
mirrors:
  charts.example.org: {url}
  Downloads.example.org: {url}
  deploy@Git.Example.org: {url}
",
            url = server.url()
        ),
    )
    .unwrap();
    let out = t.path().join("bundle");
    let created = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(["bundle", "create"])
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache"))
        // Any executable will do; the airgap being built beside this test may change under it.
        .args(["--airgap-binary", "/bin/true"])
        // The chart's images are found by rendering it.
        .arg("--helm")
        .arg(tool("helm-3.8.2"))
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let lock = bundles::Bundle::open(&out).unwrap().lock().unwrap();
    let in_bundle = |kind: Kind| -> BTreeSet<String> {
        lock.artifacts.iter().filter(|a| a.kind == kind).map(|a| a.reference.clone()).collect()
    };
    let carried = Carried::from_spec(&spec).unwrap();
    assert_eq!(carried.charts, in_bundle(Kind::Chart));
    assert_eq!(carried.files, in_bundle(Kind::File));
    assert_eq!(carried.git, in_bundle(Kind::Git));

    let named = [
        "charts.example.org/stable/mychart:1.0.0_up2",
        "files.airgap.local/tool-cli:1.0_b1-linux-amd64",
        "files.airgap.local/readme.txt:2_meta",
        "git.example.org/org/config:release-1.2",
    ];
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1
bundle: bundle.yaml
clusters:
  site:
    steps:
      - {{id: chart, helm: {{release: r, namespace: n, chart: '{}'}}}}
      - {{id: tool, apply: {{file: '{}'}}}}
      - {{id: readme, apply: {{file: '{}'}}}}
      - {{id: config, apply: {{git: '{}', path: .}}}}
",
            named[0], named[1], named[2], named[3]
        ),
    )
    .unwrap();
    Plan::load(&plan).unwrap();
    let all: BTreeSet<&str> = lock.artifacts.iter().map(|a| a.reference.as_str()).collect();
    for reference in named {
        assert!(all.contains(reference), "{reference} is not in the bundle ({all:?})");
    }
}
