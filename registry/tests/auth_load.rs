//! Password checks do not stall the server: bcrypt runs on the blocking pool, a client whose
//! credentials were checked a moment ago is not checked again, and an unknown user costs a
//! check like any wrong password, so timing tells no user names. (Latencies: docs/benchmarks.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64::Engine;
use common::*;

/// bcrypt's cost here: each check takes a quarter of a second, so half the bad requests' checks
/// are seconds of CPU, a margin no scheduling delay of a loaded test machine comes near (the
/// known client's kept check takes microseconds). Sites use cost 5 (`htpasswd -B`) to 12.
const COST: u32 = 12;
const BAD: usize = 32;

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Sends `GET /v2/` with the credentials; the connection is returned for reading the answer.
fn send(server: SocketAddr, user: &str, password: &str) -> TcpStream {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
        basic(user, password)
    )
    .unwrap();
    s
}

/// The status of the answer on `s`; a read that outlasts its timeout (a hung server) fails.
fn status(mut s: TcpStream) -> u16 {
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("an answer (the read timeout guards against a hang)");
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn a_known_client_is_answered_while_wrong_passwords_and_unknown_users_wait_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("ops:{}\n", bcrypt::hash("s3cret", COST).unwrap())).unwrap();
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().join("store"))),
        htpasswd: Some(htpasswd),
        ..Default::default()
    });
    assert_eq!(status(send(server.addr, "ops", "s3cret")), 200, "the first request checks the password");

    let answered = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Barrier::new(BAD + 1));
    let bad: Vec<_> = (0..BAD)
        .map(|i| {
            let (addr, answered, sent) = (server.addr, answered.clone(), sent.clone());
            std::thread::spawn(move || {
                // Half guess passwords of a real user, half guess user names.
                let s = if i % 2 == 0 {
                    send(addr, "ops", &format!("guess{i}"))
                } else {
                    send(addr, &format!("user{i}"), "x")
                };
                sent.wait();
                let got = status(s);
                answered.fetch_add(1, Ordering::SeqCst);
                got
            })
        })
        .collect();
    sent.wait();
    // Every bad request has been sent; each costs a bcrypt check on the blocking pool, a few at a
    // time. The known client's check was kept, so it is answered without waiting behind them.
    assert_eq!(status(send(server.addr, "ops", "s3cret")), 200);
    let done_before = answered.load(Ordering::SeqCst);
    let statuses: Vec<u16> = bad.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
    assert!(
        done_before <= BAD / 2,
        "{done_before} of {BAD} bad requests were answered before the known client: it waited behind their \
         password checks"
    );
}
