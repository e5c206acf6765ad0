//! What an operator types wrong must not leak a secret: a generated key never lands in a file
//! others can read, and a password typed into a push target is never printed back.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn a_generated_key_replaces_a_loose_file_instead_of_filling_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    fs::create_dir(&tls).unwrap();
    // Left behind with the usual umask, readable by everyone.
    let key = tls.join("server-key.pem");
    fs::write(&key, "an old key\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let server = TestServer::start(registry::ServeConfig {
        storage: Some(registry::StorageConfig::Dir(dir.path().join("store"))),
        tls: Some(registry::TlsConfig::Generate { dir: tls.clone(), hostnames: vec!["127.0.0.1".into()] }),
        ..Default::default()
    });
    for file in ["server-key.pem", "ca-key.pem"] {
        let mode = fs::metadata(tls.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
    assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
    let mut names: Vec<String> =
        fs::read_dir(&tls).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["ca-key.pem", "ca.crt", "server-key.pem", "server.pem"], "no temporary file is left");
    // The server answers with the key it wrote.
    let out = run(std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(tls.join("ca.crt"))
        .arg(format!("https://{}/v2/", server.host())))
    .unwrap();
    assert_eq!(out.trim(), "{}");
}

#[test]
fn a_password_in_the_push_target_is_never_printed() {
    let fx = fixture_bundle();
    for target in ["ops:s3cret@127.0.0.1:1", "ops:s3cret@127.0.0.1:1/mirror", "ops:s3/cret@127.0.0.1:1"] {
        let opts = registry::push::PushOptions { plain_http: true, ..Default::default() };
        let err =
            format!("{:#}", registry::push::push_bundle(std::slice::from_ref(&fx.bundle), target, &opts).unwrap_err());
        assert!(!err.contains("s3cret") && !err.contains("s3/cret"), "{err}");
        assert!(err.contains("127.0.0.1:1") && err.contains("--password-env"), "{err}");
    }
}
