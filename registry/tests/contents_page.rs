//! The contents page (`GET /`) as an auditor meets it: read in a real headless Chromium, which
//! renders what is served (artifacts by kind, names, digests, platforms, sizes, signature status,
//! SBOM links) with no script and nothing from elsewhere, and a bundle whose names are hostile
//! HTML shows them as text. Bundles are made by the test (tests/common), signed with a key that
//! the stock minisign makes.

mod common;

use std::path::Path;
use std::process::Command;

use bundles::artifact::{Kind, ANNOTATION_PLATFORMS};
use bundles::layout_writer::LayoutWriter;
use common::{add_chart, add_multiarch, add_single, bundle_server, http, run, tool};

/// What would run if the page did not escape: it marks the document, which the DOM shows.
const HOSTILE_DIR: &str = "bundle<img src=x onerror=document.body.setAttribute('data-pwned','1')>";
const HOSTILE_PLATFORM: &str = "linux/amd64\"><script>document.title='pwned'</script>";

fn chromium(args: &[&str], profile: &Path) -> String {
    run(Command::new(tool("chromium"))
        // As root in a container, without the network this machine does not have.
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args))
    .unwrap()
}

fn signed_bundle(dir: &Path) -> std::path::PathBuf {
    let (pk, sk) = (dir.join("test.pub"), dir.join("test.key"));
    run(Command::new(tool("minisign")).args(["-G", "-W", "-p"]).arg(&pk).arg("-s").arg(&sk)).unwrap();
    let layout = dir.join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    add_multiarch(&mut w, "docker.io/mosipid/config-server:1.1.2");
    add_single(&mut w, "quay.io/example/tool:2.0", "amd64");
    add_chart(&mut w, dir, "charts.example.com/stable/mychart:0.1.0", "mychart", "0.1.0");
    w.add_single_layer("files.example.com/tools/hello:1.0", Kind::File, "hello.txt", &b"hello, site\n"[..], None, None)
        .unwrap();
    w.finish().unwrap();
    let bundle = dir.join("bundle");
    let opts = bundles::pack::PackOptions {
        sign_key: Some(bundles::sign::load_secret_key(&sk).unwrap()),
        ..Default::default()
    };
    bundles::pack::pack(&layout, &bundle, &opts).unwrap();
    bundle
}

/// An unsigned bundle whose folder name and an image's platform are markup (references are
/// refused by the registry when they are not valid names, so they cannot be).
fn hostile_bundle(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("hostile-layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let desc = add_single(&mut w, "docker.io/evil/name:1", "amd64");
    w.add("docker.io/evil/name:1", Kind::Image, desc, &[(ANNOTATION_PLATFORMS, HOSTILE_PLATFORM)]);
    w.finish().unwrap();
    let bundle = dir.join(HOSTILE_DIR);
    bundles::pack::pack(&layout, &bundle, &Default::default()).unwrap();
    bundle
}

#[test]
fn chromium_shows_what_is_served_and_hostile_names_stay_text() {
    let tmp = tempfile::tempdir().unwrap();
    let signed = signed_bundle(tmp.path());
    let hostile = hostile_bundle(tmp.path());
    let server = bundle_server(&[&signed, &hostile]);

    // The page as served: HTML, no script, nothing from elsewhere, a policy that forbids both.
    let resp = http().get(server.url("/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let policy = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().unwrap();
    assert!(!html.contains("<script") && !html.contains("<img"), "markup from a bundle reached the page:\n{html}");
    assert!(!html.contains("src=\"") && !html.contains("href=\"http"), "the page loads nothing from elsewhere");
    assert_eq!(http().get(server.url("/ui/")).send().unwrap().text().unwrap(), html, "/ui/ is the same page");

    // Rendered by a real browser: the DOM after everything the page could run has run.
    let profile = tmp.path().join("chromium-profile");
    let dom = chromium(&["--dump-dom", &server.url("/")], &profile);
    for text in [
        "What this registry serves",
        "Images (2)",
        "Helm charts (1)",
        "Files (1)",
        "docker.io/mosipid/config-server:1.1.2",
        "quay.io/example/tool:2.0",
        "charts.example.com/stable/mychart:0.1.0",
        "files.example.com/tools/hello:1.0",
        "linux/amd64, linux/arm64",
        "Signed: ",
        "Not signed.",
        "SPDX 2.3",
        "CycloneDX 1.5",
    ] {
        assert!(dom.contains(text), "the rendered page lacks {text:?}:\n{dom}");
    }
    let lock = bundles::Bundle::open(&signed).unwrap().lock().unwrap();
    for a in &lock.artifacts {
        assert!(dom.contains(a.digest.as_ref()), "{} is shown with its digest {}", a.reference, a.digest);
    }
    // The hostile names are there, as text, and nothing of them ran.
    assert!(dom.contains("bundle&lt;img src=x onerror="), "{dom}");
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "{dom}");
    assert!(!dom.contains("<body data-pwned") && !dom.contains("<title>pwned"), "a name ran as markup:\n{dom}");

    // Its SBOM links serve the files beside the parts.
    let spdx = http().get(server.url("/ui/bundles/0/sbom.spdx.json")).send().unwrap();
    assert_eq!(spdx.status(), 200);
    assert_eq!(spdx.bytes().unwrap().as_ref(), std::fs::read(signed.join("sbom.spdx.json")).unwrap());
    assert_eq!(http().get(server.url("/ui/bundles/0/bundle.json")).send().unwrap().status(), 404);
    assert_eq!(http().get(server.url("/ui/bundles/9/sbom.cdx.json")).send().unwrap().status(), 404);

    // And a picture of it, as a person sees it.
    let shot = std::env::var_os("AIRGAP_SCREENSHOT").map_or_else(|| tmp.path().join("contents.png"), Into::into);
    chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1280,1400", &server.url("/")], &profile);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a screenshot of the page: {} bytes",
        png.len()
    );
}
