//! The MOSIP config repository (a git bundle fixture) served over git's dumb HTTP protocol by a
//! local file server, carried, and cloned back from the bundle.

mod common;

use std::io::Read;
use std::process::Command;

use bundles::lock::Lock;
use bundles::verify::{verify, VerifyOptions};
use common::*;
use testkit::{shared_fixtures, FileServer};

const BRANCH: &str = "1.2.0.1-v3";
const COMMIT: &str = "3a51426443a03c6f0c626a20b5c1d507096c3075";

#[test]
fn a_git_repository_is_carried_and_clones_back() {
    let t = tempfile::tempdir().unwrap();
    let www = t.path().join("www/mosip");
    std::fs::create_dir_all(&www).unwrap();
    let fixture = shared_fixtures().join("git/mosip-config-1.2.0.1-v3.bundle");
    run(Command::new("git").args(["clone", "--quiet", "--mirror"]).arg(&fixture).arg(www.join("mosip-config.git")));
    run(Command::new("git").arg("-C").arg(www.join("mosip-config.git")).arg("update-server-info"));
    let server = FileServer::start(t.path().join("www")).unwrap();
    let spec = write_spec(
        t.path(),
        &format!(
            "git:\n  - url: https://github.com/mosip/mosip-config.git\n    ref: {BRANCH}\nmirrors:\n  github.com: {}\n",
            server.url()
        ),
    );
    let out = t.path().join("bundle");
    bundler::create(&create_options(&spec, &out, &t.path().join("cache"))).unwrap();
    let report = verify(&out, &VerifyOptions { key: None, bases: vec![] });
    assert!(report.ok, "{}", report.to_text());

    let lock = Lock::read(&out).unwrap();
    let a = &lock.artifacts[0];
    assert_eq!(a.reference, format!("github.com/mosip/mosip-config:{BRANCH}"));
    assert_eq!(a.source.as_deref(), Some(format!("git+https://github.com/mosip/mosip-config.git@{COMMIT}").as_str()));

    // Unpack the git layer and clone from it, as the site does over HTTP.
    let bundle = bundles::Bundle::open(&out).unwrap();
    let layer = a.content.as_ref().unwrap().digest.clone();
    let mut tar_bytes = Vec::new();
    bundle.open_member(&bundles::digest::blob_path(&layer)).unwrap().read_to_end(&mut tar_bytes).unwrap();
    let repo = t.path().join("carried.git");
    tar::Archive::new(tar_bytes.as_slice()).unpack(&repo).unwrap();
    assert!(repo.join("info/refs").is_file(), "ready for dumb HTTP");
    let clone = t.path().join("clone");
    run(Command::new("git").args(["clone", "--quiet", "--branch", BRANCH]).arg(&repo).arg(&clone));
    let head = run(Command::new("git").arg("-C").arg(&clone).args(["rev-parse", "HEAD"]));
    assert_eq!(head.trim(), COMMIT);

    // Served over dumb HTTP straight from the unpacked tar.
    let site = FileServer::start(t.path()).unwrap();
    let http_clone = t.path().join("http-clone");
    run(Command::new("git").args(["clone", "--quiet"]).arg(site.url_of("carried.git")).arg(&http_clone));
    let head = run(Command::new("git").arg("-C").arg(&http_clone).args(["rev-parse", "HEAD"]));
    assert_eq!(head.trim(), COMMIT);

    // The same commit gives the same tar, from a fresh cache too.
    let lock_path = out.join("bundle.lock.json");
    let again = t.path().join("again");
    let mut args = create_options(&spec, &again, &t.path().join("cache2"));
    args.lock = Some(lock_path);
    bundler::create(&args).unwrap();
    assert_same_content(&out, &again);
    assert_identical_parts(&out, &again);
}
