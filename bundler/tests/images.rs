//! Images from a real CNCF distribution with TLS (a test CA) and htpasswd auth, seeded with a
//! multi-platform image made here and pushed with skopeo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use bundles::lock::Lock;
use bundles::verify::{verify, VerifyOptions};
use common::*;
use serde_json::json;
use testkit::images::noise;
use testkit::{tool, Distribution, DistributionOpts, FileServer};

struct Seeded {
    dist: Distribution,
    reference: String,
    index: String,
    shared_layer: String,
    amd64_layer: String,
    _dir: tempfile::TempDir,
}

/// One index, two platforms, a layer shared by both and one of each platform's own.
fn seed() -> Seeded {
    let dist = Distribution::start(DistributionOpts::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    let shared = w.put_bytes(&noise(300_000, 1)).unwrap();
    let mut children = Vec::new();
    let mut own_layers = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let own = w.put_bytes(&noise(200_000, 10 + i as u64)).unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [shared.digest.to_string(), own.digest.to_string()]},
        }))
        .unwrap();
        let config = w.put_bytes(&config).unwrap();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
            "layers": [
                {"mediaType": layer_type, "digest": shared.digest.to_string(), "size": shared.size},
                {"mediaType": layer_type, "digest": own.digest.to_string(), "size": own.size},
            ],
        });
        let d = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
        children.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.digest().to_string(), "size": d.size(),
            "platform": {"os": "linux", "architecture": arch},
        }));
        own_layers.push(own.digest.to_string());
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children});
    let index_desc = w.put_manifest("application/vnd.oci.image.index.v1+json", &index).unwrap();
    w.add("app", Kind::Image, index_desc.clone(), &[]);
    w.finish().unwrap();
    let reference = format!("{}/test/app:1.0", dist.host_port());
    push(&dist, &layout, "app", &reference);
    Seeded {
        reference,
        index: index_desc.digest().to_string(),
        shared_layer: shared.digest.to_string(),
        amd64_layer: own_layers[0].clone(),
        dist,
        _dir: dir,
    }
}

/// Copies `name` of an OCI layout to `reference` in the registry, digests unchanged.
fn push(dist: &Distribution, layout: &Path, name: &str, reference: &str) {
    run(Command::new(tool("skopeo")).args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-cert-dir",
        dist.cert_dir().unwrap().to_str().unwrap(),
        "--dest-creds",
        &dist.creds().unwrap(),
        &format!("oci:{}:{name}", layout.display()),
        &format!("docker://{reference}"),
    ]));
}

/// A spec for the seeded registry; the password comes from an environment variable named per test.
fn spec_for(s: &Seeded, dir: &Path, image: &str, platforms: &str, env_prefix: &str, password: &str) -> PathBuf {
    std::env::set_var(format!("{env_prefix}_USER"), s.dist.user().unwrap());
    std::env::set_var(format!("{env_prefix}_PASS"), password);
    write_spec(
        dir,
        &format!(
            "images:\n  - ref: {image}\n    platforms: {platforms}\nca_certs: [{ca}]\ncredentials:\n  env:\n    \"{host}\": {{username: {env_prefix}_USER, password: {env_prefix}_PASS}}\n",
            ca = s.dist.ca_pem().unwrap().display(),
            host = s.dist.host_port(),
        ),
    )
}

#[test]
fn carries_a_multi_platform_image_from_a_tls_registry_with_auth() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let spec = spec_for(&s, t.path(), &s.reference, "[linux/amd64, linux/arm64]", "IMG_OK", s.dist.password().unwrap());
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();

    let report = verify(&out, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());
    let lock = Lock::read(&out).unwrap();
    let image = &lock.artifacts[0];
    assert_eq!(image.reference, s.reference);
    assert_eq!(image.digest.as_ref(), s.index, "the bundle keeps the upstream index digest");
    assert_eq!(image.platforms, ["linux/amd64", "linux/arm64"]);
    // index + 2 manifests + 2 configs + shared layer once + 2 own layers
    assert_eq!(lock.blobs.len(), 8);
    assert_eq!(lock.blobs.iter().filter(|b| b.digest == s.shared_layer).count(), 1);
}

#[test]
fn carries_only_the_chosen_platform_of_an_index() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let spec = spec_for(&s, t.path(), &s.reference, "[linux/arm64]", "IMG_ONE", s.dist.password().unwrap());
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    let report = verify(&out, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());
    let lock = Lock::read(&out).unwrap();
    assert_eq!(lock.artifacts[0].digest.as_ref(), s.index);
    assert!(!lock.blobs.iter().any(|b| b.digest == s.amd64_layer), "the amd64 layer is not carried");
    assert_eq!(lock.blobs.len(), 5);

    // `bundle lock` says the same: the arm64 image's blobs and the index, not the amd64 manifest.
    let lock_path = t.path().join("bundle.lock.json");
    bundler::lock(&lock_options(&spec, &lock_path, &t.path().join("cache"))).unwrap();
    assert_eq!(Lock::read(&lock_path).unwrap().blobs, lock.blobs);
}

/// A delta over a one-platform bundle, made with `--base` the lock of that bundle, for both
/// platforms: it must carry the other platform's manifest, which the base does not have.
#[test]
fn a_delta_over_the_lock_of_a_one_platform_bundle_carries_what_it_needs() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let one = spec_for(&s, t.path(), &s.reference, "[linux/arm64]", "IMG_DELTA", s.dist.password().unwrap());
    let lock_path = t.path().join("arm64.lock.json");
    bundler::lock(&lock_options(&one, &lock_path, &t.path().join("cache"))).unwrap();
    let base = t.path().join("base");
    let mut args = create_options(&one, &base, &t.path().join("cache"));
    args.lock = Some(lock_path.clone());
    bundler::create(&args).unwrap();
    assert_eq!(Lock::read(&base).unwrap().blobs, Lock::read(&lock_path).unwrap().blobs);

    let both_dir = t.path().join("both");
    std::fs::create_dir_all(&both_dir).unwrap();
    let both =
        spec_for(&s, &both_dir, &s.reference, "[linux/amd64, linux/arm64]", "IMG_DELTA", s.dist.password().unwrap());
    let delta = t.path().join("delta");
    let mut args = create_options(&both, &delta, &t.path().join("cache"));
    args.base = Some(lock_path);
    bundler::create(&args).unwrap();
    let report = verify(&delta, &VerifyOptions { key: None, bases: vec![bundles::Bundle::open(&base).unwrap()] });
    assert!(report.ok, "{}", report.to_text());
    assert!(bundles::Bundle::open(&delta).unwrap().has_blob(&bundles::digest::parse_sha256(&s.amd64_layer).unwrap()));
}

/// `app:1.0@<digest>` after the tag moved to another image: lock and create fetch the pinned
/// digest, and keep the tag as the name.
#[test]
fn a_pinned_digest_is_fetched_by_digest_after_its_tag_moved() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let moved = t.path().join("moved");
    let spec = testkit::images::ImageSpec { reference: "moved", platforms: &["linux/amd64"], shared_layers: &[] };
    let moved_digest = testkit::images::write_layout(&moved, &[spec])[0]["digest"].as_str().unwrap().to_string();
    push(&s.dist, &moved, "moved", &s.reference);

    let unpinned = spec_for(&s, t.path(), &s.reference, "[linux/amd64]", "IMG_PIN", s.dist.password().unwrap());
    bundler::lock(&lock_options(&unpinned, &t.path().join("now.json"), &t.path().join("cache"))).unwrap();
    assert_eq!(
        Lock::read(&t.path().join("now.json")).unwrap().artifacts[0].digest.as_ref(),
        moved_digest,
        "the tag moved"
    );

    let pinned_dir = t.path().join("pinned");
    std::fs::create_dir_all(&pinned_dir).unwrap();
    let pinned = format!("{}@{}", s.reference, s.index);
    let spec = spec_for(&s, &pinned_dir, &pinned, "[linux/amd64]", "IMG_PIN", s.dist.password().unwrap());
    let lock_path = t.path().join("pinned.json");
    bundler::lock(&lock_options(&spec, &lock_path, &t.path().join("cache"))).unwrap();
    let lock = Lock::read(&lock_path).unwrap();
    assert_eq!(
        (lock.artifacts[0].reference.as_str(), lock.artifacts[0].digest.as_ref()),
        (s.reference.as_str(), s.index.as_str())
    );
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    let carried = Lock::read(&out).unwrap();
    assert_eq!(carried.artifacts, lock.artifacts);
    assert_eq!(carried.blobs, lock.blobs);

    // A lock made before the pin does not satisfy it.
    let mut args = create_options(&spec, &t.path().join("stale"), &t.path().join("cache"));
    args.lock = Some(t.path().join("now.json"));
    let err = format!("{:#}", bundler::create(&args).unwrap_err());
    assert!(err.contains(&format!("the spec pins {}", s.index)) && err.contains(&moved_digest), "{err}");
}

/// An upstream that answers every manifest request, whatever the digest, with one manifest (and
/// serves that manifest's config honestly): a pinned digest it does not have is refused by lock
/// and by create, which leaves no bundle.
#[test]
fn a_lying_upstream_is_refused_for_a_pinned_digest() {
    let t = tempfile::tempdir().unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = bundles::digest::sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [],
    }))
    .unwrap();
    let served = bundles::digest::sha256_hex(&manifest);
    let server = common::upstream::Upstream::start(move |path| {
        use common::upstream::{Body, Reply};
        if path.contains("/manifests/") {
            Reply::ok("application/vnd.oci.image.manifest.v1+json", Body::Bytes(manifest.clone()))
        } else if path.ends_with(&config_digest) {
            Reply::ok("application/octet-stream", Body::Bytes(config.clone()))
        } else {
            Reply::not_found()
        }
    });
    let mirror = format!(
        "mirrors:
  liar.example: {}
",
        server.url()
    );
    // By tag the lie cannot be told from the truth; the tests below differ only in the pin.
    let spec = write_spec(
        t.path(),
        &format!(
            "images:
  - liar.example/app:1.0
{mirror}"
        ),
    );
    bundler::lock(&lock_options(&spec, &t.path().join("tag.json"), &t.path().join("cache"))).unwrap();

    let wanted = format!("sha256:{}", "4".repeat(64));
    let spec = write_spec(
        t.path(),
        &format!(
            "images:
  - liar.example/app:1.0@{wanted}
{mirror}"
        ),
    );
    let err = format!(
        "{:#}",
        bundler::lock(&lock_options(&spec, &t.path().join("pin.json"), &t.path().join("cache"))).unwrap_err()
    );
    assert!(
        err.contains(&format!("liar.example/app@{wanted}")) && err.contains(&format!("hashes to sha256:{served}")),
        "{err}"
    );
    assert!(!t.path().join("pin.json").exists());
    let err = format!(
        "{:#}",
        bundler::create(&create_options(&spec, &t.path().join("bundle"), &t.path().join("cache"))).unwrap_err()
    );
    assert!(err.contains(&format!("hashes to sha256:{served}")), "create: {err}");
    assert!(!t.path().join("bundle").exists());
}

#[test]
fn lock_then_create_twice_gives_identical_parts_and_base_gives_a_delta() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let spec = spec_for(&s, t.path(), &s.reference, "[linux/amd64]", "IMG_LOCK", s.dist.password().unwrap());
    let lock_path = t.path().join("bundle.lock.json");
    bundler::lock(&lock_options(&spec, &lock_path, &t.path().join("cache-lock"))).unwrap();
    let lock = Lock::read(&lock_path).unwrap();
    assert_eq!(lock.artifacts[0].digest.as_ref(), s.index);
    let layers_cached = cached_blobs(&t.path().join("cache-lock"));
    assert!(
        !layers_cached.contains(&s.shared_layer.trim_start_matches("sha256:").to_string()),
        "lock downloads no layer"
    );

    for n in 0..2 {
        let out = t.path().join(format!("bundle-{n}"));
        let mut args = create_options(&spec, &out, &t.path().join(format!("cache-{n}")));
        args.lock = Some(lock_path.clone());
        bundler::create(&args).unwrap();
        let carried = Lock::read(&out).unwrap();
        assert_eq!(carried.artifacts, lock.artifacts);
        assert_eq!(carried.blobs, lock.blobs, "the lock lists exactly the blobs the bundle carries");
    }
    assert_same_content(&t.path().join("bundle-0"), &t.path().join("bundle-1"));
    assert_identical_parts(&t.path().join("bundle-0"), &t.path().join("bundle-1"));

    // The same image plus a file, over the first bundle: only the file is carried.
    let www = t.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("tool"), b"#!/bin/sh\necho tool\n").unwrap();
    let server = testkit::FileServer::start(&www).unwrap();
    let mut yaml = std::fs::read_to_string(&spec).unwrap();
    yaml += &format!(
        "files:\n  - url: {}\n    sha256: {}\n    version: v1\n",
        server.url_of("tool"),
        sha256_file(&www.join("tool"))
    );
    let spec2 = t.path().join("delta.yaml");
    std::fs::write(&spec2, yaml).unwrap();
    let delta = t.path().join("delta");
    let mut args = create_options(&spec2, &delta, &t.path().join("cache-0"));
    args.base = Some(t.path().join("bundle-0"));
    bundler::create(&args).unwrap();
    let base = bundles::Bundle::open(&t.path().join("bundle-0")).unwrap();
    let d = bundles::Bundle::open(&delta).unwrap();
    let base_blobs = Lock::read(&t.path().join("bundle-0")).unwrap().blob_set();
    for b in &base_blobs {
        let digest = bundles::digest::parse_sha256(b).unwrap();
        assert!(base.has_blob(&digest));
        assert!(!d.has_blob(&digest), "{b} is in the base and must not be carried again");
    }
    let delta_lock = Lock::read(&delta).unwrap();
    assert_eq!(delta_lock.artifacts.len(), 2);
    let file_layer = delta_lock.artifacts.iter().find_map(|a| a.content.clone()).unwrap();
    assert!(d.has_blob(&file_layer.digest));
    let report = verify(&delta, &VerifyOptions { key: None, bases: vec![base] });
    assert!(report.ok, "{}", report.to_text());
}

#[test]
fn an_unknown_tag_names_the_spec_entry() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let missing = format!("{}/test/app:9.9", s.dist.host_port());
    let spec = spec_for(&s, t.path(), &missing, "[linux/amd64]", "IMG_404", s.dist.password().unwrap());
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(&format!("images[0] {missing}")) && text.contains("not found"), "{text}");
    assert!(!t.path().join("b").join("SHA256SUMS").exists());
}

#[test]
fn a_wrong_password_is_an_authentication_failure() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let spec = spec_for(&s, t.path(), &s.reference, "[linux/amd64]", "IMG_AUTH", "not-the-password");
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("authentication to") && text.contains("failed"), "{text}");
}

#[test]
fn a_digest_mismatch_from_upstream_stores_nothing() {
    fast_retries();
    let s = seed();
    // Damage the shared layer in the registry's own storage: it serves what it has.
    let hex = s.shared_layer.trim_start_matches("sha256:");
    let data = s.dist.storage_dir().join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let spec = spec_for(&s, t.path(), &s.reference, "[linux/amd64]", "IMG_BAD", s.dist.password().unwrap());
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &cache)).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(&format!("expected {}", s.shared_layer)) && text.contains("nothing stored"), "{text}");
    assert!(!cached_blobs(&cache).contains(&hex.to_string()));
    assert!(!cache.join("partial").join(hex).exists());
}

/// `discover: add`: the MOSIP config-server chart, its image pointed at the seeded registry with
/// `set`, brings that image into the bundle.
#[test]
fn images_discovered_in_a_chart_are_carried() {
    let s = seed();
    let repo = testkit::HelmRepo::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    std::env::set_var("IMG_DISC_USER", s.dist.user().unwrap());
    std::env::set_var("IMG_DISC_PASS", s.dist.password().unwrap());
    let spec = write_spec(
        t.path(),
        &format!(
            "charts:
  - repo: {upstream}
    name: config-server
    version: 12.0.1-B2
    set:
      image.repository: {host}/test/app
      image.tag: \"1.0\"
mirrors:
  {upstream_host}: {local}
ca_certs: [{ca}]
credentials:
  env:
    \"{host}\": {{username: IMG_DISC_USER, password: IMG_DISC_PASS}}
helm: {helm}
",
            upstream = repo.upstream_url(),
            upstream_host = repo.upstream_host(),
            local = repo.url().trim_end_matches("/mosip-helm"),
            host = s.dist.host_port(),
            ca = s.dist.ca_pem().unwrap().display(),
            helm = tool("helm").display(),
        ),
    );
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    let lock = Lock::read(&out).unwrap();
    let refs: Vec<(&str, Kind)> = lock.artifacts.iter().map(|a| (a.reference.as_str(), a.kind)).collect();
    assert_eq!(
        refs,
        [(s.reference.as_str(), Kind::Image), ("mosip.github.io/mosip-helm/config-server:12.0.1-B2", Kind::Chart)]
    );
    assert_eq!(lock.artifacts[0].digest.as_ref(), s.index);
    assert_eq!(lock.artifacts[0].platforms, ["linux/amd64"]);
}

/// A spec whose only images come from a published list, served here by a plain file server
/// (made by the test, standing for a release's `rancher-images.txt`).
fn list_spec(s: &Seeded, dir: &Path, list: &str, sha256: &str, env_prefix: &str) -> (PathBuf, FileServer) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("images.txt"), list).unwrap();
    let server = FileServer::start(&www).unwrap();
    std::env::set_var(format!("{env_prefix}_USER"), s.dist.user().unwrap());
    std::env::set_var(format!("{env_prefix}_PASS"), s.dist.password().unwrap());
    let spec = write_spec(
        dir,
        &format!(
            "image_lists:\n  - url: {url}\n    sha256: \"{sha256}\"\n    exclude: [\"{host}/test/windows-\"]\nca_certs: [{ca}]\ncredentials:\n  env:\n    \"{host}\": {{username: {env_prefix}_USER, password: {env_prefix}_PASS}}\n",
            url = server.url_of("images.txt"),
            ca = s.dist.ca_pem().unwrap().display(),
            host = s.dist.host_port(),
        ),
    );
    (spec, server)
}

#[test]
fn a_published_image_list_is_locked_by_digest_and_carried() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let host = s.dist.host_port();
    // The excluded line names an image the upstream does not have: carrying it would fail.
    let list = format!("# release images\n{}\n\n{host}/test/windows-agent:1.0\n", s.reference);
    let (spec, _server) = list_spec(&s, t.path(), &list, &bundles::digest::sha256_hex(list.as_bytes()), "IMG_LIST");
    let lock_path = t.path().join("bundle.lock.json");
    bundler::lock(&lock_options(&spec, &lock_path, &t.path().join("cache"))).unwrap();
    let lock = Lock::read(&lock_path).unwrap();
    let images: Vec<(&str, &str)> = lock.artifacts.iter().map(|a| (a.reference.as_str(), a.digest.as_ref())).collect();
    assert_eq!(images, [(s.reference.as_str(), s.index.as_str())]);

    let out = t.path().join("bundle");
    let mut args = create_options(&spec, &out, &t.path().join("cache"));
    args.lock = Some(lock_path);
    bundler::create(&args).unwrap();
    let report = verify(&out, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());
    let carried = Lock::read(&out).unwrap();
    assert_eq!(carried.artifacts, lock.artifacts);
    assert_eq!(carried.blobs, lock.blobs);
}

#[test]
fn a_list_with_another_checksum_or_a_missing_image_names_the_list_and_line() {
    let s = seed();
    let t = tempfile::tempdir().unwrap();
    let list = format!("{}\n{}/test/app:9.9\n", s.reference, s.dist.host_port());
    let (spec, server) = list_spec(&s, t.path(), &list, &"0".repeat(64), "IMG_LIST_BAD");
    let err =
        format!("{:#}", bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err());
    let url = server.url_of("images.txt");
    assert!(err.contains(&format!("image_lists[0] {url}")) && err.contains("SHA-256"), "{err}");

    let (spec, _server) =
        list_spec(&s, &t.path().join("2"), &list, &bundles::digest::sha256_hex(list.as_bytes()), "IMG_LIST_404");
    let err = format!(
        "{:#}",
        bundler::create(&create_options(&spec, &t.path().join("b2"), &t.path().join("c"))).unwrap_err()
    );
    assert!(
        err.contains(&format!("{}/test/app:9.9 (image_lists[0]", s.dist.host_port())) && err.contains("line 2)"),
        "{err}"
    );
    assert!(!t.path().join("b").join("SHA256SUMS").exists() && !t.path().join("b2").join("SHA256SUMS").exists());
}
