//! Real clients against the registry: skopeo, oras, crane, helm (OCI and the classic view), git
//! and curl-style HTTP; and `registry push` into CNCF distribution.

mod common;

use std::process::Command;

use common::*;
use registry::{ServeConfig, StorageConfig, TlsConfig};
use serde_json::Value;

fn skopeo(args: &[&str]) -> String {
    run(Command::new(tool("skopeo")).args(args)).unwrap()
}

fn digest_of_inspect(raw: &str) -> String {
    sha256(raw.as_bytes())
}

#[test]
fn skopeo_inspects_bundle_images_under_host_first_and_bare_names_and_ns() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let host = server.host();
    let want = fx.multiarch.digest().to_string();
    for name in ["docker.io/mosipid/config-server", "mosipid/config-server"] {
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/{name}:1.1.2")]);
        assert_eq!(digest_of_inspect(&raw), want, "{name}");
        let v: Value = serde_json::from_str(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
            &format!("docker://{host}/{name}:1.1.2"),
        ]))
        .unwrap();
        assert_eq!(v["Architecture"], "arm64", "{name}: the arm64 manifest and config were served");
    }
    let v: Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &format!("docker://{host}/example/tool:2.0")]))
            .unwrap();
    assert_eq!(v["Architecture"], "amd64");
    let c = http();
    for (path, ok) in [
        ("/v2/mosipid/config-server/manifests/1.1.2?ns=docker.io", true),
        ("/v2/library/nginx/manifests/1.25?ns=docker.io", true),
        ("/v2/example/tool/manifests/2.0?ns=quay.io", true),
        ("/v2/example/tool/manifests/2.0?ns=docker.io", false),
    ] {
        let resp = c.get(server.url(path)).send().unwrap();
        assert_eq!(resp.status().is_success(), ok, "{path}: {}", resp.status());
    }
    let log = server.log();
    assert!(log.contains("GET /v2/docker.io/mosipid/config-server/manifests/1.1.2 200"), "{log}");
    assert!(
        log.lines().any(|l| l.starts_with("GET /v2/mosipid/config-server/blobs/sha256:") && l.contains(" 200 ")),
        "{log}"
    );
}

#[test]
fn blobs_stream_with_ranges_from_a_bundle() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let c = http();
    let m: Value =
        serde_json::from_slice(&c.get(server.url("/v2/example/tool/manifests/2.0")).send().unwrap().bytes().unwrap())
            .unwrap();
    let layer = m["layers"][1]["digest"].as_str().unwrap();
    let whole = c.get(server.url(&format!("/v2/example/tool/blobs/{layer}"))).send().unwrap().bytes().unwrap();
    assert_eq!(sha256(&whole), layer);
    let resp =
        c.get(server.url(&format!("/v2/example/tool/blobs/{layer}"))).header("Range", "bytes=512-1023").send().unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"].to_str().unwrap(), format!("bytes 512-1023/{}", whole.len()));
    assert_eq!(&resp.bytes().unwrap()[..], &whole[512..1024]);
    let resp = c
        .get(server.url(&format!("/v2/example/tool/blobs/{layer}")))
        .header("Range", format!("bytes={}-", whole.len()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 416);
}

#[test]
fn skopeo_copies_into_and_out_of_a_tls_storage_registry() {
    let fx = fixture_bundle();
    let certs = fx.dir.path().join("certs");
    let server = TestServer::start(ServeConfig {
        storage: Some(StorageConfig::Dir(fx.dir.path().join("store"))),
        tls: Some(TlsConfig::Generate { dir: certs.clone(), hostnames: vec!["127.0.0.1".into(), "localhost".into()] }),
        ..Default::default()
    });
    let host = server.host();
    let layout = fx.dir.path().join("layout");
    let src = format!("oci:{}:docker.io/mosipid/config-server:1.1.2", layout.display());
    let dest = format!("docker://{host}/site/config-server:1.1.2");
    let certs = certs.to_str().unwrap();
    skopeo(&["copy", "--all", "--preserve-digests", "--dest-cert-dir", certs, &src, &dest]);
    let raw = skopeo(&["inspect", "--raw", "--cert-dir", certs, &dest]);
    assert_eq!(digest_of_inspect(&raw), fx.multiarch.digest().to_string(), "the index arrived byte for byte");
    let out = fx.dir.path().join("out");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-cert-dir",
        certs,
        &dest,
        &format!("oci:{}:copy", out.display()),
    ]);
    let index: Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], fx.multiarch.digest().to_string());
    // Docker schema 2, as older clients push it.
    let single = format!("oci:{}:quay.io/example/tool:2.0", layout.display());
    let v2s2 = format!("docker://{host}/site/tool:2.0");
    skopeo(&["copy", "--format", "v2s2", "--dest-cert-dir", certs, &single, &v2s2]);
    let raw: Value = serde_json::from_str(&skopeo(&["inspect", "--raw", "--cert-dir", certs, &v2s2])).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let ca = format!("{certs}/ca.crt");
    let url = format!("https://{host}/v2/");
    let version = run(Command::new("curl").args([
        "-sS",
        "--http2",
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &url,
    ]));
    assert_eq!(version.unwrap(), "2", "HTTP/2 is negotiated over TLS");
    let err = run(Command::new(tool("skopeo")).args(["inspect", &dest])).unwrap_err().to_string();
    assert!(err.contains("certificate"), "an untrusted client is refused: {err}");
}

#[test]
fn oras_pushes_and_pulls_an_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let server = storage_server(&dir.path().join("store"));
    let host = server.host();
    std::fs::write(dir.path().join("notes.txt"), "field notes\n").unwrap();
    let oras = |args: &[&str]| run(Command::new(tool("oras")).args(args).current_dir(dir.path())).unwrap();
    oras(&[
        "push",
        "--plain-http",
        &format!("{host}/team/notes:v1"),
        "--artifact-type",
        "application/vnd.example.notes",
        "notes.txt:text/plain",
    ]);
    oras(&["pull", "--plain-http", &format!("{host}/team/notes:v1"), "-o", "pulled"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("pulled/notes.txt")).unwrap(), "field notes\n");
    oras(&[
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/vnd.example.sig",
        &format!("{host}/team/notes:v1"),
        "notes.txt:text/plain",
    ]);
    let listed = oras(&["discover", "--plain-http", "--format", "json", &format!("{host}/team/notes:v1")]);
    assert!(listed.contains("application/vnd.example.sig"), "referrers: {listed}");
}

#[test]
fn crane_reads_manifests_and_tags_from_a_bundle() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let host = server.host();
    let crane = |args: &[&str]| run(Command::new(tool("crane")).args(args)).unwrap();
    let m = crane(&["manifest", "--insecure", &format!("{host}/docker.io/mosipid/config-server:1.1.2")]);
    assert_eq!(sha256(m.as_bytes()), fx.multiarch.digest().to_string());
    let tags = crane(&["ls", "--insecure", &format!("{host}/docker.io/mosipid/config-server")]);
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["1.1.2", "sbom"]);
    let catalog = crane(&["catalog", "--insecure", &host]);
    for repo in ["docker.io/library/nginx", "library/nginx", "quay.io/example/tool", "example/tool"] {
        assert!(catalog.lines().any(|l| l == repo), "{repo} in {catalog}");
    }
    let referrers: Value = serde_json::from_slice(
        &http()
            .get(server.url(&format!(
                "/v2/mosipid/config-server/referrers/{}?artifactType={}",
                fx.multiarch.digest(),
                SBOM_TYPE.replace('+', "%2B")
            )))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], fx.referrer.digest().to_string());
}

#[test]
fn helm_pulls_charts_over_oci_and_from_the_classic_view() {
    let fx = fixture_bundle();
    let home = fx.dir.path().join("helm-home");
    // Helm 3.8 speaks plain HTTP to registries on 127.0.0.1 whatever it is told.
    let server = TestServer::start(ServeConfig {
        bundles: vec![fx.bundle.clone()],
        storage: Some(StorageConfig::Dir(fx.dir.path().join("store"))),
        ..Default::default()
    });
    let host = server.host();
    let helm_cmd = |args: &[&str]| {
        let mut cmd = Command::new(helm());
        cmd.args(args)
            .current_dir(fx.dir.path())
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_EXPERIMENTAL_OCI", "1");
        run(&mut cmd).unwrap()
    };
    for d in ["oci-pull", "pushed-pull", "classic", "classic-pushed"] {
        std::fs::create_dir_all(fx.dir.path().join(d)).unwrap();
    }
    // From the bundle, over OCI.
    helm_cmd(&[
        "pull",
        &format!("oci://{host}/charts.example.com/stable/mychart"),
        "--version",
        "0.1.0",
        "-d",
        "oci-pull",
    ]);
    assert!(fx.dir.path().join("oci-pull/mychart-0.1.0.tgz").is_file());
    // Pushed by helm into storage, then pulled back.
    let tgz = helm_package(fx.dir.path(), "pushed", "1.2.3");
    helm_cmd(&["push", tgz.to_str().unwrap(), &format!("oci://{host}/site/charts")]);
    helm_cmd(&["pull", &format!("oci://{host}/site/charts/pushed"), "--version", "1.2.3", "-d", "pushed-pull"]);
    assert!(fx.dir.path().join("pushed-pull/pushed-1.2.3.tgz").is_file());
    // The classic repository view of both.
    helm_cmd(&["repo", "add", "site", &server.url("/charts/charts.example.com/stable")]);
    helm_cmd(&["pull", "site/mychart", "--version", "0.1.0", "-d", "classic"]);
    let pulled = std::fs::read(fx.dir.path().join("classic/mychart-0.1.0.tgz")).unwrap();
    assert_eq!(pulled, std::fs::read(fx.dir.path().join("oci-pull/mychart-0.1.0.tgz")).unwrap());
    helm_cmd(&["repo", "add", "pushed", &server.url("/charts/site/charts")]);
    helm_cmd(&["pull", "pushed/pushed", "--version", "1.2.3", "-d", "classic-pushed"]);
    assert_eq!(
        std::fs::read(fx.dir.path().join("classic-pushed/pushed-1.2.3.tgz")).unwrap(),
        std::fs::read(&tgz).unwrap()
    );
}

#[test]
fn git_clones_a_repository_from_a_bundle() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let out = fx.dir.path().join("clone");
    run(Command::new("git").arg("clone").arg(server.url("/git/github.com/example/config.git")).arg(&out)).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("application.properties")).unwrap(),
        "mosip.greeting=hello from the bundle\n"
    );
    let tagged = fx.dir.path().join("clone-tagged");
    run(Command::new("git").arg("clone").arg(server.url("/git/example/config:v1.git")).arg(&tagged)).unwrap();
    assert!(tagged.join("application.properties").is_file());
    assert!(server.log().contains("GET /git/github.com/example/config.git/info/refs"), "{}", server.log());
}

#[test]
fn files_are_served_over_plain_http() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let c = http();
    let resp = c.get(server.url("/files/files.example.com/tools/hello/1.0/hello.txt")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "hello, site\n");
    assert_eq!(c.get(server.url("/files/files.example.com/tools/hello/1.0/other.txt")).send().unwrap().status(), 404);
    let out = run(Command::new("curl").args(["-fsS", "-r", "7-10", &server.url("/files/tools/hello/1.0/hello.txt")]))
        .unwrap();
    assert_eq!(out, "site");
}

#[test]
fn a_delta_is_served_over_its_base() {
    let fx = fixture_bundle();
    let base_lock = bundles::Bundle::open(&fx.bundle).unwrap().lock().unwrap();
    let layout = fx.dir.path().join("layout");
    let mut w = bundles::layout_writer::LayoutWriter::open(&layout).unwrap();
    add_single(&mut w, "docker.io/mosipid/config-server:1.1.3", "s390x");
    w.finish().unwrap();
    let delta = fx.dir.path().join("delta");
    let opts = bundles::pack::PackOptions { base: Some(base_lock), ..Default::default() };
    bundles::pack::pack(&layout, &delta, &opts).unwrap();
    let server = bundle_server(&[&fx.bundle, &delta]);
    let host = server.host();
    // 1.1.3 shares its base layer with the base bundle: that blob comes from there.
    let dir = fx.dir.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/mosipid/config-server:1.1.3"),
        &format!("dir:{}", dir.display()),
    ]);
    let tags = http().get(server.url("/v2/mosipid/config-server/tags/list")).send().unwrap().text().unwrap();
    assert!(tags.contains("1.1.2") && tags.contains("1.1.3"), "{tags}");
}

#[test]
fn registry_push_copies_a_bundle_into_distribution() {
    let fx = fixture_bundle();
    let dist = testkit::Distribution::start(testkit::DistributionOpts { tls: true, auth: true }).unwrap();
    let opts = registry::push::PushOptions {
        credentials: Some((dist.user().unwrap().into(), dist.password().unwrap().into())),
        plain_http: false,
        ca_file: dist.ca_pem(),
    };
    let report =
        registry::push::push_bundle(std::slice::from_ref(&fx.bundle), &format!("{}/mirror", dist.host_port()), &opts)
            .unwrap();
    assert!(report.blobs_uploaded > 0 && report.artifacts >= 6, "{report:?}");
    let cert_dir = dist.cert_dir().unwrap();
    let creds = dist.creds().unwrap();
    let image = format!("docker://{}/mirror/docker.io/mosipid/config-server:1.1.2", dist.host_port());
    let raw = skopeo(&["inspect", "--raw", "--cert-dir", cert_dir.to_str().unwrap(), "--creds", &creds, &image]);
    assert_eq!(digest_of_inspect(&raw), fx.multiarch.digest().to_string());
    // A second push finds everything there already.
    let again =
        registry::push::push_bundle(std::slice::from_ref(&fx.bundle), &format!("{}/mirror", dist.host_port()), &opts)
            .unwrap();
    assert_eq!(again.blobs_uploaded, 0, "{again:?}");
}

#[test]
fn a_bare_name_two_hosts_share_is_served_only_with_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut w = bundles::layout_writer::LayoutWriter::open(&layout).unwrap();
    let docker = add_single(&mut w, "docker.io/example/tool:1.0", "amd64");
    let quay = add_single(&mut w, "quay.io/example/tool:1.0", "arm64");
    w.finish().unwrap();
    let bundle = dir.path().join("bundle");
    bundles::pack::pack(&layout, &bundle, &bundles::pack::PackOptions::default()).unwrap();
    let server = bundle_server(&[&bundle]);
    let c = http();
    let digest_at = |path: &str| {
        let resp = c.head(server.url(path)).send().unwrap();
        resp.headers().get("docker-content-digest").map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(digest_at("/v2/example/tool/manifests/1.0"), None, "ambiguous without a host");
    assert_eq!(digest_at("/v2/example/tool/manifests/1.0?ns=docker.io").unwrap(), docker.digest().to_string());
    assert_eq!(digest_at("/v2/example/tool/manifests/1.0?ns=quay.io").unwrap(), quay.digest().to_string());
    assert_eq!(digest_at("/v2/quay.io/example/tool/manifests/1.0").unwrap(), quay.digest().to_string());
}
