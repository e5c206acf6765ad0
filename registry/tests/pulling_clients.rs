//! Container engines that pull images the way a site's nodes do, from a bundle served in place:
//! podman by the original name (under the registry's host, and through a registries.conf mirror
//! of docker.io), containerd's ctr through a hosts.toml mirror, which adds `?ns=docker.io`.

mod common;

use std::process::Command;

use common::*;
use testkit::{Containerd, Podman};

const IMAGE: &str = "docker.io/mosipid/config-server:1.1.2";

#[test]
fn podman_pulls_by_the_original_name_and_through_a_mirror() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let host = server.host();
    let podman = Podman::new().unwrap();
    let podman_run = |args: &[&str]| run(podman.cmd().args(args)).unwrap();

    podman_run(&["pull", "--tls-verify=false", &format!("{host}/{IMAGE}")]);
    podman.mirror("docker.io", &format!("{host}/docker.io")).unwrap();
    podman_run(&["pull", IMAGE]);

    let listed = podman_run(&["images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]);
    let index = fx.multiarch.digest().to_string();
    for name in [format!("{host}/{IMAGE}"), IMAGE.to_string()] {
        assert!(listed.lines().any(|l| l == format!("{name} {index}")), "{name} with {index} in:\n{listed}");
    }
    let arch = podman_run(&["image", "inspect", "--format", "{{.Architecture}}", IMAGE]);
    assert_eq!(arch.trim(), "amd64", "the platform of this machine was chosen from the index");
    let log = server.log();
    assert!(log.contains("GET /v2/docker.io/mosipid/config-server/manifests/1.1.2 200"), "{log}");
}

#[test]
fn containerd_pulls_through_a_mirror_with_the_ns_parameter() {
    let fx = fixture_bundle();
    let server = bundle_server(&[&fx.bundle]);
    let containerd = Containerd::start().unwrap();
    let hosts = containerd.hosts_dir("docker.io", &format!("http://{}", server.host())).unwrap();
    let ctr = |args: &[&str]| -> String {
        let mut cmd: Command = containerd.ctr();
        run(cmd.args(args)).unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail()))
    };
    ctr(&["images", "pull", "--snapshotter", "native", "--hosts-dir", hosts.to_str().unwrap(), IMAGE]);
    let listed = ctr(&["images", "ls"]);
    let line = listed.lines().find(|l| l.starts_with(IMAGE)).unwrap_or_else(|| panic!("{IMAGE} not in:\n{listed}"));
    assert!(line.contains(&fx.multiarch.digest().to_string()), "{line}");
    let log = server.log();
    assert!(log.contains("/v2/mosipid/config-server/manifests/1.1.2?ns=docker.io 200"), "{log}");
    assert!(log.lines().any(|l| l.contains("/blobs/sha256:") && l.contains("?ns=docker.io 200")), "{log}");
}
