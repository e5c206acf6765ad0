//! Images (and charts stored in OCI registries): a reference becomes its manifests and configs
//! in the cache plus the list of layers still to download. Of a multi-platform index only the
//! chosen platforms' manifests are fetched; the index itself is kept as it is, so its digest is
//! the upstream's.

use anyhow::{bail, Context, Result};
use bundles::artifact::{Kind, Reference};
use bundles::digest::{parse_sha256, require_sha256, Digest};
use bundles::layout_writer::{descriptor, Stored};
use oci_spec::image::Descriptor;
use serde_json::Value;

use crate::cache::Cache;
use crate::oci::{is_index, Client, Manifest};
use crate::progress::Progress;

/// A blob and where to fetch it from.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub digest: Digest,
    pub size: u64,
    pub registry: String,
    pub repository: String,
}

pub struct ResolvedImage {
    pub reference: String,
    pub kind: Kind,
    pub descriptor: Descriptor,
    /// For an index: the platforms carried, as the index names them.
    pub platforms: Option<Vec<String>>,
    /// Manifests and configs, already in the cache.
    pub metadata: Vec<Digest>,
    pub layers: Vec<BlobSource>,
}

/// The name a bundle records: host and path, then the tag, or the digest when no tag was given.
/// A digest given with a tag is kept in the returned reference (see [`pinned`]), not in the name.
pub fn canonical(reference: &str) -> Result<(Reference, String)> {
    let mut r = Reference::parse(reference)?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".to_string());
    }
    let name = match (&r.tag, &r.digest) {
        (Some(t), _) => format!("{}:{t}", r.name()),
        (None, Some(d)) => format!("{}@{d}", r.name()),
        (None, None) => unreachable!("a tag was set above"),
    };
    Ok((r, name))
}

/// The digest a reference pins (`name:tag@sha256:…`): what is fetched, by digest, whatever the
/// tag now points at.
pub fn pinned(r: &Reference) -> Result<Option<Digest>> {
    Ok(r.digest.clone().map(require_sha256).transpose()?)
}

fn platform_of(v: &Value) -> Option<String> {
    let p = v.get("platform")?;
    let os = p.get("os")?.as_str()?;
    let arch = p.get("architecture")?.as_str()?;
    Some(match p.get("variant").and_then(Value::as_str) {
        Some(var) => format!("{os}/{arch}/{var}"),
        None => format!("{os}/{arch}"),
    })
}

/// `linux/arm64` chooses `linux/arm64/v8` too: a platform without a variant means any variant.
fn chosen(wanted: &[String], platform: &str) -> bool {
    wanted.iter().any(|w| w == platform || (w.matches('/').count() == 1 && platform.starts_with(&format!("{w}/"))))
}

/// Resolves `reference` (pinned to `pin` when given, e.g. from a lock) and stores its manifests
/// and configs in the cache. `platforms: None` carries every platform of an index.
pub async fn resolve(
    client: &Client,
    cache: &Cache,
    progress: &Progress,
    reference: &str,
    pin: Option<&Digest>,
    platforms: Option<&[String]>,
    kind: Kind,
) -> Result<ResolvedImage> {
    let (r, name) = canonical(reference)?;
    let wanted_digest = match (pin, pinned(&r)?) {
        (Some(p), Some(own)) if *p != own => bail!("{name}: pinned to {own}, but {p} was asked for"),
        (Some(p), _) => Some(p.clone()),
        (None, own) => own,
    };
    let by = wanted_digest.map(|d| d.to_string()).or(r.tag.clone()).unwrap_or_default();
    let root = client.manifest(&r.registry, &r.repository, &by).await?;
    cache.put_bytes(&root.bytes, Some(&root.digest))?;
    let mut metadata = vec![root.digest.clone()];
    let mut layers = Vec::new();
    let mut carried = None;
    if is_index(&root) {
        let children = root.json["manifests"].as_array().cloned().unwrap_or_default();
        let offered: Vec<String> = children.iter().filter_map(platform_of).collect();
        let mut taken = Vec::new();
        for child in &children {
            let platform = platform_of(child);
            let take = match (platforms, &platform) {
                (None, _) => true,
                (Some(w), Some(p)) => chosen(w, p),
                (Some(_), None) => false,
            };
            if !take {
                continue;
            }
            let d = child_digest(child, &name)?;
            let m = client.manifest(&r.registry, &r.repository, d.as_ref()).await?;
            if is_index(&m) {
                bail!("{name}: nested index {d} is not supported");
            }
            cache.put_bytes(&m.bytes, Some(&m.digest))?;
            metadata.push(m.digest.clone());
            layers.extend(blobs_of(client, cache, progress, &r, &name, &m, &mut metadata).await?);
            taken.extend(platform);
        }
        if let Some(w) = platforms {
            for p in w {
                if !taken.iter().any(|t| chosen(std::slice::from_ref(p), t)) {
                    bail!("{name}: no {p} image in its index (it offers {})", offered.join(", "));
                }
            }
        }
        carried = Some(taken);
    } else {
        layers = blobs_of(client, cache, progress, &r, &name, &root, &mut metadata).await?;
    }
    let desc = descriptor(&root.media_type, &Stored { digest: root.digest.clone(), size: root.bytes.len() as u64 });
    Ok(ResolvedImage { reference: name, kind, descriptor: desc, platforms: carried, metadata, layers })
}

fn child_digest(child: &Value, name: &str) -> Result<Digest> {
    let text = child.get("digest").and_then(Value::as_str).unwrap_or_default();
    parse_sha256(text).with_context(|| format!("{name}: bad index entry"))
}

/// Fetches the config (small, and it names the platform) and lists the layers.
async fn blobs_of(
    client: &Client,
    cache: &Cache,
    progress: &Progress,
    r: &Reference,
    name: &str,
    m: &Manifest,
    metadata: &mut Vec<Digest>,
) -> Result<Vec<BlobSource>> {
    let source = |v: &Value| -> Result<BlobSource> {
        let digest = child_digest(v, name)?;
        let size =
            v.get("size").and_then(Value::as_u64).with_context(|| format!("{name}: descriptor without a size"))?;
        Ok(BlobSource { digest, size, registry: r.registry.clone(), repository: r.repository.clone() })
    };
    let config = m.json.get("config").with_context(|| format!("{name}: manifest {} has no config", m.digest))?;
    let config = source(config)?;
    let what = format!("{name} config");
    cache
        .download(&config.digest, Some(config.size), &what, progress, async |offset| {
            client.blob(&r.registry, &r.repository, &config.digest, offset).await
        })
        .await?;
    metadata.push(config.digest);
    m.json.get("layers").and_then(Value::as_array).into_iter().flatten().map(source).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any text is a name or an error; a name reads back as itself, with its pin.
        #[test]
        fn any_reference_is_named_or_refused(text in ".{0,80}") {
            if let Ok((r, name)) = canonical(&text) {
                let (again, same) = canonical(&name).unwrap();
                proptest::prop_assert_eq!(&same, &name);
                if r.tag.is_some() {
                    proptest::prop_assert_eq!(again.digest, None);
                }
                let _ = pinned(&r);
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(canonical("nginx").unwrap().1, "docker.io/library/nginx:latest");
        let (r, name) = canonical(&format!("quay.io/a/b:1@sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(name, "quay.io/a/b:1", "the tag is the name");
        assert_eq!(
            pinned(&r).unwrap().unwrap().to_string(),
            format!("sha256:{}", "a".repeat(64)),
            "the digest the pin"
        );
        assert!(canonical("quay.io/a/b:1@sha256:abc").is_err());
        let sha512 = canonical(&format!("quay.io/a/b:1@sha512:{}", "a".repeat(128))).unwrap().0;
        assert!(pinned(&sha512).unwrap_err().to_string().contains("only sha256"), "bundles carry SHA-256 blobs");
        assert!(chosen(&["linux/arm64".into()], "linux/arm64/v8"));
        assert!(!chosen(&["linux/arm".into()], "linux/arm64"));
    }
}
