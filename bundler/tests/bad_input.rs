//! Bad specs and a full disk: each fails cleanly, naming what is wrong.

mod common;

use std::process::Command;

use common::*;
use testkit::FileServer;

#[test]
fn a_yaml_error_names_file_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let spec = write_spec(t.path(), "images:\n  - busybox:1.36\nfiles:\n  - url: http://x/y\n    sha256: [oops\n");
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    let prefix = format!("{}:", spec.display());
    assert!(text.starts_with(&prefix), "{text}");
    let loc: Vec<&str> = text[prefix.len()..].splitn(3, ':').collect();
    assert!(loc[0].parse::<u32>().is_ok() && loc[1].parse::<u32>().is_ok(), "line and column in {text}");

    let spec = write_spec(t.path(), "images:\n  - busybox\nimagez: []\n");
    let text =
        format!("{:#}", bundler::lock(&lock_options(&spec, &t.path().join("l"), &t.path().join("c"))).unwrap_err());
    assert!(text.contains("bundle.yaml:3:1:") && text.contains("imagez"), "{text}");
}

#[test]
fn an_empty_ca_file_is_named_before_anything_is_fetched() {
    let t = tempfile::tempdir().unwrap();
    let ca = t.path().join("site-ca.pem");
    std::fs::write(&ca, "").unwrap();
    let spec = write_spec(t.path(), &format!("images:\n  - busybox:1.36\nca_certs: [{}]\n", ca.display()));
    let err = bundler::create(&create_options(&spec, &t.path().join("b"), &t.path().join("c"))).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(&format!("ca_certs: CA file {}: no usable PEM certificate in it", ca.display())), "{text}");
    assert!(!t.path().join("b").exists(), "no bundle folder left behind");
}

/// A 2 MiB tmpfs as the cache; a 3 MB file cannot fit. Needs root (mount), as the test machine is.
#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&cache).status();
    assert!(mounted.is_ok_and(|s| s.success()), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(cache.clone());

    let www = t.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("small"), b"small file\n").unwrap();
    std::fs::write(www.join("big"), vec![7u8; 3_000_000]).unwrap();
    let server = FileServer::start(&www).unwrap();
    let entry = |name: &str| {
        format!("  - url: {}\n    sha256: {}\n    version: v1\n", server.url_of(name), sha256_file(&www.join(name)))
    };
    let spec = write_spec(t.path(), &format!("files:\n{}", entry("small")));
    bundler::lock(&lock_options(&spec, &t.path().join("small.lock"), &cache)).unwrap();
    let before = cached_blobs(&cache);
    assert!(before.contains(&sha256_file(&www.join("small"))));

    let spec = write_spec(t.path(), &format!("files:\n{}{}", entry("small"), entry("big")));
    let err = bundler::lock(&lock_options(&spec, &t.path().join("big.lock"), &cache)).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("files[1]") && text.contains("not enough space in the cache"), "{text}");
    for blob in &before {
        assert!(cached_blobs(&cache).contains(blob), "{blob} is still in the cache");
        assert_eq!(&sha256_file(&cache.join("blobs/sha256").join(blob)), blob, "and intact");
    }
}
