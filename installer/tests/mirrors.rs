//! `airgap install mirrors`: golden files of the three formats, the tree written with --out, and
//! the upstream hosts read from a bundle and from a real registry's catalog (`airgap registry
//! serve` on a directory that crane pushed images into).

mod golden;

use std::path::Path;
use std::process::Command;

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use installer::mirrors::{self, containerd, eksctl, print_files, rke2, Mirrors, NodeFile};
use serde_json::json;
use testkit::{run, tool, SiteRegistry};

/// Stands for the site CA: the generators copy it, they never parse it.
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfixtureSiteCA0123456789abcdef\n-----END CERTIFICATE-----\n";
const REGISTRY: &str = "https://registry.sandbox.xyz.net:5000";

fn fixed() -> Mirrors {
    let hosts = ["quay.io", "docker.io", "ghcr.io", "docker.io"].map(String::from);
    Mirrors::new(REGISTRY, hosts, Some(CA.to_string())).unwrap()
}

fn printed(files: &[NodeFile]) -> String {
    let mut out = Vec::new();
    print_files(&mut out, files).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn containerd_tree_matches_its_golden_file() {
    golden::check("mirrors/containerd.txt", &printed(&containerd(&fixed())));
}

#[test]
fn rke2_registries_match_their_golden_file() {
    golden::check("mirrors/rke2.txt", &printed(&rke2(&fixed()).unwrap()));
}

#[test]
fn eksctl_commands_match_their_golden_file() {
    golden::check("mirrors/eksctl.txt", &printed(&eksctl(&fixed()).unwrap()));
}

#[test]
fn hosts_toml_says_what_containerd_reads() {
    let files = containerd(&fixed());
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "docker.io/hosts.toml",
            "ghcr.io/hosts.toml",
            "quay.io/hosts.toml",
            "registry.sandbox.xyz.net:5000/ca.crt",
            "README.md"
        ]
    );
    let docker: toml::Table = toml::from_str(&files[0].content).unwrap();
    assert_eq!(docker["server"].as_str(), Some("https://registry-1.docker.io"));
    let host = &docker["host"][REGISTRY];
    assert_eq!(host["capabilities"].as_array().unwrap().len(), 2);
    assert_eq!(host["ca"].as_str(), Some("/etc/containerd/certs.d/registry.sandbox.xyz.net:5000/ca.crt"));
    assert!(host.get("skip_verify").is_none());
    let quay: toml::Table = toml::from_str(&files[2].content).unwrap();
    assert_eq!(quay["server"].as_str(), Some("https://quay.io"));
    assert_eq!(files[3].content, CA);

    let plain = Mirrors::new("http://10.0.0.5:5000", ["docker.io".to_string()], None).unwrap();
    let files = containerd(&plain);
    let t: toml::Table = toml::from_str(&files[0].content).unwrap();
    assert!(t["host"]["http://10.0.0.5:5000"].get("ca").is_none());
    assert_eq!(files.len(), 2, "no CA file without --ca-file");
}

#[test]
fn certs_dir_moves_the_tree_and_the_ca_path_in_it() {
    let files = containerd(&fixed().with_certs_dir("/var/lib/node/certs.d/").unwrap());
    let docker: toml::Table = toml::from_str(&files[0].content).unwrap();
    let ca = docker["host"][REGISTRY]["ca"].as_str();
    assert_eq!(ca, Some("/var/lib/node/certs.d/registry.sandbox.xyz.net:5000/ca.crt"));
    assert!(files.iter().all(|f| f.node_path == format!("/var/lib/node/certs.d/{}", f.path)), "{files:?}");
    assert!(files.last().unwrap().content.contains("config_path = \"/var/lib/node/certs.d\""));
    let err = fixed().with_certs_dir("certs.d").unwrap_err().to_string();
    assert!(err.contains("absolute path"), "{err}");
}

#[test]
fn out_writes_the_printed_files_and_replaces_them() {
    let t = tempfile::tempdir().unwrap();
    let files = containerd(&fixed());
    mirrors::write_files(t.path(), &files).unwrap();
    mirrors::write_files(t.path(), &files).unwrap();
    for f in &files {
        assert_eq!(std::fs::read_to_string(t.path().join(&f.path)).unwrap(), f.content, "{}", f.path);
    }
    let mut leftovers = Vec::new();
    for dir in ["docker.io", "quay.io", "ghcr.io", "."] {
        for e in std::fs::read_dir(t.path().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".partial") {
                leftovers.push(name);
            }
        }
    }
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let err = |r: anyhow::Result<Mirrors>| format!("{:#}", r.unwrap_err());
    assert!(err(Mirrors::new(REGISTRY, Vec::<String>::new(), None)).contains("no upstream hosts"));
    assert!(err(Mirrors::new("ftp://x", ["docker.io".to_string()], None)).contains("base URL"));
    assert!(err(Mirrors::new("https://r:5000/v2/", ["docker.io".to_string()], None)).contains("base URL"));
    assert!(err(Mirrors::new(REGISTRY, ["mosipid".to_string()], None)).contains("'mosipid' is not a registry host"));
    assert!(err(Mirrors::new(REGISTRY, ["docker.io".to_string()], Some("key".into()))).contains("no PEM certificate"));
}

/// A minimal image manifest, enough for the bundle to list it as an image.
fn add_image(w: &mut LayoutWriter, reference: &str) {
    let config = w.put_bytes(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let config = config.unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
        "layers": [],
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add(reference, Kind::Image, desc, &[]);
}

#[test]
fn hosts_come_from_the_images_a_bundle_carries() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    add_image(&mut w, "docker.io/mosipid/config-server:1.1.2");
    add_image(&mut w, "quay.io/jetstack/cert-manager-controller:v1.7.1");
    add_image(&mut w, "nginx:1.25");
    w.add_single_layer("files.airgap.local/helm:v3.8.2", Kind::File, "helm", &b"#!/bin/sh\n"[..], None, None).unwrap();
    w.finish().unwrap();
    let bundle = t.path().join("bundle");
    bundles::pack::pack(&layout, &bundle, &bundles::pack::PackOptions::default()).unwrap();
    assert_eq!(mirrors::from_bundle(&bundle).unwrap(), ["docker.io", "quay.io"]);
}

/// Real images made by the test (testkit's generated layers), pushed under their upstream names.
fn push_images(work: &Path, registry: &str, references: &[&str]) {
    for (i, reference) in references.iter().enumerate() {
        let layout = work.join(format!("layout-{i}"));
        let files = testkit::images::Files::from([("etc/hello".to_string(), format!("{reference}\n").into_bytes())]);
        let spec = testkit::images::ImageSpec {
            reference,
            platforms: &["linux/amd64"],
            shared_layers: std::slice::from_ref(&files),
        };
        testkit::images::write_layout(&layout, &[spec]);
        let target = format!("{registry}/{reference}");
        run(Command::new(tool("crane")).args(["push", "--insecure"]).arg(&layout).arg(&target)).unwrap();
    }
}

#[test]
fn hosts_come_from_a_real_registry_catalog_page_by_page() {
    let t = tempfile::tempdir().unwrap();
    let reg = SiteRegistry::storage(&t.path().join("storage")).start().unwrap();
    let host = reg.address().to_string();
    push_images(
        t.path(),
        &host,
        &[
            "docker.io/library/busybox:1.36",
            "quay.io/jetstack/cert-manager-cainjector:v1.7.1",
            "files.airgap.local/helm:v3.8.2",
        ],
    );
    let hosts = mirrors::from_catalog(&format!("http://{host}"), None, 1).unwrap();
    assert_eq!(hosts, ["docker.io", "quay.io"]);
    let catalog_requests = reg.access_log().lines().filter(|l| l.contains("/v2/_catalog")).count();
    assert_eq!(catalog_requests, 3, "one request per repository with n=1:\n{}", reg.access_log());
}

/// A containerd of the test's own (root, state and socket in a temp folder), killed on drop.
struct PrivateContainerd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl PrivateContainerd {
    fn start(dir: &Path) -> PrivateContainerd {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(tool("containerd"))
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = PrivateContainerd { child, socket };
        for _ in 0..100 {
            if c.ctr(&["version"]).is_ok() {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("containerd did not start: {}", std::fs::read_to_string(dir.join("containerd.log")).unwrap());
    }

    fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(tool("ctr")).arg("--address").arg(&self.socket).args(args))
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole path: hosts from the registry's catalog, the generated certs.d tree, and a real
/// containerd pulling images by their upstream names from the site registry.
#[test]
fn containerd_pulls_upstream_names_from_the_site_registry() {
    let t = tempfile::tempdir().unwrap();
    let reg = SiteRegistry::storage(&t.path().join("storage")).start().unwrap();
    let host = reg.address().to_string();
    let images = ["docker.io/library/busybox:1.36", "quay.io/jetstack/cert-manager-cainjector:v1.7.1"];
    push_images(t.path(), &host, &images);
    let url = format!("http://{host}");
    let hosts = mirrors::from_catalog(&url, None, mirrors::CATALOG_PAGE).unwrap();
    let certs_d = t.path().join("certs.d");
    mirrors::write_files(&certs_d, &containerd(&Mirrors::new(&url, hosts, None).unwrap())).unwrap();

    let containerd = PrivateContainerd::start(&t.path().join("containerd"));
    let hosts_dir = certs_d.to_str().unwrap();
    for image in images {
        containerd.ctr(&["images", "pull", "--snapshotter", "native", "--hosts-dir", hosts_dir, image]).unwrap();
    }
    let listed = containerd.ctr(&["images", "ls", "-q"]).unwrap();
    for image in images {
        assert!(listed.lines().any(|l| l == image), "{image} not in:\n{listed}");
    }
    let log = reg.access_log();
    assert!(log.contains("ns=docker.io") && log.contains("ns=quay.io"), "pulls went through the mirror:\n{log}");
}
