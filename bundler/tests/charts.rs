//! The real MOSIP chart repository (fixture of 2023-01-08) served locally, its upstream host mapped
//! through `mirrors`; image discovery with the real helm 3.8.2.

mod common;

use std::collections::BTreeMap;

use bundles::lock::Lock;
use common::*;
use testkit::{tool, HelmRepo};

const CHARTS: [&str; 3] = ["config-server", "artifactory", "keymanager"];

fn upstream_digests() -> BTreeMap<String, String> {
    let index: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(HelmRepo::fixture_dir().join("index.yaml")).unwrap()).unwrap();
    CHARTS
        .iter()
        .map(|name| {
            let entry =
                index["entries"][name].as_array().unwrap().iter().find(|e| e["version"] == "12.0.1-B2").unwrap();
            (name.to_string(), entry["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

fn spec(dir: &std::path::Path, repo: &HelmRepo, discover: &str) -> std::path::PathBuf {
    let mut yaml = String::from("charts:\n");
    for name in CHARTS {
        yaml += &format!(
            "  - repo: {}\n    name: {name}\n    version: 12.0.1-B2\n    discover: {discover}\n",
            repo.upstream_url()
        );
    }
    yaml += &format!(
        "mirrors:\n  {}: {}\nhelm: {}\n",
        repo.upstream_host(),
        repo.url().trim_end_matches("/mosip-helm"),
        tool("helm").display()
    );
    write_spec(dir, &yaml)
}

#[test]
fn charts_land_with_the_upstream_digests_and_discovery_finds_mosip_images() {
    let repo = HelmRepo::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let spec = spec(t.path(), &repo, "report");
    let cache = t.path().join("cache");
    let staged = stage_only(&spec, &cache, false).unwrap();
    let lock = staged.lock().unwrap();

    let digests = upstream_digests();
    for name in CHARTS {
        let reference = format!("mosip.github.io/mosip-helm/{name}:12.0.1-B2");
        let a =
            lock.artifacts.iter().find(|a| a.reference == reference).unwrap_or_else(|| panic!("{reference} missing"));
        assert_eq!(
            a.source.as_deref(),
            Some(format!("https://mosip.github.io/mosip-helm/{name}-12.0.1-B2.tgz").as_str())
        );
        let tgz = format!("sha256:{}", digests[name]);
        assert!(lock.blobs.iter().any(|b| b.digest == tgz), "{name}: the .tgz with the index's digest is carried");
        // The layer is the .tgz unchanged.
        assert_eq!(sha256_file(&cache.join("blobs/sha256").join(&digests[name])), digests[name]);
    }
    assert!(lock.artifacts.iter().all(|a| a.kind == bundles::artifact::Kind::Chart), "report carries no image");

    let images: Vec<&str> = staged.discovered.iter().map(|d| d.image.as_str()).collect();
    assert!(images.iter().any(|i| i.starts_with("docker.io/mosipid/config-server:")), "{images:?}");
    assert!(images.iter().any(|i| i.starts_with("docker.io/mosipid/kernel-keymanager-service:")), "{images:?}");
    assert!(staged.discovered.iter().all(|d| !d.carried));
}

#[test]
fn strict_discovery_fails_on_an_unlisted_image() {
    let repo = HelmRepo::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let spec = spec(t.path(), &repo, "strict");
    let err = stage_only(&spec, &t.path().join("cache"), false).err().expect("strict must fail");
    let text = format!("{err:#}");
    assert!(text.contains("not listed under images") && text.contains("docker.io/mosipid/config-server"), "{text}");
}

#[test]
fn a_chart_version_the_repository_lacks_is_named() {
    let repo = HelmRepo::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(
        t.path(),
        &format!(
            "charts:\n  - repo: {}\n    name: config-server\n    version: 0.0.0-nope\nmirrors:\n  {}: {}\n",
            repo.upstream_url(),
            repo.upstream_host(),
            repo.url().trim_end_matches("/mosip-helm")
        ),
    );
    let err = bundler::lock(&lock_options(&spec, &t.path().join("l.json"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("charts[0] config-server 0.0.0-nope") && text.contains("12.0.1-B2"), "{text}");
    let _ = Lock::read(&t.path().join("l.json")).unwrap_err();
}

/// A chart in an OCI registry (pushed with skopeo as Helm lays charts out), pulled by `oci://`.
#[test]
fn a_chart_from_an_oci_registry_keeps_its_digest_and_is_rendered() {
    use bundles::artifact::{Kind, HELM_CONFIG_MEDIA_TYPE};
    let dist = testkit::Distribution::start(testkit::DistributionOpts::default()).unwrap();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let mut w = bundles::layout_writer::LayoutWriter::open(&layout).unwrap();
    let tgz =
        w.put_bytes(&std::fs::read(HelmRepo::fixture_dir().join("config-server-12.0.1-B2.tgz")).unwrap()).unwrap();
    let config = w.put_bytes(br#"{"apiVersion":"v2","name":"config-server","version":"12.0.1-B2"}"#).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": config.digest.to_string(), "size": config.size},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": tgz.digest.to_string(), "size": tgz.size}],
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add("chart", Kind::Chart, desc.clone(), &[]);
    w.finish().unwrap();
    let reference = format!("{}/charts/config-server:12.0.1-B2", dist.host_port());
    run(std::process::Command::new(tool("skopeo")).args([
        "copy",
        "--preserve-digests",
        "--dest-cert-dir",
        dist.cert_dir().unwrap().to_str().unwrap(),
        "--dest-creds",
        &dist.creds().unwrap(),
        &format!("oci:{}:chart", layout.display()),
        &format!("docker://{reference}"),
    ]));
    std::env::set_var("OCI_CHART_USER", dist.user().unwrap());
    std::env::set_var("OCI_CHART_PASS", dist.password().unwrap());
    let spec = write_spec(
        t.path(),
        &format!(
            "charts:\n  - repo: oci://{host}/charts\n    name: config-server\n    version: 12.0.1-B2\n    discover: report\nca_certs: [{ca}]\ncredentials:\n  env:\n    \"{host}\": {{username: OCI_CHART_USER, password: OCI_CHART_PASS}}\nhelm: {helm}\n",
            host = dist.host_port(),
            ca = dist.ca_pem().unwrap().display(),
            helm = tool("helm").display(),
        ),
    );
    let staged = stage_only(&spec, &t.path().join("cache"), false).unwrap();
    let lock = staged.lock().unwrap();
    assert_eq!(lock.artifacts.len(), 1);
    assert_eq!(lock.artifacts[0].reference, reference);
    assert_eq!(lock.artifacts[0].kind, Kind::Chart);
    assert_eq!(&lock.artifacts[0].digest, desc.digest());
    assert!(
        staged.discovered.iter().any(|d| d.image.starts_with("docker.io/mosipid/config-server:")),
        "{:?}",
        staged.discovered
    );
}
