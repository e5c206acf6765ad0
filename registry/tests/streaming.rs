//! Blobs stream both ways with bounded memory: a blob far larger than the allowed growth of
//! the process goes up and comes back without the server (same process) holding it.

mod common;

use std::io::Read;

use common::*;

/// A deterministic stream of `len` bytes, never held in memory whole.
struct Pattern {
    left: u64,
    n: u8,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..k] {
            *b = self.n;
            self.n = self.n.wrapping_mul(31).wrapping_add(7);
        }
        self.left -= k as u64;
        Ok(k)
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_large_blob_goes_up_and_down_in_bounded_memory() {
    const LEN: u64 = 256 << 20;
    const ALLOWED_GROWTH_KIB: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(dir.path());
    let (hex, _) = bundles::digest::sha256_reader(Pattern { left: LEN, n: 1 }).unwrap();
    let d = format!("sha256:{hex}");
    let before = rss_kib();
    let c = http();
    let resp = c
        .post(server.url(&format!("/v2/big/blobs/uploads/?digest={d}")))
        .body(reqwest::blocking::Body::sized(Pattern { left: LEN, n: 1 }, LEN))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = c.get(server.url(&format!("/v2/big/blobs/{d}"))).send().unwrap();
    assert_eq!(resp.content_length(), Some(LEN));
    let (got, n) = bundles::digest::sha256_reader(resp).unwrap();
    assert_eq!((got, n), (hex, LEN));
    let growth = rss_kib().saturating_sub(before);
    assert!(growth < ALLOWED_GROWTH_KIB, "memory grew by {growth} KiB moving a {} MiB blob", LEN >> 20);
}
