//! What a bundle carries, as people name it: images, charts, files and git repositories, each
//! a descriptor in `index.json` annotated with its original reference and its kind.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::{blob_path, parse_sha256, Digest};
use crate::error::{Error, Result};
use crate::layout::{carried_platforms, descriptor_digest, image_platform, BlobStore, Walk};

/// The reference an artifact was carried under, on its descriptor in `index.json`.
pub const ANNOTATION_REF: &str = "org.opencontainers.image.ref.name";
/// A layer's file name, as `oras` names it.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// The artifact's [`Kind`].
pub const ANNOTATION_KIND: &str = "io.airgap.kind";
/// Where the artifact came from when that is not its reference: a chart repository, a URL.
pub const ANNOTATION_SOURCE: &str = "io.airgap.source";
/// Comma-separated platforms carried for a multi-platform image whose index names more.
pub const ANNOTATION_PLATFORMS: &str = "io.airgap.platforms";
/// On a file whose published checksum was read from a checksums file: the download's digest,
/// that file's URL and the checksums file's own digest (see [`Published`]).
pub const ANNOTATION_PUBLISHED_DIGEST: &str = "io.airgap.published.digest";
/// The URL of the checksums file a file's checksum was read from.
pub const ANNOTATION_PUBLISHED_SHA256_FROM: &str = "io.airgap.published.sha256-from";
/// The digest of that checksums file.
pub const ANNOTATION_PUBLISHED_SHA256_FROM_DIGEST: &str = "io.airgap.published.sha256-from.digest";

/// On a file artifact: the file should be made executable when written out.
pub const ANNOTATION_EXECUTABLE: &str = "io.airgap.file.executable";
/// On a file artifact: the `os/arch` a tool binary is for.
pub const ANNOTATION_FILE_PLATFORM: &str = "io.airgap.file.platform";

/// An OCI image manifest.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker schema 2 manifest.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker schema 2 manifest list.
pub const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type airgap reads, indexes first: what a client puts in `Accept` (see
/// [`manifest_accept`]) and what a registry stores as a manifest.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] =
    [OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE];
/// An OCI image config.
pub const OCI_IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// An OCI gzip-compressed layer.
pub const OCI_LAYER_GZIP_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A Helm chart's config (Chart.yaml as JSON), as `helm push` writes it.
pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
/// A Helm chart's single layer: the chart's `.tgz` as `helm package` wrote it.
pub const HELM_CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The `artifactType` of a file artifact.
pub const FILE_ARTIFACT_TYPE: &str = "application/vnd.airgap.file.v1";
/// The `artifactType` of a git repository artifact.
pub const GIT_ARTIFACT_TYPE: &str = "application/vnd.airgap.git.v1";
/// A file artifact's single layer: the file's bytes as they are, named by its title annotation
/// (the layout `oras push` writes, so `oras pull` gets the file back under its name).
pub const FILE_LAYER_MEDIA_TYPE: &str = "application/octet-stream";
/// A git artifact's single layer: an uncompressed tar of a bare repository prepared for git's
/// dumb HTTP protocol (`git update-server-info` run, objects packed).
pub const GIT_LAYER_MEDIA_TYPE: &str = "application/vnd.airgap.git.repository.v1.tar";
/// The empty config of an artifact that needs none.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The `Accept` header of a manifest request: every type of [`MANIFEST_MEDIA_TYPES`].
pub fn manifest_accept() -> String {
    MANIFEST_MEDIA_TYPES.join(", ")
}

/// What an artifact is, and so how it is stored and served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A container image (manifest or index).
    Image,
    /// A Helm chart.
    Chart,
    /// A file or tool binary.
    File,
    /// A git repository.
    Git,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Image => "image",
            Kind::Chart => "chart",
            Kind::File => "file",
            Kind::Git => "git",
        })
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "image" => Ok(Kind::Image),
            "chart" => Ok(Kind::Chart),
            "file" => Ok(Kind::File),
            "git" => Ok(Kind::Git),
            other => Err(Error::malformed(format!("unknown artifact kind '{other}' (image, chart, file or git)"))),
        }
    }
}

/// One thing a bundle carries, as its lock lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// What it is.
    pub kind: Kind,
    /// The reference it is carried under (see [`crate::naming`]).
    pub reference: String,
    /// The digest of its root manifest or index.
    #[serde(deserialize_with = "crate::digest::deserialize_sha256")]
    pub digest: Digest,
    /// The media type of its root.
    pub media_type: String,
    /// The size of its root.
    pub size: u64,
    /// The platforms carried of a multi-platform image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Where it came from when that is not its reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// For files and repositories: the carried content itself (the single layer), which is what
    /// an auditor compares with a published checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// For files whose published checksum was read from a checksums file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

/// The carried content of a file or repository: its single layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The layer's title (the file name).
    pub name: String,
    /// The layer's digest.
    #[serde(deserialize_with = "crate::digest::deserialize_sha256")]
    pub digest: Digest,
    /// The layer's size.
    pub size: u64,
}

/// A download's published SHA-256 as read from the checksums file its project publishes beside it
/// (`sha256_from` in the bundle spec), so that a lock pins both and a reviewer sees the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// What the download hashes to: the archive's when a member of it is carried.
    #[serde(deserialize_with = "crate::digest::deserialize_sha256")]
    pub digest: Digest,
    /// The checksums file's URL.
    pub sha256_from: String,
    /// The checksums file's own digest, as it was read.
    #[serde(deserialize_with = "crate::digest::deserialize_sha256")]
    pub sha256_from_digest: Digest,
}

fn published(desc: &Descriptor, reference: &str) -> Result<Option<Published>> {
    let keys = [ANNOTATION_PUBLISHED_DIGEST, ANNOTATION_PUBLISHED_SHA256_FROM, ANNOTATION_PUBLISHED_SHA256_FROM_DIGEST];
    match keys.map(|k| annotation(desc, k)) {
        [None, None, None] => Ok(None),
        [Some(digest), Some(from), Some(from_digest)] => {
            let parse =
                |text: &str| parse_sha256(text).map_err(|e| Error::invalid("index.json", format!("{reference}: {e}")));
            Ok(Some(Published {
                digest: parse(digest)?,
                sha256_from: from.clone(),
                sha256_from_digest: parse(from_digest)?,
            }))
        }
        _ => Err(Error::invalid("index.json", format!("{reference}: the annotations {} go together", keys.join(", ")))),
    }
}

fn single_layer(manifest: &Value) -> Option<Content> {
    let layers = manifest.get("layers")?.as_array()?;
    let [layer] = layers.as_slice() else { return None };
    Some(Content {
        name: layer.get("annotations")?.get(ANNOTATION_TITLE)?.as_str()?.to_string(),
        digest: parse_sha256(layer.get("digest")?.as_str()?).ok()?,
        size: layer.get("size")?.as_u64()?,
    })
}

fn annotation<'a>(desc: &'a Descriptor, key: &str) -> Option<&'a String> {
    desc.annotations().as_ref()?.get(key)
}

/// The kind a manifest declares through its media types, for layouts written by other tools.
fn infer_kind(manifest: &Value) -> Kind {
    let artifact_type = manifest.get("artifactType").and_then(Value::as_str);
    let config_type = manifest.get("config").and_then(|c| c.get("mediaType")).and_then(Value::as_str);
    match (artifact_type, config_type) {
        (Some(FILE_ARTIFACT_TYPE), _) | (_, Some(FILE_ARTIFACT_TYPE)) => Kind::File,
        (Some(GIT_ARTIFACT_TYPE), _) | (_, Some(GIT_ARTIFACT_TYPE)) => Kind::Git,
        (_, Some(HELM_CONFIG_MEDIA_TYPE)) => Kind::Chart,
        _ => Kind::Image,
    }
}

/// Lists the artifacts of an index and, through `walk`, every blob they need.
pub fn list_artifacts(store: &dyn BlobStore, index: &ImageIndex, walk: &mut Walk<'_>) -> Result<Vec<Artifact>> {
    let mut out = Vec::new();
    for (i, desc) in index.manifests().iter().enumerate() {
        let reference = annotation(desc, ANNOTATION_REF).cloned().ok_or_else(|| {
            Error::invalid(
                "index.json",
                format!(
                    "manifest #{i} ({}) has no {ANNOTATION_REF} annotation naming its original reference",
                    desc.digest()
                ),
            )
        })?;
        walk.artifact(desc, &reference)?;
        let digest = descriptor_digest(desc, &reference)?;
        let local = !(walk.elsewhere)(&digest);
        let manifest: Value = if local {
            serde_json::from_slice(&store.read_json_blob(&digest)?)
                .map_err(|e| Error::invalid(blob_path(&digest), format!("{reference}: {e}")))?
        } else {
            Value::Null
        };
        let kind = match annotation(desc, ANNOTATION_KIND) {
            Some(k) => k.parse().map_err(|e: Error| Error::invalid("index.json", format!("{reference}: {e}")))?,
            None => infer_kind(&manifest),
        };
        let platforms = match carried_platforms(desc) {
            Some(p) => p,
            None if manifest.get("manifests").is_some() => walk.platforms.get(&reference).cloned().unwrap_or_default(),
            None if kind == Kind::Image && local => image_platform(store, &digest)?.into_iter().collect(),
            None => Vec::new(),
        };
        let published = published(desc, &reference)?;
        out.push(Artifact {
            kind,
            reference,
            digest,
            media_type: desc.media_type().to_string(),
            size: desc.size(),
            platforms,
            source: annotation(desc, ANNOTATION_SOURCE).cloned(),
            content: matches!(kind, Kind::File | Kind::Git).then(|| single_layer(&manifest)).flatten(),
            published,
        });
    }
    out.sort_by(|a, b| (a.kind, &a.reference).cmp(&(b.kind, &b.reference)));
    Ok(out)
}

/// A reference split the way registries see it: `docker.io/mosipid/x:1.2` or `…@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host (`docker.io`).
    pub registry: String,
    /// The repository path (`mosipid/x`).
    pub repository: String,
    /// The tag, when one is given.
    pub tag: Option<String>,
    /// The digest, when one is given: any algorithm the distribution spec's grammar allows.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses with Docker's rules: the first component is a registry host when it has a dot, a
    /// colon or is `localhost`; otherwise the host is `docker.io` (and `library/` for one name).
    pub fn parse(text: &str) -> Result<Reference> {
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(Error::malformed(format!("'{text}' is not an image reference")));
        }
        let (registry, repository) = match name.split_once('/') {
            // Docker Hub's own names for itself, and its one-component names, mean the same
            // image as the short form: `docker.io/nginx` is `docker.io/library/nginx`.
            Some(("docker.io" | "index.docker.io" | "registry-1.docker.io", path)) if !path.contains('/') => {
                ("docker.io".to_string(), format!("library/{path}"))
            }
            Some(("index.docker.io" | "registry-1.docker.io", path)) => ("docker.io".to_string(), path.to_string()),
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ if name.contains('/') => ("docker.io".to_string(), name.to_string()),
            _ => ("docker.io".to_string(), format!("library/{name}")),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
                && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        };
        if !valid(&repository) {
            return Err(Error::malformed(format!("'{text}': repository '{repository}' is not a valid name")));
        }
        // The distribution spec's grammar: `[\w][\w.-]{0,127}` for a tag; a digest's is `Digest`'s.
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if let Some(t) = &tag {
            let ok = t.len() <= 128
                && t.bytes().next().is_some_and(word)
                && t.bytes().all(|b| word(b) || b"._-".contains(&b));
            if !ok {
                return Err(Error::malformed(format!("'{text}': tag '{t}' is not a valid tag")));
            }
        }
        let digest = digest
            .map(|d| Digest::from_str(d).map_err(|_| Error::malformed(format!("'{text}': '{d}' is not a digest"))))
            .transpose()?;
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The full name with the registry host first, the form bundles record.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a manifest request for it names: the digest when there is one, else the tag, else
    /// `latest`, as Docker and containerd ask.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("docker.io/mosipid/config-server:1.1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "mosipid/config-server", Some("1.1.2"))
        );
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(Reference::parse("docker.io/nginx:1").unwrap().to_string(), "docker.io/library/nginx:1");
        assert_eq!(Reference::parse("index.docker.io/a/b").unwrap().to_string(), "docker.io/a/b");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/a/b@{d}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref(), r.digest.as_ref().map(Digest::as_ref)),
            ("localhost:5000", None, Some(d.as_str()))
        );
        assert_eq!(r.manifest_ref(), d);
        let r = Reference::parse(&format!("quay.io/x/y:1.0@{d}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.manifest_ref()), (Some("1.0"), d));
        assert_eq!(Reference::parse("quay.io/x/y:1.0").unwrap().manifest_ref(), "1.0");
        assert_eq!(Reference::parse("quay.io/x/y").unwrap().manifest_ref(), "latest");
        let sha512 = format!("sha512:{}", "b".repeat(128));
        assert_eq!(Reference::parse(&format!("x/y@{sha512}")).unwrap().to_string(), format!("docker.io/x/y@{sha512}"));
        assert!(Reference::parse("x/y@sha256:abc").unwrap_err().to_string().contains("not a digest"), "too short");
        assert!(Reference::parse("docker.io/../etc").is_err());
        assert!(Reference::parse("docker.io/UPPER").is_err());
        assert!(Reference::parse("nginx:1.25\u{1b}[2J").unwrap_err().to_string().contains("not a valid tag"));
        assert!(Reference::parse("nginx:.hidden").is_err());
        assert!(Reference::parse("nginx@sha256").unwrap_err().to_string().contains("not a digest"));
        assert!(Reference::parse("nginx@sha256:a/b").is_err());
    }

    /// A published checksum's annotations are read as digests: a malformed one is refused, naming
    /// index.json and the artifact.
    #[test]
    fn a_malformed_published_digest_names_the_artifact() {
        struct Nothing;
        impl BlobStore for Nothing {
            fn blob_len(&self, _: &Digest) -> Result<Option<u64>> {
                Ok(None)
            }
            fn open_blob(&self, d: &Digest) -> Result<Box<dyn std::io::Read + Send + '_>> {
                Err(Error::invalid(blob_path(d), "not held"))
            }
        }
        let index: ImageIndex = serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": format!("sha256:{}", "a".repeat(64)), "size": 1,
            "annotations": {
                "org.opencontainers.image.ref.name": "files.airgap.local/eksctl:0.121.0",
                "io.airgap.kind": "file",
                "io.airgap.published.digest": "sha256:short",
                "io.airgap.published.sha256-from": "https://x/sums.txt",
                "io.airgap.published.sha256-from.digest": format!("sha256:{}", "c".repeat(64)),
            }
        }]}))
        .unwrap();
        let elsewhere = |_: &Digest| true;
        let err = list_artifacts(&Nothing, &index, &mut Walk::new(&Nothing, &elsewhere)).unwrap_err().to_string();
        assert!(
            err.starts_with("index.json: files.airgap.local/eksctl:0.121.0: 'sha256:short' is not a digest"),
            "{err}"
        );
    }

    #[test]
    fn kinds_from_media_types() {
        let chart = serde_json::json!({"config": {"mediaType": HELM_CONFIG_MEDIA_TYPE}});
        assert_eq!(infer_kind(&chart), Kind::Chart);
        let file = serde_json::json!({"artifactType": FILE_ARTIFACT_TYPE, "config": {"mediaType": "application/vnd.oci.empty.v1+json"}});
        assert_eq!(infer_kind(&file), Kind::File);
        assert_eq!(infer_kind(&serde_json::json!({})), Kind::Image);
        assert_eq!("git".parse::<Kind>().unwrap(), Kind::Git);
    }
}
