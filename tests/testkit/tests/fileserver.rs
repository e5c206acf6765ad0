//! The harness's own static server: ranges and the fault used by resume tests.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;

use testkit::FileServer;

fn payload() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

fn served() -> (tempfile::TempDir, FileServer) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/blob.bin"), payload()).unwrap();
    let server = FileServer::start(dir.path()).unwrap();
    (dir, server)
}

fn body(resp: ureq::Response) -> Vec<u8> {
    let mut out = Vec::new();
    resp.into_reader().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn get_head_and_ranges() {
    let (_dir, server) = served();
    let url = server.url_of("sub/blob.bin");

    let whole = ureq::get(&url).call().unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(body(whole), payload());

    let head = ureq::head(&url).call().unwrap();
    assert_eq!(head.header("Content-Length"), Some("100000"));
    assert!(body(head).is_empty());

    let part = ureq::get(&url).set("Range", "bytes=1000-1999").call().unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.header("Content-Range"), Some("bytes 1000-1999/100000"));
    assert_eq!(body(part), payload()[1000..2000]);

    let tail = ureq::get(&url).set("Range", "bytes=99990-").call().unwrap();
    assert_eq!(body(tail), payload()[99_990..]);
    let suffix = ureq::get(&url).set("Range", "bytes=-10").call().unwrap();
    assert_eq!(body(suffix), payload()[99_990..]);

    match ureq::get(&url).set("Range", "bytes=100000-").call() {
        Err(ureq::Error::Status(416, resp)) => {
            assert_eq!(resp.header("Content-Range"), Some("bytes */100000"))
        }
        other => panic!("expected 416, got {other:?}"),
    }
    // A stale If-Range means the client's partial copy is of another version: send it all.
    let stale = ureq::get(&url).set("Range", "bytes=0-9").set("If-Range", "\"other\"").call().unwrap();
    assert_eq!(stale.status(), 200);

    // HTTP clients normalise `..` away, so this request is written by hand.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(b"GET /sub/../sub/blob.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(matches!(ureq::get(&server.url_of("missing")).call(), Err(ureq::Error::Status(404, _))));
}

#[test]
fn dropped_connection_then_resume() {
    let (_dir, server) = served();
    let url = server.url_of("sub/blob.bin");
    server.drop_connection_after_once(30_000);

    let first = ureq::get(&url).call().unwrap();
    let etag = first.header("ETag").unwrap().to_string();
    let mut got = Vec::new();
    let read = first.into_reader().read_to_end(&mut got);
    assert!(read.is_err(), "the body should have been cut short");
    assert_eq!(got.len(), 30_000);

    let rest = ureq::get(&url).set("Range", &format!("bytes={}-", got.len())).set("If-Range", &etag).call().unwrap();
    assert_eq!(rest.status(), 206);
    got.extend(body(rest));
    assert_eq!(got, payload());

    let seen: Vec<Option<String>> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(seen, vec![None, Some("bytes=30000-".to_string())]);
}
