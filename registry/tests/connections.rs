//! Slow and numerous connections cannot take the registry down: a client that never finishes
//! its request is closed, at the connection cap the idlest connection makes room for a new
//! one, and running out of file descriptors makes the accept loop pause and log sparingly
//! instead of spinning. The registry runs in its own process, under a low `ulimit -n`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
#[ignore = "the registry process that the tests in this file start"]
fn registry_process() {
    registry_process_main();
}

const OPEN_FILES: u64 = 128;

/// A client that opens a connection per request, as a new client does, with a long timeout
/// only as a guard against hanging.
fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT, ACCEPT_ALL_MANIFESTS.parse().unwrap());
    reqwest::blocking::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Pulls the fixture's nginx image: its manifest, then every blob, checking each digest.
fn pull(registry: &ChildRegistry, c: &reqwest::blocking::Client) {
    let repo = "docker.io/library/nginx";
    let get = |path: String| {
        let resp = c.get(registry.url(&path)).send().unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.bytes().unwrap_or_else(|e| panic!("GET {path}: reading the body: {e:?}"))
    };
    let manifest: Value = serde_json::from_slice(&get(format!("/v2/{repo}/manifests/1.25"))).unwrap();
    let layers = manifest["layers"].as_array().unwrap().iter();
    for desc in std::iter::once(&manifest["config"]).chain(layers) {
        let d = desc["digest"].as_str().unwrap();
        assert_eq!(sha256(&get(format!("/v2/{repo}/blobs/{d}"))), d);
    }
}

/// Sets the process's soft open-file limit (the hard one stays at [`OPEN_FILES`]).
fn prlimit(pid: u32, nofile: u64) {
    let limit = format!("--nofile={nofile}:{OPEN_FILES}");
    run(Command::new(tool("prlimit")).arg(format!("--pid={pid}")).arg(limit)).unwrap();
}

#[test]
fn slow_sockets_under_a_low_open_file_limit_do_not_stop_other_clients() {
    let fx = fixture_bundle();
    let limits = registry::Limits {
        header_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut registry = ChildRegistry::start("registry_process", &fx.bundle, Some(OPEN_FILES), &limits);
    assert!(
        registry.max_connections <= (OPEN_FILES as usize) / 2,
        "{} connections cannot fit in {OPEN_FILES} file descriptors",
        registry.max_connections
    );

    // 200 slow sockets, more than the cap, the open-file limit and the client's patience.
    let slow = SlowSockets::start(registry.addr, 200, Duration::from_millis(500));
    let c = client();
    let until = Instant::now() + Duration::from_secs(10);
    let mut pulls = 0;
    while Instant::now() < until {
        pull(&registry, &c);
        pulls += 1;
    }
    assert!(slow.reopened() > 0, "no slow socket was ever closed by the server");
    registry.assert_running();
    eprintln!("{pulls} pulls beside 200 slow sockets; {} slow sockets reopened", slow.reopened());

    // Fewer descriptors than the server counted on (another process's doing, or a leak):
    // accepting fails, and the server must pause instead of spinning, and say so sparingly.
    let cpu_before = registry.cpu_seconds();
    let started = Instant::now();
    prlimit(registry.pid(), 24);
    std::thread::sleep(Duration::from_secs(10));
    prlimit(registry.pid(), OPEN_FILES);
    let cpu = registry.cpu_seconds() - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let log = registry.stderr();
    let reports = log.lines().filter(|l| l.contains("accepting a connection failed")).count();
    eprintln!("out of descriptors for {wall:.1} s: {cpu:.2} s of CPU, {reports} log lines:\n{log}");
    assert!(reports >= 1, "the server never ran out of descriptors, so this test proved nothing:\n{log}");
    assert!(reports <= 3 && log.len() < 4096, "{reports} reports, {} bytes of log:\n{log}", log.len());
    assert!(cpu < wall / 2.0, "the server used {cpu:.1} s of CPU in {wall:.1} s while out of descriptors");

    // Descriptors back: new clients are served again, while the slow sockets go on.
    pull(&registry, &c);
    drop(slow);
    registry.assert_running();
}

/// Reads until the server closes the connection; a read that outlasts its minute (a server
/// that never closes it) fails. Returns how many bytes came.
fn until_closed(s: &mut std::net::TcpStream) -> usize {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (mut buf, mut got) = (vec![0u8; 64 << 10], 0);
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server kept the connection open ({e})"),
        }
    }
}

#[test]
fn stalled_handshakes_heads_idlers_and_readers_are_closed() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let second = Duration::from_secs(1);
    let limits = registry::Limits {
        header_timeout: second,
        tls_handshake_timeout: second,
        idle_timeout: second,
        ..Default::default()
    };
    let tls = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().join("tls-store"))),
        tls: Some(registry::TlsConfig::Generate { dir: dir.path().join("tls"), hostnames: vec!["127.0.0.1".into()] }),
        limits: limits.clone(),
        ..Default::default()
    });
    // Nothing at all, then the first bytes of a ClientHello and no more.
    until_closed(&mut TcpStream::connect(tls.addr).unwrap());
    let mut hello = TcpStream::connect(tls.addr).unwrap();
    hello.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    until_closed(&mut hello);

    let plain = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().join("store"))),
        limits,
        ..Default::default()
    });
    let mut head = TcpStream::connect(plain.addr).unwrap();
    head.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    until_closed(&mut head);
    // A keep-alive connection, answered, then idle.
    let mut idle = TcpStream::connect(plain.addr).unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    until_closed(&mut idle);
    // A client that asks for a large blob and stops reading: the server gives up on it, and
    // the blob is cut short.
    let blob = testkit::images::noise(64 << 20, 5);
    let d = push_blob(&plain, "big", &blob);
    let mut reader = TcpStream::connect(plain.addr).unwrap();
    write!(reader, "GET /v2/big/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The server's end leaves ESTABLISHED when it closes, while the client's buffers still
    // hold what was sent before.
    let ours = reader.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = run(Command::new("ss").args(["-Htn", "state", "established"]).args([
            "src",
            &plain.addr.to_string(),
            "dst",
            &ours.to_string(),
        ]))
        .unwrap();
        if open.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the server kept sending to a client that stopped reading");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(until_closed(&mut reader) < blob.len(), "the stalled reader got the whole blob");
}
