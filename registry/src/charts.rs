//! A classic Helm chart repository over the chart artifacts: `/charts/<prefix>/index.yaml` lists
//! every chart stored as `<prefix>/<chart>:<version>`, and `/charts/<prefix>/<chart>-<version>.tgz`
//! is the chart layer itself, so `helm repo add site https://registry/charts/<prefix>` works.

use std::collections::BTreeMap;
use std::sync::Arc;

use bundles::artifact::{HELM_CHART_LAYER_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE};
use bundles::digest::Digest;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Response};
use serde_json::{json, Value};

use crate::artifacts::{described_blob_len, manifest_json, read_small_blob};
use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::split_route;
use crate::routes::{blob_response, ok_builder, BlobSlice};
use crate::server::State;
use crate::storage::Stores;

/// Fixed so the index is the same on every request and every replica.
const CREATED: &str = "1970-01-01T00:00:00Z";

struct Chart {
    repo: String,
    meta: Value,
    layer: Digest,
    size: u64,
    file: String,
}

fn charts(stores: &Stores, prefix: &str) -> ApiResult<Vec<Chart>> {
    let mut out = Vec::new();
    for repo in stores.repositories()? {
        let Some(chart_name) = repo.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else { continue };
        if chart_name.contains('/') {
            continue;
        }
        for tag in stores.tags(&repo)?.unwrap_or_default() {
            let Some((_, manifest)) = manifest_json(stores, &repo, &tag)? else { continue };
            let config = &manifest["config"];
            if config["mediaType"].as_str() != Some(HELM_CONFIG_MEDIA_TYPE) {
                continue;
            }
            let layer = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["mediaType"].as_str() == Some(HELM_CHART_LAYER_MEDIA_TYPE));
            let (Some(layer), Some(config_digest)) = (layer, config["digest"].as_str()) else { continue };
            let parse = |s: Option<&str>| s.and_then(|s| bundles::digest::parse_sha256(s).ok());
            let (Some(config_digest), Some(layer_digest), Some(size)) =
                (parse(Some(config_digest)), parse(layer["digest"].as_str()), layer["size"].as_u64())
            else {
                continue;
            };
            let meta: Value = serde_json::from_slice(&read_small_blob(stores, &repo, &config_digest)?)
                .map_err(|e| ApiError::new(Code::Internal, format!("chart config of {repo}:{tag}: {e}")))?;
            let (Some(name), Some(version)) = (meta["name"].as_str(), meta["version"].as_str()) else { continue };
            let file = format!("{name}-{version}.tgz");
            out.push(Chart { repo: repo.clone(), layer: layer_digest, size, file, meta });
        }
    }
    Ok(out)
}

fn index_yaml(charts: &[Chart]) -> String {
    let mut entries: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in charts {
        let mut entry = c.meta.clone();
        entry["urls"] = json!([c.file]);
        entry["digest"] = json!(c.layer.digest());
        entry["created"] = json!(CREATED);
        if entry.get("apiVersion").is_none() {
            entry["apiVersion"] = json!("v2");
        }
        let name = c.meta["name"].as_str().unwrap_or_default().to_string();
        entries.entry(name).or_default().push(entry);
    }
    let index = json!({"apiVersion": "v1", "entries": entries, "generated": CREATED});
    serde_yaml_ng::to_string(&index).expect("an index serializes")
}

pub(crate) async fn route(
    state: &Arc<State>,
    rest: &str,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response<Body>> {
    let (prefix, [file]) = split_route(rest, "/charts/<prefix>/index.yaml")?;
    let (stores, p) = (state.stores.clone(), prefix.to_string());
    let found = body::blocking(move || charts(&stores, &p)).await?;
    if file == "index.yaml" {
        if found.is_empty() {
            return Err(ApiError::new(Code::NotFound, format!("no charts are stored under {prefix}/")));
        }
        let yaml = index_yaml(&found);
        return Ok(ok_builder(200)
            .header(CONTENT_TYPE, "application/x-yaml")
            .header(CONTENT_LENGTH, yaml.len())
            .body(if head { body::empty() } else { body::full(yaml) })
            .expect("valid response"));
    }
    let chart = found
        .iter()
        .find(|c| c.file == file)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no chart file {file} under {prefix}/")))?;
    let len = described_blob_len(&state.stores, &chart.repo, &chart.layer, chart.size)?;
    let slice = BlobSlice { repo: &chart.repo, digest: &chart.layer, base: 0, len, content_type: "application/gzip" };
    blob_response(state, slice, headers, head).await
}
