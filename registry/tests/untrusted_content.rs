//! Content the registry did not make: a pushed manifest that lies about its layer's size, and a
//! bundle whose parts were altered after it was made. What is sent is the stored blob, checked
//! against its digest, or an error; never more bytes, and never a complete wrong body.

mod common;

use std::io::{Read, Write};

use bundles::digest::blob_path;
use common::*;
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes a one-layer artifact whose layer descriptor says `declared` bytes, tagged `tag`.
fn push_artifact(server: &TestServer, repo: &str, tag: &str, config: (&str, &[u8]), layer: (&str, &str, u64)) {
    let (config_type, config_bytes) = config;
    let (layer_type, layer_digest, declared) = layer;
    let config_digest = push_blob(server, repo, config_bytes);
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config_bytes.len()},
        "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": declared,
            "annotations": {"org.opencontainers.image.title": "hello.txt"}}],
    });
    let resp = http()
        .put(server.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("Content-Type", MANIFEST)
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
}

/// The raw answer to a GET, read until the server closes: status line and headers, and how
/// many body bytes came.
fn raw_get(server: &TestServer, path: &str) -> (String, usize) {
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |p| p + 4);
    (String::from_utf8_lossy(&out[..end]).into_owned(), out.len() - end)
}

fn assert_size_refused(server: &TestServer, path: &str) {
    let (head, body) = raw_get(server, path);
    assert!(head.starts_with("HTTP/1.1 500"), "{path}: {head}");
    assert!(!head.contains("content-length: 1000000000"), "{path}: {head}");
    assert!(body < 1000, "{path}: {body} body bytes");
    let resp = http().get(server.url(path)).send().unwrap();
    let v: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    let message = v["errors"][0]["message"].as_str().unwrap().to_string();
    assert!(message.contains("1000000000 bytes") && message.contains("the stored blob has"), "{message}");
}

#[test]
fn a_pushed_layer_size_is_never_trusted_by_the_file_chart_and_git_views() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let content = b"hello world";
    let file = push_blob(&server, "files.example.com/tools/hello", content);
    push_artifact(
        &server,
        "files.example.com/tools/hello",
        "1.0",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        ("application/octet-stream", &file, 1_000_000_000),
    );
    assert_size_refused(&server, "/files/files.example.com/tools/hello/1.0/hello.txt");

    let chart_config = br#"{"apiVersion":"v2","name":"mychart","version":"0.1.0"}"#;
    let chart = push_blob(&server, "charts.example.com/stable/mychart", b"not really a tgz");
    push_artifact(
        &server,
        "charts.example.com/stable/mychart",
        "0.1.0",
        (bundles::artifact::HELM_CONFIG_MEDIA_TYPE, chart_config),
        ("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &chart, 1_000_000_000),
    );
    assert_size_refused(&server, "/charts/charts.example.com/stable/mychart-0.1.0.tgz");

    let git = push_blob(&server, "github.com/example/config", &git_repo_tar(dir.path()));
    push_artifact(
        &server,
        "github.com/example/config",
        "v1",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        (bundles::artifact::GIT_LAYER_MEDIA_TYPE, &git, 1_000_000_000),
    );
    assert_size_refused(&server, "/git/github.com/example/config.git/info/refs");

    // The honest artifact beside them is served whole.
    push_artifact(
        &server,
        "files.example.com/tools/hello",
        "1.1",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        ("application/octet-stream", &file, content.len() as u64),
    );
    let resp = http().get(server.url("/files/files.example.com/tools/hello/1.1/hello.txt")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().unwrap()[..], content);
}

#[test]
fn a_pushed_manifest_over_a_bundle_blob_gets_no_following_archive_bytes() {
    let fx = fixture_bundle();
    let server = TestServer::start(registry::ServeConfig {
        bundles: vec![fx.bundle.clone()],
        storage: Some(registry::StorageConfig::Dir(fx.dir.path().join("store"))),
        ..Default::default()
    });
    let carried = b"hello, site\n";
    let digest = sha256(carried);
    push_artifact(
        &server,
        "files.example.com/tools/hello",
        "lying",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        ("application/octet-stream", &digest, 1_000_000_000),
    );
    assert_size_refused(&server, "/files/files.example.com/tools/hello/lying/hello.txt");
    let resp = http().get(server.url("/files/files.example.com/tools/hello/1.0/hello.txt")).send().unwrap();
    assert_eq!((resp.status().as_u16(), &resp.bytes().unwrap()[..]), (200, &carried[..]), "the carried file");
}

#[test]
fn a_read_past_the_end_of_a_bundle_archive_is_an_error_not_a_panic() {
    let fx = fixture_bundle();
    let bundle = bundles::Bundle::open(&fx.bundle).unwrap();
    let (offset, _) = bundle.member("index.json").unwrap();
    let mut out = Vec::new();
    let err = bundle.open_range(offset, bundle.uncompressed_len()).read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("past the end of the archive"), "{err}");
    assert!(err.to_string().contains(&fx.bundle.display().to_string()), "{err}");
}

/// Rewrites the bundle's archive with `alter` applied to the uncompressed tar, recompressed into
/// valid frames and one part, as someone altering the media would: every frame still decompresses
/// and passes zstd's checksum, only the content is no longer what the digests say.
fn alter_archive(bundle_dir: &std::path::Path, alter: impl FnOnce(&bundles::Bundle, &mut Vec<u8>)) {
    let bundle = bundles::Bundle::open(bundle_dir).unwrap();
    let mut tar = Vec::new();
    bundle.open_range(0, bundle.uncompressed_len()).read_to_end(&mut tar).unwrap();
    alter(&bundle, &mut tar);
    let mut meta: Value = serde_json::from_slice(&std::fs::read(bundle_dir.join("bundle.json")).unwrap()).unwrap();
    for part in meta["archive"]["parts"].as_array().unwrap() {
        std::fs::remove_file(bundle_dir.join(part["name"].as_str().unwrap())).unwrap();
    }
    let name = "bundle.tar.zst.000";
    let file = std::fs::File::create(bundle_dir.join(name)).unwrap();
    let mut frames = bundles::seekable::FrameWriter::new(file, 3, bundles::seekable::DEFAULT_FRAME_SIZE, 1);
    frames.write_all(&tar).unwrap();
    let (file, _) = frames.finish().unwrap();
    let size = file.metadata().unwrap().len();
    meta["archive"]["parts"] = json!([{"name": name, "size": size}]);
    std::fs::write(bundle_dir.join("bundle.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
}

/// A bundle made by the test: a small file and one spanning several zstd frames.
fn two_file_bundle(dir: &std::path::Path, big: &[u8]) -> std::path::PathBuf {
    let layout = dir.join("layout");
    let mut w = bundles::layout_writer::LayoutWriter::open(&layout).unwrap();
    for (reference, title, content) in [
        ("files.example.com/tools/hello:1.0", "hello.txt", &b"hello, site\n"[..]),
        ("files.example.com/big:1.0", "big.bin", big),
    ] {
        w.add_single_layer(reference, bundles::artifact::Kind::File, title, content, None, None).unwrap();
    }
    w.finish().unwrap();
    let bundle = dir.join("bundle");
    bundles::pack::pack(&layout, &bundle, &bundles::pack::PackOptions::default()).unwrap();
    bundle
}

#[test]
fn an_altered_bundle_blob_is_never_sent_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = testkit::images::noise(5 << 20, 7);
    let bundle = two_file_bundle(dir.path(), &big);
    let (small, large) = (sha256(b"hello, site\n"), sha256(&big));
    alter_archive(&bundle, |b, tar| {
        for (d, flip) in [(&small, 0usize), (&large, 3 << 20)] {
            let (offset, _) = b.member(&blob_path(&d.parse().unwrap())).unwrap();
            tar[offset as usize + flip] ^= 0x20;
        }
    });
    let server = bundle_server(&[&bundle]);
    for path in [
        format!("/v2/files.example.com/tools/hello/blobs/{small}"),
        "/files/files.example.com/tools/hello/1.0/hello.txt".to_string(),
        format!("/v2/files.example.com/big/blobs/{large}"),
        "/files/files.example.com/big/1.0/big.bin".to_string(),
    ] {
        let (head, body) = raw_get(&server, &path);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        let declared: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
            .unwrap();
        assert!(body < declared, "{path}: all {declared} bytes of an altered blob were sent");
        assert!(
            http().get(server.url(&path)).send().unwrap().bytes().is_err(),
            "{path}: a client sees the download fail"
        );
    }
    // Asked for part of a blob, the server cannot check the digest; the bytes are what the parts hold.
    let resp = http()
        .get(server.url(&format!("/v2/files.example.com/big/blobs/{large}")))
        .header("Range", "bytes=1-4")
        .send()
        .unwrap();
    assert_eq!((resp.status().as_u16(), &resp.bytes().unwrap()[..]), (206, &big[1..5]));
}

#[test]
fn an_altered_bundle_manifest_stops_the_registry_from_starting() {
    let fx = fixture_bundle();
    let digest = fx.multiarch.digest().clone();
    alter_archive(&fx.bundle, |bundle, tar| {
        let (offset, _) = bundle.member(&blob_path(&digest)).unwrap();
        // `{"schemaVersion":2` → `{"schemaVersion":3`: still JSON, no longer the manifest.
        let at = tar[offset as usize..].iter().position(|&b| b == b'2').unwrap() + offset as usize;
        tar[at] = b'3';
    });
    let err = match tokio::runtime::Runtime::new().unwrap().block_on(registry::Server::bind(registry::ServeConfig {
        bundles: vec![fx.bundle.clone()],
        ..Default::default()
    })) {
        Ok(_) => panic!("the registry started on an altered bundle"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&digest.to_string()) && err.contains("does not match its digest"), "{err}");
    assert!(err.contains("docker.io/mosipid/config-server:1.1.2"), "{err}");
}
