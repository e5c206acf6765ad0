//! Files over plain HTTP: `GET /files/<repository>/<tag>/<title>` serves the single layer of a
//! file artifact, so scripts on site fetch tools with curl.

use std::sync::Arc;

use hyper::{HeaderMap, Response};

use crate::artifacts::{described_blob_len, manifest_json, percent_decode, single_layer};
use crate::body::Body;
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{split_route, valid_tag};
use crate::routes::{blob_response, BlobSlice};
use crate::server::State;
use crate::storage;

pub(crate) async fn route(
    state: &Arc<State>,
    rest: &str,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response<Body>> {
    let usage = "/files/<repository>/<tag>/<title>";
    let (repo, [tag, title]) = split_route(rest, usage)?;
    if !valid_tag(tag) {
        return Err(ApiError::new(Code::NotFound, format!("{rest}: '{tag}' is not a tag; expected {usage}")));
    }
    let title = percent_decode(title);
    let missing = format!("{repo}:{tag} has no file named {title}");
    let not_here = move || ApiError::new(Code::NotFound, missing.clone());
    let (r, t, wanted) = (repo.to_string(), tag.to_string(), title);
    let (layer, len) = storage::call(&state.stores, state.clone(), move |s| {
        let (_, manifest) = manifest_json(&s.stores, &r, &t)?.ok_or_else(&not_here)?;
        let layer =
            single_layer(&manifest).filter(|l| l.title.as_deref() == Some(wanted.as_str())).ok_or_else(not_here)?;
        let len = described_blob_len(&s.stores, &r, &layer.digest, layer.size)?;
        Ok((layer, len))
    })
    .await?;
    let slice = BlobSlice { repo, digest: &layer.digest, base: 0, len, content_type: "application/octet-stream" };
    blob_response(state, slice, headers, head).await
}
