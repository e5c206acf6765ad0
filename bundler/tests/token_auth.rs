//! Docker Hub's bearer token flow, against a minimal local registry written here (testkit's
//! distribution runs htpasswd basic auth only): 401 with a `Bearer realm=…,service=…,scope=…`
//! challenge, a token service that wants the docker `config.json` login, then the registry API.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bundles::lock::Lock;
use common::*;
use serde_json::json;
use sha2::Digest as _;

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

struct Hub {
    port: u16,
    token_queries: Arc<Mutex<Vec<String>>>,
    manifest_digest: String,
}

/// Serves `library/busybox:1.36` (one manifest, one config, one layer) behind a token.
fn start_hub() -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let layer = vec![42u8; 50_000];
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    )
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = digest(&manifest);
    let mut routes: HashMap<String, (&'static str, Vec<u8>)> = HashMap::new();
    let mt = "application/vnd.docker.distribution.manifest.v2+json";
    routes.insert("/v2/library/busybox/manifests/1.36".into(), (mt, manifest.clone()));
    routes.insert(format!("/v2/library/busybox/manifests/{manifest_digest}"), (mt, manifest));
    routes.insert(format!("/v2/library/busybox/blobs/{}", digest(&config)), ("application/octet-stream", config));
    routes.insert(format!("/v2/library/busybox/blobs/{}", digest(&layer)), ("application/octet-stream", layer));
    let token_queries = Arc::new(Mutex::new(Vec::new()));
    let queries = token_queries.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut auth = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = Some(v.trim().to_string());
                    }
                }
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let expected_basic =
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("hubuser:hubpass"));
            let (status, headers, body): (&str, Vec<String>, Vec<u8>) = if path == "/token" {
                queries.lock().unwrap().push(query.to_string());
                if auth.as_deref() == Some(expected_basic.as_str()) {
                    ("200 OK", vec!["Content-Type: application/json".into()], br#"{"token":"t0ken"}"#.to_vec())
                } else {
                    ("401 Unauthorized", vec![], vec![])
                }
            } else if auth.as_deref() != Some("Bearer t0ken") {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\""
                );
                ("401 Unauthorized", vec![challenge], vec![])
            } else if let Some((ct, bytes)) = routes.get(path) {
                (
                    "200 OK",
                    vec![format!("Content-Type: {ct}"), format!("Docker-Content-Digest: {}", digest(bytes))],
                    bytes.clone(),
                )
            } else {
                ("404 Not Found", vec![], vec![])
            };
            let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
            for h in headers {
                head += &format!("{h}\r\n");
            }
            head += "\r\n";
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
            let _ = stream.flush();
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    Hub { port, token_queries, manifest_digest }
}

#[test]
fn docker_hub_token_flow_with_a_docker_config_login() {
    let hub = start_hub();
    let t = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("hubuser:hubpass");
    std::fs::write(
        t.path().join("config.json"),
        json!({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let spec = write_spec(
        t.path(),
        &format!("images:\n  - busybox:1.36\nmirrors:\n  docker.io: http://127.0.0.1:{}\ncredentials:\n  docker_config: config.json\n", hub.port),
    );
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    let lock = Lock::read(&out).unwrap();
    assert_eq!(lock.artifacts[0].reference, "docker.io/library/busybox:1.36");
    assert_eq!(lock.artifacts[0].digest.as_ref(), hub.manifest_digest);
    assert_eq!(lock.artifacts[0].platforms, ["linux/amd64"]);
    let queries = hub.token_queries.lock().unwrap().clone();
    assert!(!queries.is_empty());
    assert!(
        queries
            .iter()
            .all(|q| q.contains("scope=repository%3Alibrary%2Fbusybox%3Apull")
                && q.contains("service=registry.docker.io")),
        "{queries:?}"
    );
    assert_eq!(queries.len(), 1, "one token serves the whole run: {queries:?}");
}

#[test]
fn a_token_service_refusing_the_login_is_an_authentication_failure() {
    let hub = start_hub();
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(
        t.path(),
        &format!("images:\n  - busybox:1.36\nmirrors:\n  docker.io: http://127.0.0.1:{}\n", hub.port),
    );
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("images[0] busybox:1.36") && text.contains("token service") && text.contains("401"),
        "{text}"
    );
}
