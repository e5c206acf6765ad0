//! The site CA as a pod gets it (installer::site_ca), used by a real JVM: the ConfigMap's files
//! are written where the kubelet would mount them, and `java` (the JDK's single-file launcher) with
//! the `JAVA_TOOL_OPTIONS` the post-renderer sets reaches `airgap registry serve` over TLS with a
//! CA it generated. Without those options the same JVM refuses the registry's certificate.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use installer::site_ca::{self, SiteCa};
use testkit::SiteRegistry;

/// Prints the HTTP status of a GET of its argument.
const FETCH: &str = r#"
public class Fetch {
    public static void main(String[] args) throws Exception {
        var connection = (java.net.HttpURLConnection) new java.net.URI(args[0]).toURL().openConnection();
        System.out.println("status " + connection.getResponseCode());
    }
}
"#;

fn java(dir: &Path, url: &str, options: Option<&str>) -> Output {
    let mut cmd = Command::new("java");
    cmd.arg(dir.join("Fetch.java")).arg(url).env_remove("JAVA_TOOL_OPTIONS");
    if let Some(o) = options {
        cmd.env("JAVA_TOOL_OPTIONS", o);
    }
    cmd.output().expect("java (the JDK that tests/tools/install.sh installs)")
}

#[test]
fn a_jvm_with_the_mounted_truststore_trusts_the_site_registry_and_without_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, storage, mounted) = (dir.path().join("tls"), dir.path().join("storage"), dir.path().join("mounted"));
    for d in [&tls, &storage, &mounted] {
        std::fs::create_dir_all(d).unwrap();
    }
    let registry = SiteRegistry::storage(&storage).tls(&tls).start().unwrap();
    let pem = std::fs::read_to_string(registry.ca().unwrap()).unwrap();

    // What the kubelet writes for the ConfigMap volume: each key a file.
    let configmap = SiteCa::from_pem(&pem, "ca.crt").unwrap().configmap("config-server").unwrap();
    for (key, value) in configmap["data"].as_mapping().unwrap() {
        std::fs::write(mounted.join(key.as_str().unwrap()), value.as_str().unwrap()).unwrap();
    }
    for (key, value) in configmap["binaryData"].as_mapping().unwrap() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap()).unwrap();
        std::fs::write(mounted.join(key.as_str().unwrap()), bytes).unwrap();
    }
    let options = site_ca::variables()["JAVA_TOOL_OPTIONS"].replace(site_ca::MOUNT, mounted.to_str().unwrap());
    std::fs::write(dir.path().join("Fetch.java"), FETCH).unwrap();
    let url = format!("{}/v2/", registry.url());

    let trusted = java(dir.path(), &url, Some(&options));
    let (out, err) = (String::from_utf8_lossy(&trusted.stdout), String::from_utf8_lossy(&trusted.stderr));
    assert!(trusted.status.success() && out.contains("status 200"), "with the truststore: {out}\n{err}");

    let refused = java(dir.path(), &url, None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("PKIX"), "without it the JVM must refuse: {err}");
}
