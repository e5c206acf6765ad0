//! Reading artifacts back out of the stores for the non-OCI views (Helm, files, git).

use std::io::Read;

use bundles::digest::Digest;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, Code};
use crate::names::parse_digest;
use crate::storage::Stores;

/// Small JSON blobs only (chart configs); anything larger is refused rather than buffered.
const MAX_CONFIG: u64 = 1 << 20;

pub fn manifest_json(stores: &Stores, repo: &str, tag: &str) -> ApiResult<Option<(Digest, Value)>> {
    let Some(d) = stores.resolve_tag(repo, tag)? else { return Ok(None) };
    let Some(m) = stores.manifest(repo, &d)? else { return Ok(None) };
    let v = serde_json::from_slice(&m.bytes)
        .map_err(|e| ApiError::new(Code::Internal, format!("manifest {d} in {repo}: {e}")))?;
    Ok(Some((d, v)))
}

/// The length of the blob a descriptor names, which must be the size the descriptor claims: a
/// pushed manifest may claim any size, and what is sent is the stored blob, never more.
pub fn described_blob_len(stores: &Stores, repo: &str, d: &Digest, declared: u64) -> ApiResult<u64> {
    let stored = stores
        .blob_len(repo, d)?
        .ok_or_else(|| ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {repo}")))?;
    if stored != declared {
        return Err(ApiError::new(
            Code::Internal,
            format!("{repo}: its manifest describes blob {d} as {declared} bytes, but the stored blob has {stored}"),
        ));
    }
    Ok(stored)
}

pub fn read_small_blob(stores: &Stores, repo: &str, d: &Digest) -> ApiResult<Vec<u8>> {
    let len = stores
        .blob_len(repo, d)?
        .ok_or_else(|| ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {repo}")))?;
    if len > MAX_CONFIG {
        return Err(ApiError::new(
            Code::Internal,
            format!("blob {d} in {repo} is {len} bytes, too large for a config"),
        ));
    }
    let mut out = Vec::with_capacity(len as usize);
    stores
        .open_blob(repo, d, 0, len)?
        .read_to_end(&mut out)
        .map_err(|e| ApiError::io(format!("blob {d} in {repo}"), e))?;
    Ok(out)
}

/// The one layer of a file or git artifact: its digest, size and title.
pub struct SingleLayer {
    pub digest: Digest,
    pub size: u64,
    pub title: Option<String>,
    pub media_type: String,
}

pub fn single_layer(manifest: &Value) -> Option<SingleLayer> {
    let layers = manifest.get("layers")?.as_array()?;
    let [layer] = layers.as_slice() else { return None };
    Some(SingleLayer {
        digest: parse_digest(layer.get("digest")?.as_str()?).ok()?,
        size: layer.get("size")?.as_u64()?,
        title: layer
            .get("annotations")
            .and_then(|a| a.get(bundles::artifact::ANNOTATION_TITLE))
            .and_then(Value::as_str)
            .map(str::to_string),
        media_type: layer.get("mediaType")?.as_str()?.to_string(),
    })
}

pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}
