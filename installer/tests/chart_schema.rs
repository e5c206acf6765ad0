//! A chart whose values.schema.json names a remote `$ref` fails `helm template` offline with the
//! real helm 3.8.2; after `make_offline` it renders, and the local rules of the schema still hold.
//! The chart is made by the test.

use std::path::Path;
use std::process::Command;

use installer::chart_schema::make_offline;
use testkit::tool;

fn chart(dir: &Path) -> std::path::PathBuf {
    let files = [
        ("demo/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n"),
        ("demo/values.yaml", "replicas: 1\nmeta: {}\n"),
        (
            "demo/values.schema.json",
            // Port 9 (discard) on loopback: the fetch fails at once, as it would with no internet.
            r#"{"type": "object", "properties": {"replicas": {"type": "integer"}, "meta": {"$ref": "http://127.0.0.1:9/defs.json"}}}"#,
        ),
        (
            "demo/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\ndata: {replicas: \"{{ .Values.replicas }}\"}\n",
        ),
    ];
    let path = dir.join("demo-0.1.0.tgz");
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    std::fs::write(&path, b.into_inner().unwrap().finish().unwrap()).unwrap();
    path
}

fn template(chart: &Path, set: &str) -> std::process::Output {
    Command::new(tool("helm-3.8.2")).args(["template", "x"]).arg(chart).args(["--set", set]).output().unwrap()
}

#[test]
fn a_remote_schema_reference_no_longer_breaks_an_offline_render() {
    let dir = tempfile::tempdir().unwrap();
    let original = chart(dir.path());
    let before = template(&original, "replicas=2");
    assert!(!before.status.success(), "helm 3.8.2 fetches the remote $ref and fails offline");

    let offline = dir.path().join("offline.tgz");
    let removed = make_offline(&original, &offline).unwrap();
    assert_eq!(removed, ["http://127.0.0.1:9/defs.json"]);
    let after = template(&offline, "replicas=2");
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    assert!(String::from_utf8_lossy(&after.stdout).contains("replicas: \"2\""));
    let wrong = template(&offline, "replicas=two");
    assert!(!wrong.status.success(), "the schema's local rules still apply");

    let untouched = dir.path().join("untouched.tgz");
    assert!(make_offline(&offline, &untouched).unwrap().is_empty());
    assert!(!untouched.exists(), "a chart without remote references is used as it is");
}
