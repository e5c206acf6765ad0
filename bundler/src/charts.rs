//! Helm charts, from classic repositories (`index.yaml` + `.tgz`) or `oci://` registries, stored
//! the way `helm push` stores them: config = Chart.yaml as JSON, one layer = the `.tgz` unchanged.

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{Kind, HELM_CHART_LAYER_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use bundles::digest::{parse_sha256, Digest};
use bundles::layout_writer::{descriptor, Stored};
use oci_spec::image::Descriptor;
use serde_json::json;

use crate::cache::Cache;
use crate::http::{get_bytes, get_with_retry, Mirrors};
use crate::images;
use crate::oci::Client;
use crate::progress::Progress;
use crate::spec::ChartEntry;

/// A repository's `index.yaml` lists every version of every chart in it; the largest public ones
/// are tens of MiB.
const MAX_CHART_INDEX: u64 = 64 << 20;
/// A chart archive read whole when its repository gives no digest to stream it against.
const MAX_CHART_ARCHIVE: u64 = 64 << 20;

pub struct ResolvedChart {
    pub reference: String,
    /// The `.tgz` URL for a classic repository; none for `oci://`, whose reference says it all.
    pub source: Option<String>,
    pub tgz: Digest,
    pub descriptor: Descriptor,
    /// Every blob of the artifact (manifest, config, chart), all in the cache.
    pub blobs: Vec<Digest>,
}

/// The chart's reference in the bundle (see [`bundles::naming`]).
pub fn reference(entry: &ChartEntry) -> String {
    bundles::naming::chart_reference(&entry.repo, &entry.name, &entry.version)
}

pub async fn resolve(
    client: &Client,
    mirrors: &Mirrors,
    cache: &Cache,
    progress: &Progress,
    entry: &ChartEntry,
    pin: Option<&Digest>,
) -> Result<ResolvedChart> {
    if entry.repo.starts_with("oci://") {
        return resolve_oci(client, cache, progress, entry, pin).await;
    }
    let http = client.http();
    let repo = entry.repo.trim_end_matches('/');
    let index_url = format!("{repo}/index.yaml");
    let raw = get_bytes(http, &mirrors.map_url(&index_url), MAX_CHART_INDEX).await?;
    let index: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&raw).with_context(|| format!("{index_url}: not YAML"))?;
    let versions = index
        .get("entries")
        .and_then(|e| e.get(entry.name.as_str()))
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| anyhow!("no chart named {} in {index_url}", entry.name))?;
    let found = versions.iter().find(|v| v.get("version").and_then(|s| s.as_str()) == Some(entry.version.as_str()));
    let Some(found) = found else {
        let known: Vec<&str> = versions.iter().filter_map(|v| v.get("version")?.as_str()).collect();
        bail!("{} has no version {} in {index_url} (it has {})", entry.name, entry.version, known.join(", "));
    };
    let url = found
        .get("urls")
        .and_then(|u| u.as_sequence())
        .and_then(|u| u.first())
        .and_then(|u| u.as_str())
        .ok_or_else(|| anyhow!("{index_url}: {} {} has no urls", entry.name, entry.version))?;
    let url = if url.contains("://") { url.to_string() } else { format!("{repo}/{url}") };
    let fetch = mirrors.map_url(&url);
    let tgz = match found.get("digest").and_then(|d| d.as_str()) {
        Some(hex) => {
            let d = parse_sha256(&format!("sha256:{hex}")).with_context(|| index_url.clone())?;
            cache.download(&d, None, &url, progress, async |offset| get_with_retry(http, &fetch, offset).await).await?;
            d
        }
        None => {
            progress.warn(&format!(
                "{index_url}: {} {} has no digest; trusting what {url} serves",
                entry.name, entry.version
            ));
            cache.put_bytes(&get_bytes(http, &fetch, MAX_CHART_ARCHIVE).await?, None)?
        }
    };
    let (descriptor, config) = store_chart(cache, &tgz).with_context(|| url.clone())?;
    let reference = reference(entry);
    if let Some(p) = pin {
        if descriptor.digest().to_string() != p.to_string() {
            bail!("{reference}: {url} now gives {} but the lock says {p}", descriptor.digest());
        }
    }
    let blobs = vec![parse_sha256(descriptor.digest().as_ref())?, config, tgz.clone()];
    Ok(ResolvedChart { reference, source: Some(url), tgz, descriptor, blobs })
}

async fn resolve_oci(
    client: &Client,
    cache: &Cache,
    progress: &Progress,
    entry: &ChartEntry,
    pin: Option<&Digest>,
) -> Result<ResolvedChart> {
    let reference = reference(entry);
    let img = images::resolve(client, cache, progress, &reference, pin, None, Kind::Chart).await?;
    let layer = img
        .layers
        .first()
        .filter(|_| img.layers.len() == 1)
        .ok_or_else(|| anyhow!("{reference}: not a Helm chart (expected one layer)"))?;
    cache
        .download(&layer.digest, Some(layer.size), &reference, progress, async |offset| {
            client.blob(&layer.registry, &layer.repository, &layer.digest, offset).await
        })
        .await?;
    let mut blobs = img.metadata.clone();
    blobs.push(layer.digest.clone());
    Ok(ResolvedChart { reference, source: None, tgz: layer.digest.clone(), descriptor: img.descriptor, blobs })
}

/// Writes config and manifest for a `.tgz` already in the cache.
fn store_chart(cache: &Cache, tgz: &Digest) -> Result<(Descriptor, Digest)> {
    let chart_yaml = read_chart_yaml(&std::fs::read(cache.blob_path(tgz))?)?;
    let meta: serde_json::Value = serde_yaml_ng::from_str(&chart_yaml).context("Chart.yaml")?;
    let config = serde_json::to_vec(&meta)?;
    let config_digest = cache.put_bytes(&config, None)?;
    let tgz_size = std::fs::metadata(cache.blob_path(tgz))?.len();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "digest": tgz.to_string(), "size": tgz_size}],
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let digest = cache.put_bytes(&bytes, None)?;
    Ok((descriptor(OCI_MANIFEST_MEDIA_TYPE, &Stored { digest, size: bytes.len() as u64 }), config_digest))
}

/// The chart's own Chart.yaml (`<chart>/Chart.yaml`), not a subchart's.
fn read_chart_yaml(tgz: &[u8]) -> Result<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().context("not a chart archive")? {
        let mut entry = entry.context("not a chart archive")?;
        let path = entry.path()?.to_string_lossy().to_string();
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        if parts.len() == 2 && parts[1] == "Chart.yaml" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(text);
        }
    }
    bail!("no Chart.yaml in the chart archive")
}
