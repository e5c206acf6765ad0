//! The S3 backend against a real MinIO (testkit): replicas sharing one bucket, uploads that
//! survive a killed server, and start-up errors that say what is wrong.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use registry::storage::{LayoutStore, Storage, WritableStorage};
use registry::{ServeConfig, Server, StorageConfig};
use reqwest::blocking::Client;
use serde_json::Value;
use testkit::MinioServer;

fn s3_server(s3: &MinioServer, bucket: &str) -> TestServer {
    TestServer::start(ServeConfig {
        storage: Some(StorageConfig::S3(Box::new(s3_location(s3, bucket, "reg")))),
        ..Default::default()
    })
}

/// POST, then PATCH chunks (each through the server given with it), then PUT: the upload's
/// state must be in the bucket for this to work across replicas.
fn chunked_upload(c: &Client, repo: &str, start: &TestServer, chunks: &[(&TestServer, &[u8])], finish: &TestServer) {
    let resp = c.post(start.url(&format!("/v2/{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(resp.status(), 202);
    let mut location = resp.headers()["location"].to_str().unwrap().to_string();
    let mut offset = 0;
    for (server, chunk) in chunks {
        let resp = c
            .patch(server.url(&location))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", offset + chunk.len() - 1))
            .body(chunk.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
        offset += chunk.len();
        assert_eq!(resp.headers()["range"].to_str().unwrap(), format!("0-{}", offset - 1));
        location = resp.headers()["location"].to_str().unwrap().to_string();
    }
    let all: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    let resp = c.put(finish.url(&format!("{location}?digest={}", sha256(&all)))).send().unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
}

#[test]
fn two_replicas_serve_one_bucket() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("shared").unwrap();
    let (a, b) = (s3_server(&s3, "shared"), s3_server(&s3, "shared"));
    let c = http();

    // A real client pushes through one replica and pulls through the other.
    let fx = fixture_bundle();
    let src = format!("oci:{}:docker.io/mosipid/config-server:1.1.2", fx.dir.path().join("layout").display());
    let via = |s: &TestServer| format!("docker://{}/site/config-server:1.1.2", s.host());
    run(Command::new(tool("skopeo"))
        .args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &src])
        .arg(via(&a)))
    .unwrap();
    let raw = run(Command::new(tool("skopeo")).args(["inspect", "--raw", "--tls-verify=false"]).arg(via(&b))).unwrap();
    assert_eq!(sha256(raw.as_bytes()), fx.multiarch.digest().to_string(), "the index arrived byte for byte");
    let out = fx.dir.path().join("out");
    run(Command::new(tool("skopeo"))
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(via(&b))
        .arg(format!("oci:{}:copy", out.display())))
    .unwrap();

    // A 20 MiB blob, chunked across both replicas: several pieces, a multipart put, ranged reads.
    let blob = testkit::images::noise(20 << 20, 7);
    let (first, rest) = blob.split_at(9 << 20);
    chunked_upload(&c, "site/big", &a, &[(&b, first), (&a, rest)], &b);
    let digest = sha256(&blob);
    let got = c.get(a.url(&format!("/v2/site/big/blobs/{digest}"))).send().unwrap().bytes().unwrap();
    assert!(got.len() == blob.len() && got[..] == blob[..], "the blob reads back whole");
    let part =
        c.get(b.url(&format!("/v2/site/big/blobs/{digest}"))).header("Range", "bytes=8388600-8388700").send().unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().unwrap()[..], blob[8388600..=8388700]);

    // The same blob pushed at once through both replicas: both succeed.
    let small = testkit::images::noise(3 << 20, 8);
    std::thread::scope(|scope| {
        for server in [&a, &b] {
            let (c, small) = (&c, &small);
            scope.spawn(move || chunked_upload(c, "site/same", server, &[(server, small)], server));
        }
    });
    let head = c.head(b.url(&format!("/v2/site/same/blobs/{}", sha256(&small)))).send().unwrap();
    assert_eq!(head.headers()["content-length"], small.len().to_string().as_str());

    // A wrong digest leaves nothing behind.
    let resp = c.post(a.url("/v2/site/bad/blobs/uploads/")).send().unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let claimed = sha256(b"something else");
    let resp = c.put(b.url(&format!("{location}?digest={claimed}"))).body(small.clone()).send().unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(c.head(a.url(&format!("/v2/site/bad/blobs/{claimed}"))).send().unwrap().status(), 404);
    let listed = run(s3.mc().args(["ls", "--recursive", "testkit/shared/reg/blobs/"])).unwrap();
    assert!(!listed.contains(claimed.trim_start_matches("sha256:")), "{listed}");

    let catalog: Value =
        serde_json::from_slice(&c.get(b.url("/v2/_catalog")).send().unwrap().bytes().unwrap()).unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["site/config-server"]), "only manifests make repositories");
}

/// Not a test by itself: the registry process that `a_killed_server_leaves_no_blob` starts and
/// kills. Its storage and credentials come from the environment, as `airgap registry serve`'s do.
#[test]
#[ignore = "started by a_killed_server_leaves_no_blob"]
fn server_process_for_the_kill_test() {
    let Ok(storage) = std::env::var("AIRGAP_TEST_S3_STORAGE") else { return };
    let cfg = ServeConfig {
        storage: Some(StorageConfig::S3(Box::new(registry::storage::S3Location::parse(&storage).unwrap()))),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: registry::AccessLog::Off,
        ..Default::default()
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let server = Server::bind(cfg).await.unwrap();
        println!("listening on {}", server.local_addr());
        std::io::stdout().flush().unwrap();
        server.run(std::future::pending()).await.unwrap();
    });
}

#[test]
fn a_killed_server_leaves_no_blob_and_the_upload_resumes_elsewhere() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("kill").unwrap();
    let location = s3_location(&s3, "kill", "reg");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "server_process_for_the_kill_test", "--ignored", "--nocapture"])
        .env("AIRGAP_TEST_S3_STORAGE", format!("s3://kill/reg?endpoint={}", s3.endpoint()))
        .env("AWS_ACCESS_KEY_ID", s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_key())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .expect("the server process did not start");

    let blob = testkit::images::noise(12 << 20, 9);
    let digest = sha256(&blob);
    let c = http();
    let resp = c.post(format!("http://{addr}/v2/k/blobs/uploads/")).send().unwrap();
    let upload = resp.headers()["location"].to_str().unwrap().to_string();
    let id = upload.rsplit('/').next().unwrap().to_string();
    // Send the headers and 10 MiB of a 12 MiB monolithic PUT, then stall as a slow client would.
    let mut conn = TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "PUT {upload}?digest={digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        blob.len()
    )
    .unwrap();
    conn.write_all(&blob[..10 << 20]).unwrap();
    let store = LayoutStore::s3(&location).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.upload_len("k", &id).unwrap() != Some(8 << 20) {
        assert!(Instant::now() < deadline, "the first piece never reached the bucket");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(conn);

    let listed = run(s3.mc().args(["ls", "--recursive", "testkit/kill/reg/"])).unwrap();
    assert!(!listed.contains("blobs/"), "no blob after the kill: {listed}");
    let d = LayoutStore::s3(&location).unwrap();
    assert_eq!(d.blob_len("k", &digest.parse().unwrap()).unwrap(), None);

    // Another replica picks the upload up where the bucket says it stopped.
    let other = s3_server(&s3, "kill");
    let status = c.get(other.url(&upload)).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"].to_str().unwrap(), format!("0-{}", (8 << 20) - 1));
    let resp = c
        .put(other.url(&format!("{upload}?digest={digest}")))
        .header("Content-Range", format!("{}-{}", 8 << 20, blob.len() - 1))
        .body(blob[8 << 20..].to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    let got = c.get(other.url(&format!("/v2/k/blobs/{digest}"))).send().unwrap().bytes().unwrap();
    assert!(got[..] == blob[..], "the resumed blob is whole");
    let listed = run(s3.mc().args(["ls", "--recursive", "testkit/kill/reg/"])).unwrap();
    assert!(!listed.contains("uploads/"), "the finished session is gone: {listed}");
}

fn start_error(cfg: ServeConfig) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    match rt.block_on(Server::bind(cfg)) {
        Ok(_) => panic!("the registry started"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_credentials_and_a_missing_bucket_are_clear_at_start_up() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("present").unwrap();
    let mut wrong = s3_location(&s3, "present", "reg");
    wrong.credentials = Some((s3.access_key().to_string(), "not-the-secret".to_string()));
    let err = start_error(ServeConfig { storage: Some(StorageConfig::S3(Box::new(wrong))), ..Default::default() });
    for part in ["refused the credentials", "bucket present", &s3.endpoint(), "AWS_SECRET_ACCESS_KEY"] {
        assert!(err.contains(part), "'{part}' is not in: {err}");
    }
    let missing = s3_location(&s3, "absent", "reg");
    let err = start_error(ServeConfig { storage: Some(StorageConfig::S3(Box::new(missing))), ..Default::default() });
    assert!(err.contains("bucket absent") && err.contains("does not exist"), "{err}");
    let mut nowhere = s3_location(&s3, "present", "");
    nowhere.endpoint = format!("http://127.0.0.1:{}", testkit::free_port()).parse().unwrap();
    let err = start_error(ServeConfig { storage: Some(StorageConfig::S3(Box::new(nowhere))), ..Default::default() });
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn a_bucket_gone_away_is_reported_without_a_presigned_url() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("gone").unwrap();
    let server = s3_server(&s3, "gone");
    let endpoint = s3.endpoint();
    drop(s3);
    for path in ["/v2/a/tags/list", "/v2/a/manifests/1.0", "/v2/_catalog"] {
        let resp = http().get(server.url(path)).send().unwrap();
        assert_eq!(resp.status(), 500, "{path}");
        let message = resp.text().unwrap();
        assert!(message.contains(&endpoint), "{path}: the failure names the endpoint: {message}");
        // A presigned URL's query holds the access key and a signature valid for minutes.
        assert!(!message.contains("X-Amz-") && !message.contains("?"), "{path}: {message}");
    }
}
