//! An upstream that streams a gigabyte where a small document belongs (a manifest, a token, a
//! chart index, a checksums file, an image list): each is refused once it passes its bound, while
//! it streams, so this process never holds more than the bound. The upstream is a server made by
//! the test (`common::upstream`).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use common::upstream::{Body, Reply, Upstream};
use common::*;

/// The tests measure this process's peak memory: one at a time.
static MEASURED: Mutex<()> = Mutex::new(());

const GIB: u64 = 1 << 30;

fn endless(declared: bool) -> Body {
    Body::Endless { len: GIB, declared }
}

/// Peak resident memory of this process in MiB since `/proc/self/clear_refs` was last given "5".
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.parse::<u64>().ok()).unwrap()
        / 1024
}

/// `bundle lock` of `spec_yaml` fails saying `says`, and this process's peak memory grows by less
/// than 100 MiB meanwhile (the largest bound is 64 MiB).
fn refused_within_bounds(spec_yaml: &str, says: &[&str]) {
    let _one = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(t.path(), spec_yaml);
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_mib();
    let err = bundler::lock(&lock_options(&spec, &t.path().join("lock.json"), &t.path().join("cache"))).unwrap_err();
    let peak = peak_rss_mib();
    let text = format!("{err:#}");
    assert!(says.iter().all(|s| text.contains(s)), "{text}");
    assert!(peak < before + 100, "peak memory grew from {before} MiB to {peak} MiB");
}

fn image_spec(server: &Upstream) -> String {
    format!("images:\n  - hostile.example/x:1\nmirrors:\n  hostile.example: {}\n", server.url())
}

#[test]
fn a_manifest_streamed_without_end_is_refused_at_its_bound() {
    let server = Upstream::start(|_| Reply::ok("application/vnd.oci.image.manifest.v1+json", endless(false)));
    refused_within_bounds(&image_spec(&server), &["manifest: the answer is larger than the 16.0 MiB"]);
}

#[test]
fn a_manifest_declared_huge_is_refused_before_it_is_read() {
    let server = Upstream::start(|_| Reply::ok("application/vnd.oci.image.manifest.v1+json", endless(true)));
    refused_within_bounds(&image_spec(&server), &["manifest: the answer is larger than the 16.0 MiB"]);
}

#[test]
fn a_token_streamed_without_end_is_refused_at_its_bound() {
    // The challenge's realm is the server itself, known once it listens.
    let realm = Arc::new(OnceLock::<String>::new());
    let server = Upstream::start({
        let realm = realm.clone();
        move |path| {
            if path.starts_with("/token") {
                return Reply::ok("application/json", endless(false));
            }
            let challenge = format!(r#"Bearer realm="{}""#, realm.get().map_or("", String::as_str));
            Reply { status: 401, headers: vec![("WWW-Authenticate".into(), challenge)], body: Body::Bytes(Vec::new()) }
        }
    });
    realm.set(format!("{}/token", server.url())).unwrap();
    refused_within_bounds(&image_spec(&server), &["token from", "larger than the 1.0 MiB"]);
}

#[test]
fn a_chart_index_streamed_without_end_is_refused_at_its_bound() {
    let server = Upstream::start(|_| Reply::ok("application/yaml", endless(false)));
    let spec =
        format!("charts:\n  - repo: {}/charts\n    name: x\n    version: 1.0.0\n    discover: off\n", server.url());
    refused_within_bounds(&spec, &["index.yaml: the answer is larger than the 64.0 MiB"]);
}

#[test]
fn a_checksums_file_streamed_without_end_is_refused_at_its_bound() {
    let server = Upstream::start(|_| Reply::ok("text/plain", endless(false)));
    let spec = format!(
        "files:\n  - url: {0}/tool.tar.gz\n    sha256_from: {0}/checksums.txt\n    version: '1'\n",
        server.url()
    );
    refused_within_bounds(&spec, &["checksums.txt: the answer is larger than the 4.0 MiB"]);
}

#[test]
fn an_image_list_streamed_without_end_is_refused_at_its_bound() {
    let server = Upstream::start(|_| Reply::ok("text/plain", endless(false)));
    let spec = format!("image_lists:\n  - url: {}/images.txt\n", server.url());
    refused_within_bounds(&spec, &["images.txt: the answer is larger than the 4.0 MiB"]);
}

/// The same server giving a small document: what the tests above refuse is only the size.
#[test]
fn a_small_image_list_from_the_same_server_is_read() {
    let server = Upstream::start(|_| Reply::ok("text/plain", Body::Bytes(b"# no images\n".to_vec())));
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(t.path(), &format!("image_lists:\n  - url: {}/images.txt\n", server.url()));
    bundler::lock(&lock_options(&spec, &t.path().join("lock.json"), Path::new(&t.path().join("cache")))).unwrap();
}
