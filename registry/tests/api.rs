//! API behaviour the conformance suite does not cover: catalog pagination, delete switched off.

mod common;

use common::*;
use serde_json::{json, Value};

fn push_image(server: &TestServer, repo: &str, tag: &str) -> String {
    let config = push_blob(server, repo, b"{}");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
    }))
    .unwrap();
    let resp = http()
        .put(server.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    sha256(&manifest)
}

#[test]
fn the_catalog_pages_with_n_and_last() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    for repo in ["c/one", "a", "b/two/three"] {
        push_image(&server, repo, "v1");
    }
    let resp = http().get(server.url("/v2/_catalog?n=2")).send().unwrap();
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/_catalog?n=2&last=b%2Ftwo%2Fthree>; rel=\"next\"");
    let page: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(page["repositories"], json!(["a", "b/two/three"]));
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let resp = http().get(server.url(next)).send().unwrap();
    assert!(resp.headers().get("link").is_none(), "the last page links nowhere");
    let page: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(page["repositories"], json!(["c/one"]));
}

#[test]
fn deletes_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().into())),
        delete_enabled: false,
        ..Default::default()
    });
    let digest = push_image(&server, "a", "v1");
    let resp = http().delete(server.url(&format!("/v2/a/manifests/{digest}"))).send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(error_code(resp), "UNSUPPORTED");
    assert_eq!(http().get(server.url("/v2/a/manifests/v1")).send().unwrap().status(), 200);
}
