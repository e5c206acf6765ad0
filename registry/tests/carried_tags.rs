//! A tag the bundle carries serves what the bundle carries: a push (anonymous, by default) may
//! add tags and repositories beside it but not change it, unless the operator started the
//! registry with `--allow-overwrite`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const CARRIED: &str = "docker.io/mosipid/config-server:1.1.2";

fn server(fx: &Fixture, allow_overwrite: bool) -> TestServer {
    TestServer::start(registry::ServeConfig {
        bundles: vec![fx.bundle.clone()],
        storage: Some(registry::StorageConfig::Dir(fx.dir.path().join(format!("store-{allow_overwrite}")))),
        allow_overwrite,
        ..Default::default()
    })
}

fn served_digest(server: &TestServer, repo: &str, tag: &str) -> String {
    let resp = http().head(server.url(&format!("/v2/{repo}/manifests/{tag}"))).send().unwrap();
    assert_eq!(resp.status(), 200, "{repo}:{tag}");
    resp.headers()["docker-content-digest"].to_str().unwrap().to_string()
}

/// `skopeo copy` of the fixture layout's `source` image to `dest` on the server.
fn skopeo_copy(fx: &Fixture, server: &TestServer, source: &str, dest: &str) -> std::process::Output {
    let src = format!("oci:{}:{source}", fx.dir.path().join("layout").display());
    Command::new(tool("skopeo"))
        .args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &src])
        .arg(format!("docker://{}/{dest}", server.host()))
        .output()
        .unwrap()
}

#[test]
fn a_push_cannot_change_what_a_carried_tag_serves() {
    let fx = fixture_bundle();
    let server = server(&fx, false);
    let carried = fx.multiarch.digest().to_string();
    for dest in [CARRIED, "mosipid/config-server:1.1.2"] {
        let out = skopeo_copy(&fx, &server, "quay.io/example/tool:2.0", dest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "skopeo replaced {dest}");
        assert!(stderr.contains("denied") || stderr.contains("DENIED"), "{dest}: {stderr}");
    }
    assert_eq!(served_digest(&server, "docker.io/mosipid/config-server", "1.1.2"), carried);
    assert_eq!(served_digest(&server, "mosipid/config-server", "1.1.2"), carried);

    // The refusal, as the API words it: DENIED, naming the tag and the way to allow it.
    let tool_manifest = http().get(server.url("/v2/quay.io/example/tool/manifests/2.0")).send().unwrap();
    let media_type = tool_manifest.headers()["content-type"].to_str().unwrap().to_string();
    let body = tool_manifest.bytes().unwrap();
    for (path, what) in [
        ("/v2/docker.io/mosipid/config-server/manifests/1.1.2".to_string(), "a tag in the path"),
        (format!("/v2/docker.io/mosipid/config-server/manifests/{}?tag=1.1.2", sha256(&body)), "a tag parameter"),
    ] {
        let resp = http().put(server.url(&path)).header("Content-Type", &media_type).body(body.clone()).send().unwrap();
        assert_eq!(resp.status(), 403, "{what}");
        let v: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        assert_eq!(v["errors"][0]["code"], "DENIED", "{what}");
        let message = v["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("docker.io/mosipid/config-server:1.1.2") && message.contains("--allow-overwrite"));
    }
    assert_eq!(served_digest(&server, "docker.io/mosipid/config-server", "1.1.2"), carried);

    // The same content under the carried tag changes nothing, and new tags are welcome.
    let out = skopeo_copy(&fx, &server, CARRIED, CARRIED);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = skopeo_copy(&fx, &server, "quay.io/example/tool:2.0", "docker.io/mosipid/config-server:local");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(served_digest(&server, "docker.io/mosipid/config-server", "local"), carried);
    assert_eq!(served_digest(&server, "docker.io/mosipid/config-server", "1.1.2"), carried);
}

#[test]
fn the_operator_may_allow_overwriting_carried_tags() {
    let fx = fixture_bundle();
    let server = server(&fx, true);
    let out = skopeo_copy(&fx, &server, "quay.io/example/tool:2.0", CARRIED);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tool = served_digest(&server, "quay.io/example/tool", "2.0");
    assert_eq!(served_digest(&server, "docker.io/mosipid/config-server", "1.1.2"), tool);
}
