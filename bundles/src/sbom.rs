//! SBOMs of what a bundle carries, in SPDX 2.3 JSON and CycloneDX 1.5 JSON, each artifact with
//! a purl and its digests. Both are pure functions of the artifact list and the given time, so
//! a rebuilt bundle has the same SBOMs.

use serde_json::{json, Value};

use crate::artifact::{Artifact, Kind, Reference};
use crate::carried_binary::Described;

/// The SPDX SBOM's file name.
pub const SPDX_FILE: &str = "sbom.spdx.json";
/// The CycloneDX SBOM's file name.
pub const CYCLONEDX_FILE: &str = "sbom.cdx.json";
/// How the SBOMs mark the airgap binary beside the parts: its SPDX id, and the `airgap:kind`
/// property of its CycloneDX component.
pub const BINARY_SPDX_ID: &str = "SPDXRef-airgap-binary";
/// The `airgap:kind` of the airgap binary.
pub const BINARY_KIND: &str = "binary";

/// The SBOM formats a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX JSON.
    CycloneDx,
}

impl std::str::FromStr for Format {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "spdx" => Ok(Format::Spdx),
            "cyclonedx" | "cdx" => Ok(Format::CycloneDx),
            other => Err(crate::Error::malformed(format!("unknown SBOM format '{other}' (spdx or cyclonedx)"))),
        }
    }
}

impl Format {
    /// The file the format is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Spdx => SPDX_FILE,
            Format::CycloneDx => CYCLONEDX_FILE,
        }
    }
}

/// Percent-encodes what a purl component may not carry as it is.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Named {
    name: String,
    version: String,
    purl: String,
}

fn describe(a: &Artifact) -> Named {
    let parsed = Reference::parse(&a.reference).ok();
    let (name, repo_url, tag) = match &parsed {
        Some(r) => (r.repository.rsplit('/').next().unwrap_or(&r.repository).to_string(), r.name(), r.tag.clone()),
        None => (a.reference.clone(), a.reference.clone(), None),
    };
    let version = tag.clone().unwrap_or_else(|| a.digest.to_string());
    let purl = match a.kind {
        Kind::Image | Kind::Chart => {
            let mut q = vec![format!("repository_url={}", enc(&repo_url))];
            if let [platform] = a.platforms.as_slice() {
                if let Some(arch) = platform.split('/').nth(1) {
                    q.push(format!("arch={}", enc(arch)));
                }
            }
            if let Some(t) = &tag {
                q.push(format!("tag={}", enc(t)));
            }
            format!("pkg:oci/{}@{}?{}", enc(&name), enc(a.digest.as_ref()), q.join("&"))
        }
        Kind::File | Kind::Git => {
            let mut q = Vec::new();
            if let Some(c) = &a.content {
                q.push(format!("checksum={}", enc(c.digest.as_ref())));
            }
            if let Some(src) = &a.source {
                let key = if a.kind == Kind::Git { "vcs_url" } else { "download_url" };
                q.push(format!("{key}={}", enc(src)));
            }
            let qs = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
            format!("pkg:generic/{}@{}{qs}", enc(&name), enc(&version))
        }
    };
    Named { name, version, purl }
}

/// The purl both SBOMs give an artifact.
pub fn purl(a: &Artifact) -> String {
    describe(a).purl
}

/// The SHA-256 (hex) both SBOMs give an artifact: for a file or a repository its content's, which
/// is what an auditor compares with a published checksum.
pub fn checksum(a: &Artifact) -> &str {
    a.content.as_ref().map_or(&a.digest, |c| &c.digest).digest()
}

/// The airgap binary beside the parts: not in the archive's index, but on the media all the same.
fn binary_purl(b: &Described) -> String {
    let version = b.version.as_deref().map(|v| format!("@{}", enc(v))).unwrap_or_default();
    format!("pkg:generic/airgap{version}?checksum=sha256%3A{}", b.sha256)
}

fn binary_comment(b: &Described) -> String {
    format!("the airgap binary beside the parts, {} ({} bytes)", b.file_name, b.size)
}

/// The SPDX document for `artifacts` (and the binary beside the parts).
pub fn spdx(artifacts: &[Artifact], binary: Option<&Described>, document_id: &str, created: &str) -> Value {
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    if let Some(b) = binary {
        packages.push(json!({
            "SPDXID": BINARY_SPDX_ID,
            "name": b.file_name,
            "versionInfo": b.version.as_deref().unwrap_or("NOASSERTION"),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": b.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "supplier": "NOASSERTION",
            "primaryPackagePurpose": "APPLICATION",
            "comment": binary_comment(b),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": binary_purl(b),
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": BINARY_SPDX_ID,
        }));
    }
    for (i, a) in artifacts.iter().enumerate() {
        let n = describe(a);
        let id = format!("SPDXRef-{}-{i}", a.kind);
        let checksums = vec![json!({"algorithm": "SHA256", "checksumValue": checksum(a)})];
        let purpose = match a.kind {
            Kind::Image => "CONTAINER",
            Kind::Chart => "APPLICATION",
            Kind::File => "FILE",
            Kind::Git => "SOURCE",
        };
        let mut package = json!({
            "SPDXID": id,
            "name": n.name,
            "versionInfo": n.version,
            "downloadLocation": a.source.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "filesAnalyzed": false,
            "checksums": checksums,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "supplier": "NOASSERTION",
            "primaryPackagePurpose": purpose,
            "comment": format!("{} {} ({}, {} bytes)", a.kind, a.reference, a.digest, a.size),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": n.purl,
            }],
        });
        if let Some(p) = &a.published {
            package["sourceInfo"] = json!(format!(
                "published SHA-256 {} read from {} ({})",
                p.digest.digest(),
                p.sha256_from,
                p.sha256_from_digest
            ));
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("airgap-bundle-{}", &document_id[..12.min(document_id.len())]),
        "documentNamespace": format!("https://spdx.org/spdxdocs/airgap-bundle-{document_id}"),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: airgap-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// A name-based UUID from the document id, so the serial number is stable across rebuilds.
fn uuid_from(document_id: &str) -> String {
    let h = crate::digest::sha256_hex(document_id.as_bytes());
    let mut b = hex::decode(&h[..32]).expect("hex from our hasher");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// The CycloneDX document for `artifacts` (and the binary beside the parts).
pub fn cyclonedx(artifacts: &[Artifact], binary: Option<&Described>, document_id: &str, created: &str) -> Value {
    let carried_binary = binary.map(|b| {
        let mut c = json!({
            "type": "application",
            "bom-ref": format!("binary:{}", b.file_name),
            "name": b.file_name,
            "hashes": [{"alg": "SHA-256", "content": b.sha256}],
            "purl": binary_purl(b),
            "description": binary_comment(b),
            "properties": [{"name": "airgap:kind", "value": BINARY_KIND}],
        });
        if let Some(v) = &b.version {
            c["version"] = json!(v);
        }
        c
    });
    let components: Vec<Value> = carried_binary
        .into_iter()
        .chain(artifacts.iter().map(|a| {
            let n = describe(a);
            let ty = match a.kind {
                Kind::Image => "container",
                Kind::Chart => "application",
                Kind::File => "file",
                Kind::Git => "data",
            };
            let hashes = vec![json!({"alg": "SHA-256", "content": checksum(a)})];
            let mut props = vec![
                json!({"name": "airgap:kind", "value": a.kind.to_string()}),
                json!({"name": "airgap:reference", "value": a.reference}),
                json!({"name": "airgap:digest", "value": a.digest}),
            ];
            props.extend(a.platforms.iter().map(|p| json!({"name": "airgap:platform", "value": p})));
            if let Some(p) = &a.published {
                props.extend([
                    json!({"name": "airgap:publishedDigest", "value": p.digest}),
                    json!({"name": "airgap:sha256From", "value": p.sha256_from}),
                    json!({"name": "airgap:sha256FromDigest", "value": p.sha256_from_digest}),
                ]);
            }
            let mut c = json!({
                "type": ty,
                "bom-ref": format!("{}:{}", a.kind, a.reference),
                "name": n.name,
                "version": n.version,
                "hashes": hashes,
                "purl": n.purl,
                "properties": props,
            });
            if let Some(src) = &a.source {
                let kind = if a.kind == Kind::Git { "vcs" } else { "distribution" };
                c["externalReferences"] = json!([{"type": kind, "url": src}]);
            }
            c
        }))
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid_from(document_id)),
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "airgap", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "application", "bom-ref": "bundle", "name": "airgap-bundle", "version": document_id},
        },
        "components": components,
    })
}

/// A document as written: pretty JSON ending in a newline.
pub fn to_bytes(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("JSON serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{Content, Published};
    use crate::digest::sha256_digest;

    fn image() -> Artifact {
        Artifact {
            kind: Kind::Image,
            reference: "docker.io/mosipid/config-server:1.1.2".into(),
            digest: sha256_digest(&"a".repeat(64)),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 10,
            platforms: vec!["linux/amd64".into()],
            source: None,
            content: None,
            published: None,
        }
    }

    #[test]
    fn purls() {
        let n = describe(&image());
        assert_eq!(
            n.purl,
            format!(
                "pkg:oci/config-server@sha256%3A{}?repository_url=docker.io/mosipid/config-server&arch=amd64&tag=1.1.2",
                "a".repeat(64)
            )
        );
        let file = Artifact {
            kind: Kind::File,
            reference: "files.airgap.local/tools/kubectl:1.23.6".into(),
            source: Some("https://dl.k8s.io/release/v1.23.6/bin/linux/amd64/kubectl".into()),
            content: Some(Content { name: "kubectl".into(), digest: sha256_digest(&"b".repeat(64)), size: 1 }),
            platforms: vec![],
            ..image()
        };
        let p = describe(&file).purl;
        assert!(p.starts_with("pkg:generic/kubectl@1.23.6?checksum=sha256%3Abbbb"), "{p}");
        assert!(p.contains("download_url=https%3A//dl.k8s.io/"), "{p}");
    }

    #[test]
    fn a_checksum_read_from_a_checksums_file_is_named() {
        let from = "https://github.com/weaveworks/eksctl/releases/download/v0.121.0/eksctl_checksums.txt";
        let file = Artifact {
            kind: Kind::File,
            reference: "files.airgap.local/eksctl:0.121.0-linux-amd64".into(),
            published: Some(Published {
                digest: sha256_digest(&"c".repeat(64)),
                sha256_from: from.into(),
                sha256_from_digest: sha256_digest(&"d".repeat(64)),
            }),
            ..image()
        };
        let s = spdx(std::slice::from_ref(&file), None, "abc", "1970-01-01T00:00:00Z");
        let info = s["packages"][0]["sourceInfo"].as_str().unwrap();
        assert!(info.contains(from) && info.contains(&"c".repeat(64)) && info.contains(&"d".repeat(64)), "{info}");
        let c = cyclonedx(&[file], None, "abc", "1970-01-01T00:00:00Z");
        let props = c["components"][0]["properties"].as_array().unwrap();
        assert!(props.contains(&json!({"name": "airgap:sha256From", "value": from})), "{props:?}");
        assert!(spdx(&[image()], None, "abc", "1970-01-01T00:00:00Z")["packages"][0].get("sourceInfo").is_none());
    }

    #[test]
    fn documents_are_stable_and_complete() {
        let a = vec![image()];
        assert_eq!(spdx(&a, None, "abc", "1970-01-01T00:00:00Z"), spdx(&a, None, "abc", "1970-01-01T00:00:00Z"));
        let c = cyclonedx(&a, None, "abc", "1970-01-01T00:00:00Z");
        assert_eq!(c["components"][0]["hashes"][0]["content"], "a".repeat(64));
        assert_eq!(c["serialNumber"].as_str().unwrap().len(), "urn:uuid:".len() + 36);
        let s = spdx(&a, None, "abc", "1970-01-01T00:00:00Z");
        assert_eq!(s["packages"][0]["primaryPackagePurpose"], "CONTAINER");
    }

    #[test]
    fn the_carried_binary_is_named_in_both() {
        let b = Described {
            file_name: "airgap-linux-amd64".into(),
            version: Some("0.1.0".into()),
            sha256: "e".repeat(64),
            size: 7,
        };
        let s = spdx(&[image()], Some(&b), "abc", "1970-01-01T00:00:00Z");
        assert_eq!(s["packages"][0]["name"], "airgap-linux-amd64");
        assert_eq!(s["packages"][0]["checksums"][0]["checksumValue"], "e".repeat(64));
        assert_eq!(s["relationships"].as_array().unwrap().len(), 2);
        let c = cyclonedx(&[image()], Some(&b), "abc", "1970-01-01T00:00:00Z");
        assert_eq!(c["components"][0]["name"], "airgap-linux-amd64");
        assert_eq!(
            c["components"][0]["purl"],
            format!("pkg:generic/airgap@0.1.0?checksum=sha256%3A{}", "e".repeat(64))
        );
        assert_eq!(c["components"].as_array().unwrap().len(), 2);
    }
}
