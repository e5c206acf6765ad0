//! Upload sessions never leak disk: a monolithic upload cut off, a refused digest, a chunk that
//! does not fill its Content-Range and a full disk keep nothing, and sessions nobody finishes
//! expire while the server runs.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Waits (at most a minute, a guard against hanging) until `dir` is empty; returns what is left.
fn wait_empty(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = entries(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_upload(server: &TestServer, repo: &str) -> String {
    let resp = http().post(server.url(&format!("/v2/{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(resp.status(), 202);
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// Sends a request head and part of its declared body, then drops the connection.
fn cut_off(server: &TestServer, method: &str, path: &str, body: &[u8], sent: usize) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(&body[..sent]).unwrap();
}

#[test]
fn an_interrupted_monolithic_upload_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let content = testkit::images::noise(3 << 20, 1);
    let d = sha256(&content);
    cut_off(&server, "POST", &format!("/v2/a/blobs/uploads/?digest={d}"), &content, 1 << 20);
    assert_eq!(wait_empty(&dir.path().join("uploads")), Vec::<String>::new(), "POST ?digest= cut off");
    let location = start_upload(&server, "a");
    cut_off(&server, "PUT", &format!("{location}?digest={d}"), &content, 1 << 20);
    assert_eq!(wait_empty(&dir.path().join("uploads")), Vec::<String>::new(), "POST, then PUT cut off");
    assert!(entries(&dir.path().join("blobs/sha256")).is_empty());
    push_blob(&server, "a", &content);
}

#[test]
fn an_unparsable_digest_ends_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let resp = http().post(server.url("/v2/a/blobs/uploads/?digest=sha256:nothex")).body("x").send().unwrap();
    assert_eq!((resp.status().as_u16(), error_code(resp)), (400, "DIGEST_INVALID".into()));
    assert!(entries(&dir.path().join("uploads")).is_empty(), "the POST left a session");
    let location = start_upload(&server, "a");
    let resp = http().put(server.url(&format!("{location}?digest=md5:abc"))).body("x").send().unwrap();
    assert_eq!((resp.status().as_u16(), error_code(resp)), (400, "DIGEST_INVALID".into()));
    assert!(entries(&dir.path().join("uploads")).is_empty(), "the PUT left its session");
    assert_eq!(http().get(server.url(&location)).send().unwrap().status(), 404);
}

#[test]
fn a_chunk_must_fill_its_content_range_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let c = http();
    let location = start_upload(&server, "a");
    let resp = c.patch(server.url(&location)).header("Content-Range", "0-2").body("abc").send().unwrap();
    assert_eq!(resp.status(), 202);
    // Declared longer than sent, with a Content-Length that says so.
    let resp = c.patch(server.url(&location)).header("Content-Range", "3-9").body("def").send().unwrap();
    assert_eq!((resp.status().as_u16(), error_code(resp)), (416, "RANGE_INVALID".into()));
    // Declared shorter than sent, streamed without a Content-Length: found only as it arrives.
    let streamed = reqwest::blocking::Body::new(std::io::Cursor::new(b"defghij".to_vec()));
    let resp = c.patch(server.url(&location)).header("Content-Range", "3-5").body(streamed).send().unwrap();
    assert_eq!((resp.status().as_u16(), error_code(resp)), (416, "RANGE_INVALID".into()));
    let status = c.get(server.url(&location)).send().unwrap();
    assert_eq!(status.headers()["range"], "0-2", "neither refused chunk was kept");
    let resp = c.patch(server.url(&location)).header("Content-Range", "3-5").body("def").send().unwrap();
    assert_eq!(resp.status(), 202);
    let d = sha256(b"abcdef");
    assert_eq!(c.put(server.url(&format!("{location}?digest={d}"))).send().unwrap().status(), 201);
    assert_eq!(c.get(server.url(&format!("/v2/a/blobs/{d}"))).send().unwrap().text().unwrap(), "abcdef");
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&path))
            .unwrap_or_else(|e| panic!("this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): {e:#}"));
        SmallDisk { _dir: dir, path }
    }

    fn used_kib(&self) -> u64 {
        let out = run(Command::new("df").args(["--output=used", "-k"]).arg(&self.path)).unwrap();
        out.lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_is_a_server_error_that_keeps_nothing() {
    let disk = SmallDisk::mount("2m");
    let server = storage_server(&disk.path);
    let uploads = disk.path.join("uploads");
    let empty = disk.used_kib();
    let too_big = testkit::images::noise(3 << 20, 2);

    let resp = http()
        .post(server.url(&format!("/v2/a/blobs/uploads/?digest={}", sha256(&too_big))))
        .body(too_big.clone())
        .send();
    let status = resp.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 507, "a monolithic upload onto a full disk");
    assert!(entries(&uploads).is_empty() && entries(&disk.path.join("blobs/sha256")).is_empty());
    assert_eq!(disk.used_kib(), empty, "the space is given back");

    let location = start_upload(&server, "a");
    let resp = http().patch(server.url(&location)).body(too_big[..1 << 20].to_vec()).send().unwrap();
    assert_eq!(resp.status(), 202);
    let resp = http().patch(server.url(&location)).body(too_big[1 << 20..].to_vec()).send();
    assert_eq!(resp.map(|r| r.status().as_u16()).unwrap_or(0), 507, "a chunk onto a full disk");
    assert!(entries(&uploads).is_empty(), "the session that cannot go on is ended");
    assert_eq!(disk.used_kib(), empty);

    // Nothing of the failures stands in the way of the next push.
    let small = testkit::images::noise(64 << 10, 3);
    push_blob(&server, "a", &small);
    assert_eq!(
        http().get(server.url(&format!("/v2/a/blobs/{}", sha256(&small)))).send().unwrap().bytes().unwrap(),
        small
    );
}

#[test]
fn sessions_nobody_finishes_expire_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().to_path_buf())),
        upload_expiry: Duration::from_secs(2),
        ..Default::default()
    });
    let location = start_upload(&server, "a");
    let resp = http().patch(server.url(&location)).body(vec![1u8; 100_000]).send().unwrap();
    assert_eq!(resp.status(), 202);
    assert!(!entries(&dir.path().join("uploads")).is_empty());
    assert_eq!(wait_empty(&dir.path().join("uploads")), Vec::<String>::new(), "the idle session was not ended");
    let resp = http().get(server.url(&location)).send().unwrap();
    assert_eq!((resp.status().as_u16(), error_code(resp)), (404, "BLOB_UPLOAD_UNKNOWN".into()));
}

#[test]
fn a_cut_off_chunk_can_be_resent() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let content = testkit::images::noise(2 << 20, 4);
    let location = start_upload(&server, "a");
    let (first, rest) = content.split_at(1 << 20);
    assert_eq!(http().patch(server.url(&location)).body(first.to_vec()).send().unwrap().status(), 202);
    cut_off(&server, "PATCH", &location, rest, rest.len() / 2);
    // The access log has a line for the cut request once the server is done with it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.log().lines().any(|l| l.starts_with("PATCH") && l.contains(" 400 ")) {
        assert!(Instant::now() < deadline, "the cut request never ended: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let range = http().get(server.url(&location)).send().unwrap().headers()["range"].to_str().unwrap().to_string();
    assert_eq!(range, format!("0-{}", first.len() - 1), "the session stays at the last whole chunk");
    let resp = http()
        .put(server.url(&format!("{location}?digest={}", sha256(&content))))
        .header("Content-Range", format!("{}-{}", first.len(), content.len() - 1))
        .body(rest.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
}
