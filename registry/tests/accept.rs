//! Content negotiation on manifest GET and HEAD: the same manifests pushed by skopeo into this
//! registry and into CNCF distribution 2.8 (Debian's), then fetched with the same Accept headers
//! from both; every status and error code must match. distribution refuses OCI types to a client that does not
//! name them (`*/*` does not count), and by tag refuses Docker types to a client that would need
//! schema 1.

mod common;

use std::process::Command;

use common::*;
use testkit::{Distribution, DistributionOpts};

const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[test]
fn manifests_are_negotiated_as_distribution_does() {
    let fx = fixture_bundle();
    let ours = storage_server(&fx.dir.path().join("store"));
    let peer = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
    let layout = fx.dir.path().join("layout");
    let multiarch = format!("oci:{}:docker.io/mosipid/config-server:1.1.2", layout.display());
    let single = format!("oci:{}:quay.io/example/tool:2.0", layout.display());
    // (tag, source, extra skopeo flags): one of each manifest type.
    let pushes: [(&str, &str, &[&str]); 4] = [
        ("oci-index", &multiarch, &["--all", "--preserve-digests"]),
        ("oci-manifest", &single, &["--preserve-digests"]),
        ("docker-list", &multiarch, &["--all", "--format", "v2s2"]),
        ("docker-manifest", &single, &["--format", "v2s2"]),
    ];
    for host in [ours.host(), peer.host_port()] {
        for (tag, src, flags) in &pushes {
            let dest = format!("docker://{host}/negotiation/image:{tag}");
            run(Command::new(tool("skopeo"))
                .args(["copy", "--dest-tls-verify=false"])
                .args(*flags)
                .args([*src, dest.as_str()]))
            .unwrap();
        }
    }
    let accepts: [&[&str]; 9] = [
        &[],
        &["*/*"],
        &[SCHEMA1],
        &[OCI_MANIFEST],
        &[OCI_INDEX],
        &[DOCKER_MANIFEST],
        &[DOCKER_LIST],
        &[DOCKER_MANIFEST, SCHEMA1],
        &[&format!("{OCI_INDEX};q=0.9, {OCI_MANIFEST}")],
    ];
    let plain = bare_http();
    let status = |base: &str, reference: &str, accept: &[&str], head: bool| {
        let url = format!("{base}/v2/negotiation/image/manifests/{reference}");
        let mut req = if head { plain.head(url) } else { plain.get(url) };
        for a in accept {
            req = req.header("Accept", *a);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or_default();
        (status, body["errors"][0]["code"].as_str().map(str::to_string))
    };
    let (mut differ, mut seen) = (Vec::new(), std::collections::BTreeSet::new());
    for (tag, _, _) in &pushes {
        let digest = run(Command::new(tool("skopeo"))
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}/negotiation/image:{tag}", peer.host_port())))
        .unwrap();
        for reference in [tag.to_string(), digest.trim().to_string()] {
            for accept in &accepts {
                for head in [false, true] {
                    let (a, b) = (
                        status(&ours.url(""), &reference, accept, head),
                        status(&peer.url(), &reference, accept, head),
                    );
                    seen.insert(b.0);
                    if a != b {
                        differ.push(format!(
                            "{tag} as {reference} Accept {accept:?} head={head}: ours {a:?}, distribution {b:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(differ.is_empty(), "statuses differ:\n{}", differ.join("\n"));
    assert_eq!(seen, [200, 400, 404].into(), "the cases cover every answer");
}
