//! Load, bounded and on loopback: 64 clients pull manifests and blobs for 30 s beside 200 slow
//! sockets. Every request of the clients must succeed, and the server's memory stay bounded.
//! Latency under the same load, against distribution, is measured by bench/registry-load.sh.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use common::*;
use serde_json::Value;

#[test]
#[ignore = "the registry process that the test in this file starts"]
fn registry_process() {
    registry_process_main();
}

const CLIENTS: usize = 64;
const SLOW: usize = 200;
const RUN_FOR: Duration = Duration::from_secs(30);
/// The largest blob: far more than a stream's buffers, so that holding blobs whole would show.
const BIG: usize = 32 << 20;
/// A generous bound. Each blob in flight holds one decompressed zstd frame (2 MiB), its
/// compressed copy and up to 1 MiB queued for the socket, whatever the blob's size: about
/// 200 MiB for 64 streams. Holding the large blob whole per client would take 2 GiB.
const PEAK_RSS_KIB: u64 = 512 << 10;

/// Images of the fixture's kinds and a file of several zstd frames, made by the test.
fn load_bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let layout = dir.join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    add_multiarch(&mut w, "docker.io/load/multi:1.0");
    for i in 0..4 {
        add_single(&mut w, &format!("docker.io/load/single-{i}:1.0"), "amd64");
    }
    let big = testkit::images::noise(BIG, 11);
    w.add_single_layer("files.example.com/load/big:1.0", Kind::File, "big.bin", &big[..], None, None).unwrap();
    w.finish().unwrap();
    let bundle = dir.join("bundle");
    bundles::pack::pack(&layout, &bundle, &bundles::pack::PackOptions::default()).unwrap();
    bundle
}

/// Every GET the clients make, with what must come back: (path, digest of the body).
fn requests(registry: &ChildRegistry) -> Vec<(String, String)> {
    let c = http();
    let mut out = Vec::new();
    let repos =
        ["docker.io/load/multi", "docker.io/load/single-0", "docker.io/load/single-3", "files.example.com/load/big"];
    for repo in repos {
        let resp = c.get(registry.url(&format!("/v2/{repo}/manifests/1.0"))).send().unwrap();
        assert_eq!(resp.status(), 200, "{repo}");
        let d = resp.headers()["docker-content-digest"].to_str().unwrap().to_string();
        let manifest: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        out.push((format!("/v2/{repo}/manifests/1.0"), d));
        let blobs = manifest["layers"].as_array().into_iter().flatten().chain(manifest.get("config"));
        for desc in blobs {
            let d = desc["digest"].as_str().unwrap().to_string();
            out.push((format!("/v2/{repo}/blobs/{d}"), d));
        }
    }
    out
}

#[test]
fn sixty_four_clients_beside_two_hundred_slow_sockets_all_succeed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = load_bundle(dir.path());
    let mut registry = ChildRegistry::start("registry_process", &bundle, None, &registry::Limits::default());
    let work = Arc::new(requests(&registry));
    let slow = SlowSockets::start(registry.addr, SLOW, Duration::from_secs(1));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let until = Instant::now() + RUN_FOR;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (work, done, failed, base) = (work.clone(), done.clone(), failed.clone(), registry.url(""));
            std::thread::spawn(move || {
                // One keep-alive connection per client, as a pulling node has.
                let c = http();
                let mut n = i;
                while Instant::now() < until {
                    let (path, digest) = &work[n % work.len()];
                    n += 1;
                    let outcome =
                        c.get(format!("{base}{path}")).timeout(Duration::from_secs(120)).send().and_then(|r| {
                            let status = r.status();
                            r.bytes().map(|b| (status, b))
                        });
                    match outcome {
                        Ok((status, body)) if status == 200 && sha256(&body) == *digest => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            failed.lock().unwrap().push(format!("{path}: {status}, {} bytes", body.len()))
                        }
                        Err(e) => failed.lock().unwrap().push(format!("{path}: {e}")),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    registry.assert_running();
    let failed = failed.lock().unwrap();
    let done = done.load(Ordering::Relaxed);
    eprintln!(
        "{done} requests of {CLIENTS} clients in {RUN_FOR:?} beside {SLOW} slow sockets; peak RSS {} KiB",
        registry.peak_rss_kib()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        done + failed.len() as u64,
        failed.first()
    );
    assert!(done >= CLIENTS as u64, "the clients were served only {done} times");
    assert!(registry.peak_rss_kib() < PEAK_RSS_KIB, "peak RSS {} KiB", registry.peak_rss_kib());
    drop(slow);
}
