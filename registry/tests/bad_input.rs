//! Refusals: each bad request gets the status and error code the spec names, and nothing is stored.

mod common;

use common::*;
use serde_json::json;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest_for(config: &str, size: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": size},
        "layers": [],
    }))
    .unwrap()
}

fn assert_no_manifest(server: &TestServer, repo: &str, reference: &str) {
    let resp = http().get(server.url(&format!("/v2/{repo}/manifests/{reference}"))).send().unwrap();
    assert_eq!(resp.status(), 404, "{reference} must not have been stored");
}

#[test]
fn malformed_manifest_json_is_manifest_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let resp = http()
        .put(server.url("/v2/a/b/manifests/v1"))
        .header("Content-Type", MANIFEST)
        .body("{\"schemaVersion\": 2,")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "MANIFEST_INVALID");
    assert_no_manifest(&server, "a/b", "v1");
}

#[test]
fn manifest_digest_must_match_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let config = push_blob(&server, "a", b"{}");
    let body = manifest_for(&config, 2);
    let wrong = sha256(b"something else");
    let resp = http()
        .put(server.url(&format!("/v2/a/manifests/{wrong}")))
        .header("Content-Type", MANIFEST)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "DIGEST_INVALID");
    assert_no_manifest(&server, "a", &wrong);
    assert_no_manifest(&server, "a", &sha256(&body));
}

#[test]
fn manifest_naming_a_missing_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let resp = http()
        .put(server.url("/v2/a/manifests/v1"))
        .header("Content-Type", MANIFEST)
        .body(manifest_for(&sha256(b"absent"), 6))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "MANIFEST_BLOB_UNKNOWN");
    assert_no_manifest(&server, "a", "v1");
}

#[test]
fn oversized_manifest_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().into())),
        max_manifest_bytes: 1024,
        ..Default::default()
    });
    let config = push_blob(&server, "a", b"{}");
    let mut m: serde_json::Value = serde_json::from_slice(&manifest_for(&config, 2)).unwrap();
    m["annotations"] = json!({"padding": "x".repeat(2048)});
    let resp = http()
        .put(server.url("/v2/a/manifests/big"))
        .header("Content-Type", MANIFEST)
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp), "SIZE_INVALID");
    assert_no_manifest(&server, "a", "big");
}

#[test]
fn chunk_at_the_wrong_offset_is_416() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let c = http();
    let resp = c.post(server.url("/v2/a/blobs/uploads/")).send().unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = c.patch(server.url(&location)).header("Content-Range", "0-2").body("abc").send().unwrap();
    assert_eq!(resp.status(), 202);
    let resp = c.patch(server.url(&location)).header("Content-Range", "5-7").body("def").send().unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["range"], "0-2", "the client learns where to resume");
    assert_eq!(error_code(resp), "RANGE_INVALID");
    let d = sha256(b"abcdef");
    let resp =
        c.put(server.url(&format!("{location}?digest={d}"))).header("Content-Range", "3-5").body("def").send().unwrap();
    assert_eq!(resp.status(), 201, "the upload resumes from the right offset");
    assert_eq!(c.get(server.url(&format!("/v2/a/blobs/{d}"))).send().unwrap().text().unwrap(), "abcdef");
}

#[test]
fn upload_whose_content_does_not_match_its_digest_is_digest_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let claimed = sha256(b"what the client claims");
    let resp = http()
        .post(server.url(&format!("/v2/a/blobs/uploads/?digest={claimed}")))
        .body("something else")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "DIGEST_INVALID");
    assert_eq!(http().head(server.url(&format!("/v2/a/blobs/{claimed}"))).send().unwrap().status(), 404);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().collect();
    assert!(leftovers.is_empty(), "nothing stored: {leftovers:?}");
}

#[test]
fn dot_dot_in_names_is_name_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    // Sent raw: an HTTP client would normalise the path before it left.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "POST /v2/a/../../etc/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("NAME_INVALID"), "{out}");
    let resp = http().get(server.url("/v2/a/..%2Fb/tags/list")).send().unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!dir.path().join("etc").exists() && !dir.path().join("repositories/etc").exists());
}

#[test]
fn push_without_credentials_is_401_with_a_basic_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    write_htpasswd(&htpasswd, &[("ops", "s3cret"), ("viewer", "v")]);
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().join("store"))),
        htpasswd: Some(htpasswd),
        push_users: Some(vec!["ops".into()]),
        anonymous_pull: true,
        ..Default::default()
    });
    let c = http();
    let resp = c.post(server.url(&format!("/v2/a/blobs/uploads/?digest={}", sha256(b"x")))).body("x").send().unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"airgap registry\"");
    assert_eq!(error_code(resp), "UNAUTHORIZED");
    let resp = c.post(server.url("/v2/a/blobs/uploads/")).basic_auth("viewer", Some("v")).send().unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp), "DENIED");
    assert_eq!(c.head(server.url(&format!("/v2/a/blobs/{}", sha256(b"x")))).send().unwrap().status(), 404);
    let resp = c.post(server.url("/v2/a/blobs/uploads/")).basic_auth("ops", Some("s3cret")).send().unwrap();
    assert_eq!(resp.status(), 202);
}

#[test]
fn push_to_a_read_only_registry_is_405_unsupported() {
    let fx = fixture_bundle();
    let store = fx.dir.path().join("store");
    let server = TestServer::start(registry::ServeConfig {
        bundles: vec![fx.bundle.clone()],
        storage: Some(registry::StorageConfig::Dir(store.clone())),
        read_only: true,
        ..Default::default()
    });
    let resp =
        http().post(server.url(&format!("/v2/a/blobs/uploads/?digest={}", sha256(b"x")))).body("x").send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(error_code(resp), "UNSUPPORTED");
    let resp = http().delete(server.url("/v2/docker.io/mosipid/config-server/manifests/1.1.2")).send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(std::fs::read_dir(store.join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(
        http().get(server.url("/v2/docker.io/mosipid/config-server/manifests/1.1.2")).send().unwrap().status(),
        200
    );
}

#[test]
fn an_upload_cut_off_midway_leaves_no_blob_and_can_be_redone() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let content = vec![7u8; 100_000];
    let d = sha256(&content);
    let resp = http().post(server.url("/v2/a/blobs/uploads/")).send().unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        write!(s, "PUT {location}?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", content.len())
            .unwrap();
        s.write_all(&content[..40_000]).unwrap();
        // The client dies here.
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(http().head(server.url(&format!("/v2/a/blobs/{d}"))).send().unwrap().status(), 404);
    assert_eq!(std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0, "no partial blob");
    push_blob(&server, "a", &content);
    assert_eq!(
        http().get(server.url(&format!("/v2/a/blobs/{d}"))).send().unwrap().bytes().unwrap().len(),
        content.len()
    );
}

#[test]
fn two_clients_pushing_the_same_blob_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = ["a", "b", "a"]
            .iter()
            .map(|repo| {
                let (server, content) = (&server, &content);
                s.spawn(move || {
                    let c = http();
                    let loc = c.post(server.url(&format!("/v2/{repo}/blobs/uploads/"))).send().unwrap().headers()
                        ["location"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let (first, rest) = content.split_at(content.len() / 2);
                    c.patch(server.url(&loc)).body(first.to_vec()).send().unwrap();
                    c.put(server.url(&format!("{loc}?digest={}", sha256(content))))
                        .body(rest.to_vec())
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [201, 201, 201]);
    for repo in ["a", "b"] {
        let got =
            http().get(server.url(&format!("/v2/{repo}/blobs/{}", sha256(&content)))).send().unwrap().bytes().unwrap();
        assert!(got[..] == content[..], "{repo} serves the whole blob");
    }
}

/// Pushes a small manifest under each tag, through the API, to the registry at `base`.
fn push_tags(base: &str, repo: &str, tags: &[&str]) {
    let c = http();
    let config = b"{}";
    let d = sha256(config);
    // POST, then PUT: distribution 2.8 takes no blob in the POST itself.
    let resp = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') { format!("{base}{location}") } else { location };
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = c.put(format!("{location}{sep}digest={d}")).body(config.to_vec()).send().unwrap();
    assert_eq!(resp.status(), 201);
    for tag in tags {
        let resp = c
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", MANIFEST)
            .body(manifest_for(&d, config.len()))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
}

/// A catalog asked for `n` entries pages as distribution pages it; an `n` that is not a number
/// of entries is refused with PAGINATION_NUMBER_INVALID, as the distribution API names it and
/// distribution 3 answers (Debian's 2.8 ignores such an `n`, and does not page tags at all).
#[test]
fn pagination_numbers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ours = storage_server(dir.path());
    let peer = testkit::Distribution::start(testkit::DistributionOpts { tls: false, auth: false }).unwrap();
    for base in [ours.url(""), peer.url()] {
        push_tags(&base, "pages/one", &["a", "b", "c"]);
        push_tags(&base, "pages/two", &["x"]);
    }
    let answer = |base: &str, path: &str| {
        let resp = bare_http().get(format!("{base}{path}")).send().unwrap();
        let (status, link) = (resp.status().as_u16(), resp.headers().get("link").is_some());
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or_default();
        let listed = body.get("tags").or_else(|| body.get("repositories")).cloned();
        (status, body["errors"][0]["code"].as_str().map(str::to_string), listed, link)
    };
    let mut differ = Vec::new();
    for n in ["1", "2", "100"] {
        let path = format!("/v2/_catalog?n={n}");
        let (a, b) = (answer(&ours.url(""), &path), answer(&peer.url(), &path));
        if a != b {
            differ.push(format!("{path}: ours {a:?}, distribution {b:?}"));
        }
    }
    assert!(differ.is_empty(), "answers differ:\n{}", differ.join("\n"));
    for n in ["-1", "abc", "1.5", "99999999999999999999999"] {
        for path in [format!("/v2/pages/one/tags/list?n={n}"), format!("/v2/_catalog?n={n}")] {
            let (status, code, _, _) = answer(&ours.url(""), &path);
            assert_eq!((status, code.as_deref()), (400, Some("PAGINATION_NUMBER_INVALID")), "{path}");
        }
    }
}

#[test]
fn an_unsatisfiable_range_names_the_blob_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let d = push_blob(&server, "a", b"0123456789");
    let resp = http().get(server.url(&format!("/v2/a/blobs/{d}"))).header("Range", "bytes=10-").send().unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */10");
    assert_eq!(error_code(resp), "RANGE_INVALID");
    let resp = http().get(server.url(&format!("/v2/a/blobs/{d}"))).header("Range", "bytes=2-4").send().unwrap();
    assert_eq!((resp.status().as_u16(), resp.text().unwrap()), (206, "234".to_string()));
}
