//! The OCI distribution API under `/v2/`: manifests, blobs, uploads, tags, referrers, catalog.

use std::collections::HashMap;
use std::sync::Arc;

use bundles::artifact::{
    DOCKER_LIST_MEDIA_TYPE as DOCKER_LIST, DOCKER_MANIFEST_MEDIA_TYPE as DOCKER_MANIFEST,
    OCI_INDEX_MEDIA_TYPE as OCI_INDEX, OCI_MANIFEST_MEDIA_TYPE as OCI_MANIFEST,
};
use bundles::digest::Digest;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION, RANGE};
use hyper::{HeaderMap, Method, Request, Response};
use serde_json::{json, Value};

use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{check_name, hash_reader, parse_digest, valid_name, ManifestRef};
use crate::routes::{blob_response, header_str, ok_builder, BlobSlice};
use crate::server::State;
use crate::storage::{self, referrer_descriptor, NewManifest, StoredManifest};

pub(crate) enum Target {
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

pub(crate) fn parse_target(rest: &str) -> ApiResult<Target> {
    if rest == "_catalog" {
        return Ok(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Target::Tags(name.into()));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Ok(Target::Uploads(name.into()));
    }
    let not_found = || ApiError::new(Code::NotFound, format!("/v2/{rest} is not an API endpoint"));
    let (head, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
    let (name, last) = (head, last.to_string());
    if let Some(n) = name.strip_suffix("/manifests") {
        Ok(Target::Manifest(n.into(), last))
    } else if let Some(n) = name.strip_suffix("/blobs/uploads") {
        Ok(Target::Upload(n.into(), last))
    } else if let Some(n) = name.strip_suffix("/blobs") {
        Ok(Target::Blob(n.into(), last))
    } else if let Some(n) = name.strip_suffix("/referrers") {
        Ok(Target::Referrers(n.into(), last))
    } else {
        Err(not_found())
    }
}

pub(crate) async fn route(state: &Arc<State>, rest: &str, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let target = parse_target(rest)?;
    // containerd, using us as a mirror, names the upstream host in `ns`.
    let named = |name: String| -> ApiResult<String> {
        check_name(&name)?;
        match query.get("ns") {
            Some(ns) if !name.starts_with(&format!("{ns}/")) => {
                let full = format!("{ns}/{name}");
                check_name(&full)?;
                Ok(full)
            }
            _ => Ok(name),
        }
    };
    let method = req.method().clone();
    let head = method == Method::HEAD;
    match (target, &method) {
        (Target::Catalog, &Method::GET) => with_storage(state, move |s| catalog(s, &query)).await,
        (Target::Tags(n), &Method::GET) => {
            let name = named(n)?;
            with_storage(state, move |s| tags(s, &name, &query)).await
        }
        (Target::Manifest(n, r), &Method::GET | &Method::HEAD) => {
            let name = named(n)?;
            let (repo, reference) = (name.clone(), r.clone());
            let (d, m) = with_storage(state, move |s| find_manifest(s, &repo, &reference)).await?;
            manifest_response(req.headers(), d, m, &name, &r, head)
        }
        (Target::Manifest(n, r), &Method::PUT) => put_manifest(state, &named(n)?, &r, req).await,
        (Target::Manifest(n, r), &Method::DELETE) => {
            let name = named(n)?;
            with_storage(state, move |s| delete_manifest(s, &name, &r)).await
        }
        (Target::Blob(n, d), &Method::GET | &Method::HEAD) => {
            let (name, d) = (named(n)?, parse_digest(&d)?);
            let (repo, digest) = (name.clone(), d.clone());
            let len = with_storage(state, move |s| s.stores.blob_len(&repo, &digest))
                .await?
                .ok_or_else(|| ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {name}")))?;
            let slice = BlobSlice { repo: &name, digest: &d, base: 0, len, content_type: "application/octet-stream" };
            blob_response(state, slice, req.headers(), head).await
        }
        (Target::Blob(n, d), &Method::DELETE) => {
            let name = named(n)?;
            with_storage(state, move |s| delete_blob(s, &name, &d)).await
        }
        (Target::Uploads(n), &Method::POST) => start_upload(state, &named(n)?, &query, req).await,
        (Target::Upload(n, id), &Method::GET) => {
            let name = named(n)?;
            with_storage(state, move |s| upload_status(s, &name, &id)).await
        }
        (Target::Upload(n, id), &Method::PATCH) => patch_upload(state, &named(n)?, &id, req).await,
        (Target::Upload(n, id), &Method::PUT) => finish_upload(state, &named(n)?, &id, &query, req).await,
        (Target::Upload(n, id), &Method::DELETE) => {
            let name = named(n)?;
            with_storage(state, move |s| cancel_upload(s, &name, &id)).await
        }
        (Target::Referrers(n, d), &Method::GET) => {
            let name = named(n)?;
            with_storage(state, move |s| referrers(s, &name, &d, &query)).await
        }
        (_, m) => Err(ApiError::new(Code::Unsupported, format!("{m} is not supported on /v2/{rest}"))),
    }
}

/// Runs a handler's storage work where storage may run (see [`storage::call`]).
async fn with_storage<T: Send + 'static>(
    state: &Arc<State>,
    work: impl FnOnce(&State) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    storage::call(&state.stores, state.clone(), |s: &Arc<State>| work(s)).await
}

fn no_content(status: u16) -> Response<Body> {
    ok_builder(status).header(CONTENT_LENGTH, 0).body(body::empty()).expect("valid response")
}

fn json_response(v: &Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(v).expect("JSON serializes");
    ok_builder(200)
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, bytes.len())
        .body(body::full(bytes))
        .expect("valid response")
}

/// `n` and `last` pagination over a sorted list; the link names the next page.
pub(crate) fn paginate(
    all: Vec<String>,
    query: &HashMap<String, String>,
    base: &str,
) -> ApiResult<(Vec<String>, Option<String>)> {
    let after: Vec<String> = match query.get("last") {
        Some(last) => all.into_iter().filter(|t| t > last).collect(),
        None => all,
    };
    let Some(n) = query.get("n") else { return Ok((after, None)) };
    let n: usize = n.parse().map_err(|_| {
        ApiError::new(Code::PaginationNumberInvalid, format!("n={n} is not a number of entries (0 or more)"))
    })?;
    if after.len() <= n {
        return Ok((after, None));
    }
    let page: Vec<String> = after.into_iter().take(n).collect();
    let link = page.last().map(|l| {
        let last: String = form_urlencoded::byte_serialize(l.as_bytes()).collect();
        format!("<{base}?n={n}&last={last}>; rel=\"next\"")
    });
    Ok((page, link))
}

fn catalog(state: &State, query: &HashMap<String, String>) -> ApiResult<Response<Body>> {
    let (page, link) = paginate(state.stores.repositories()?, query, "/v2/_catalog")?;
    let mut resp = json_response(&json!({"repositories": page}), "application/json");
    if let Some(l) = link {
        resp.headers_mut().insert(LINK, l.parse().expect("a link is a header value"));
    }
    Ok(resp)
}

fn tags(state: &State, name: &str, query: &HashMap<String, String>) -> ApiResult<Response<Body>> {
    let all = state
        .stores
        .tags(name)?
        .ok_or_else(|| ApiError::new(Code::NameUnknown, format!("repository {name} is not known")))?;
    let (page, link) = paginate(all, query, &format!("/v2/{name}/tags/list"))?;
    let mut resp = json_response(&json!({"name": name, "tags": page}), "application/json");
    if let Some(l) = link {
        resp.headers_mut().insert(LINK, l.parse().expect("a link is a header value"));
    }
    Ok(resp)
}

fn resolve(state: &State, name: &str, reference: &str) -> ApiResult<Digest> {
    let unknown = || ApiError::new(Code::ManifestUnknown, format!("manifest {reference} is not in {name}"));
    match ManifestRef::parse(reference)? {
        ManifestRef::Digest(d) => Ok(d),
        ManifestRef::Tag(t) => state.stores.resolve_tag(name, &t)?.ok_or_else(unknown),
    }
}

/// What distribution 2.8 answers to a client whose `Accept` lacks the stored manifest's type
/// (`*/*` does not count): an OCI manifest or index is unknown to it (404); a Docker schema 2
/// manifest or list fetched by tag would need converting to schema 1, which 2.8 no longer does
/// (400). A list is served to a client that accepts schema 2 manifests (distribution picks the
/// linux/amd64 child then); by digest, Docker types are served as they are. Nothing is rewritten.
fn check_accept(headers: &HeaderMap, media_type: &str, name: &str, reference: &str) -> ApiResult<()> {
    let accepts = |t: &str| {
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|a| a.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(t))
    };
    let by_tag = matches!(ManifestRef::parse(reference)?, ManifestRef::Tag(_));
    let refused = match media_type {
        OCI_MANIFEST | OCI_INDEX if !accepts(media_type) => Code::ManifestUnknown,
        DOCKER_MANIFEST if by_tag && !accepts(DOCKER_MANIFEST) => Code::ManifestInvalid,
        DOCKER_LIST if by_tag && !accepts(DOCKER_LIST) && !accepts(DOCKER_MANIFEST) => Code::ManifestInvalid,
        _ => return Ok(()),
    };
    Err(ApiError::new(refused, format!("{name}:{reference} is {media_type}, which the Accept header does not include")))
}

/// The manifest `name:reference` names, with its digest.
fn find_manifest(state: &State, name: &str, reference: &str) -> ApiResult<(Digest, StoredManifest)> {
    let d = resolve(state, name, reference)?;
    let m = state
        .stores
        .manifest(name, &d)?
        .ok_or_else(|| ApiError::new(Code::ManifestUnknown, format!("manifest {reference} is not in {name}")))?;
    Ok((d, m))
}

/// A found manifest as the client's Accept header allows it to be served.
fn manifest_response(
    headers: &HeaderMap,
    d: Digest,
    m: StoredManifest,
    name: &str,
    reference: &str,
    head: bool,
) -> ApiResult<Response<Body>> {
    check_accept(headers, &m.media_type, name, reference)?;
    let b = ok_builder(200)
        .header(CONTENT_TYPE, m.media_type)
        .header(CONTENT_LENGTH, m.bytes.len())
        .header("Docker-Content-Digest", d.to_string());
    Ok(b.body(if head { body::empty() } else { body::full(m.bytes) }).expect("valid response"))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::ManifestInvalid, message)
}

/// The manifest's media type, from Content-Type or from its own `mediaType`, which must agree.
fn manifest_media_type(content_type: Option<&str>, manifest: &Value) -> ApiResult<String> {
    let declared = manifest.get("mediaType").and_then(Value::as_str);
    let header = content_type.map(|c| c.split(';').next().unwrap_or("").trim()).filter(|c| !c.is_empty());
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(invalid(format!("Content-Type {h} does not match the manifest's mediaType {d}")))
        }
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) => OCI_MANIFEST,
    };
    if !bundles::artifact::MANIFEST_MEDIA_TYPES.contains(&media_type) {
        return Err(invalid(format!("unsupported manifest media type {media_type}")));
    }
    Ok(media_type.to_string())
}

fn descriptor_digest(desc: &Value, what: &str) -> ApiResult<Digest> {
    let text = desc.get("digest").and_then(Value::as_str).ok_or_else(|| invalid(format!("{what} has no digest")))?;
    parse_digest(text).map_err(|e| invalid(format!("{what}: {}", e.message)))
}

/// Every blob or child manifest the manifest points at must already be in the repository.
fn check_references(state: &State, name: &str, manifest: &Value, media_type: &str) -> ApiResult<()> {
    let missing =
        |what: String| ApiError::new(Code::ManifestBlobUnknown, format!("{what} is not in {name}; push it first"));
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let children = manifest
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a manifests array"))?;
        for (i, c) in children.iter().enumerate() {
            let d = descriptor_digest(c, &format!("manifests[{i}]"))?;
            if state.stores.manifest(name, &d)?.is_none() {
                return Err(missing(format!("manifest {d}")));
            }
        }
        return Ok(());
    }
    let config = manifest.get("config").ok_or_else(|| invalid("an image manifest needs a config"))?;
    let layers = match manifest.get("layers") {
        Some(Value::Array(l)) => l.as_slice(),
        None => &[],
        Some(_) => return Err(invalid("layers must be an array")),
    };
    let blobs = std::iter::once(("config".to_string(), config))
        .chain(layers.iter().enumerate().map(|(i, l)| (format!("layers[{i}]"), l)));
    for (what, desc) in blobs {
        // Foreign layers are fetched from their URLs, not from us.
        if desc.get("urls").and_then(Value::as_array).is_some_and(|u| !u.is_empty()) {
            continue;
        }
        let d = descriptor_digest(desc, &what)?;
        if state.stores.blob_len(name, &d)?.is_none() {
            return Err(missing(format!("{what} blob {d}")));
        }
    }
    Ok(())
}

async fn put_manifest(
    state: &Arc<State>,
    name: &str,
    reference: &str,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    state.stores.writer_or_refuse()?;
    let reference = ManifestRef::parse(reference)?;
    let max = state.max_manifest_bytes;
    let too_large = || {
        ApiError::new(Code::SizeInvalid, format!("manifest is larger than the {max} bytes this registry accepts"))
            .with_status(413)
    };
    if header_str(req.headers(), "content-length").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > max) {
        return Err(too_large());
    }
    let content_type = header_str(req.headers(), "content-type").map(str::to_string);
    // Spec 1.1.1: `?tag=a&tag=b` on a push by digest tags it in the same request.
    let tag_params: Vec<String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.into_owned())
        .collect();
    if let Some(bad) = tag_params.iter().find(|t| !crate::names::valid_tag(t)) {
        return Err(invalid(format!("'{bad}' is not a valid tag")));
    }
    let stall = state.limits.idle_timeout;
    let bytes = match tokio::time::timeout(stall, Limited::new(req.into_body(), max as usize).collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => return Err(invalid(format!("cannot read the manifest: {e}"))),
        Err(_) => {
            return Err(invalid(format!("the manifest did not arrive within {}", humantime::format_duration(stall))))
        }
    };
    let manifest: Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    if !manifest.is_object() || manifest.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("manifest must be a JSON object with schemaVersion 2"));
    }
    let media_type = manifest_media_type(content_type.as_deref(), &manifest)?;
    let algorithm = match &reference {
        ManifestRef::Digest(d) => d.algorithm().as_ref().to_string(),
        ManifestRef::Tag(_) => "sha256".to_string(),
    };
    let digest = hash_reader(&algorithm, &bytes[..]).expect("hashing memory cannot fail");
    if let ManifestRef::Digest(d) = &reference {
        if d != &digest {
            return Err(ApiError::new(Code::DigestInvalid, format!("manifest hashes to {digest}, not {d}")));
        }
    }
    let referrer = referrer_descriptor(&manifest, &digest, bytes.len() as u64, &media_type);
    let subject = referrer.as_ref().map(|(s, _)| s.to_string());
    let mut tags: Vec<String> = match &reference {
        ManifestRef::Tag(t) => vec![t.clone()],
        ManifestRef::Digest(_) => Vec::new(),
    };
    tags.extend(tag_params);
    let (n, d, t) = (name.to_string(), digest.clone(), tags.clone());
    with_storage(state, move |s| {
        check_references(s, &n, &manifest, &media_type)?;
        check_carried_tags(s, &n, &t, &d)?;
        let m = NewManifest { digest: &d, bytes: &bytes, media_type: &media_type, tags: &t, referrer };
        s.stores.writer_or_refuse()?.put_manifest(&n, m)
    })
    .await?;
    let mut b = ok_builder(201)
        .header(LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(CONTENT_LENGTH, 0);
    if let Some(s) = subject {
        b = b.header("OCI-Subject", s);
    }
    for t in &tags {
        b = b.header("OCI-Tag", t);
    }
    Ok(b.body(body::empty()).expect("valid response"))
}

/// Unless the operator allows it, a push may not move a tag the bundles carry.
fn check_carried_tags(state: &State, name: &str, tags: &[String], digest: &Digest) -> ApiResult<()> {
    if state.allow_overwrite {
        return Ok(());
    }
    for t in tags {
        match state.stores.carried_tag(name, t)? {
            Some(carried) if &carried != digest => {
                return Err(ApiError::new(
                    Code::Denied,
                    format!(
                        "{name}:{t} is carried by the bundle as {carried}; a push may not change what it serves \
                         (the registry's operator can allow it with --allow-overwrite)"
                    ),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_delete(state: &State) -> ApiResult<()> {
    if state.delete_enabled {
        Ok(())
    } else {
        Err(ApiError::new(Code::Unsupported, "deleting is disabled on this registry"))
    }
}

fn delete_manifest(state: &State, name: &str, reference: &str) -> ApiResult<Response<Body>> {
    check_delete(state)?;
    let writer = state.stores.writer_or_refuse()?;
    let deleted = match ManifestRef::parse(reference)? {
        ManifestRef::Digest(d) => writer.delete_manifest(name, &d)?,
        ManifestRef::Tag(t) => writer.delete_tag(name, &t)?,
    };
    if !deleted {
        return Err(ApiError::new(Code::ManifestUnknown, format!("manifest {reference} is not in {name}")));
    }
    Ok(no_content(202))
}

fn delete_blob(state: &State, name: &str, digest: &str) -> ApiResult<Response<Body>> {
    check_delete(state)?;
    let d = parse_digest(digest)?;
    if !state.stores.writer_or_refuse()?.delete_blob(name, &d)? {
        return Err(ApiError::new(Code::BlobUnknown, format!("blob {d} is not in {name}")));
    }
    Ok(no_content(202))
}

fn upload_response(status: u16, name: &str, id: &str, len: u64) -> Response<Body> {
    ok_builder(status)
        .header(LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(RANGE, format!("0-{}", len.saturating_sub(1)))
        .header("Docker-Upload-UUID", id)
        .header(CONTENT_LENGTH, 0)
        .body(body::empty())
        .expect("valid response")
}

fn blob_created(name: &str, d: &Digest) -> Response<Body> {
    ok_builder(201)
        .header(LOCATION, format!("/v2/{name}/blobs/{d}"))
        .header("Docker-Content-Digest", d.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(body::empty())
        .expect("valid response")
}

/// What a POST to the uploads begins with.
enum Begun {
    Mounted(Digest),
    /// A session, and the digest of the blob sent whole with the POST, if it was.
    Session(String, Option<Digest>),
}

fn begin_upload(state: &State, name: &str, query: &HashMap<String, String>) -> ApiResult<Begun> {
    let writer = state.stores.writer_or_refuse()?;
    if let Some(mount) = query.get("mount") {
        let d = parse_digest(mount)?;
        // Without `from`, any repository's copy will do: every user of this registry sees all.
        let visible = match query.get("from") {
            Some(from) if valid_name(from) => state.stores.blob_len(from, &d)?.is_some(),
            Some(_) => false,
            None => true,
        };
        if visible && writer.mount_blob(name, &d)? {
            return Ok(Begun::Mounted(d));
        }
    }
    let digest = query.get("digest").map(|d| parse_digest(d)).transpose()?;
    Ok(Begun::Session(writer.start_upload(name)?, digest))
}

async fn start_upload(
    state: &Arc<State>,
    name: &str,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let (n, q) = (name.to_string(), query.clone());
    match with_storage(state, move |s| begin_upload(s, &n, &q)).await? {
        Begun::Mounted(d) => Ok(blob_created(name, &d)),
        Begun::Session(id, None) => Ok(upload_response(202, name, &id, 0)),
        Begun::Session(id, Some(d)) => {
            receive(state, name, &id, None, Then::Finish(d.clone()), req).await?;
            Ok(blob_created(name, &d))
        }
    }
}

/// What follows a request body appended to a session.
enum Then {
    /// A PATCH: the session goes on. A chunk that fails is not kept and may be sent again,
    /// unless the storage itself failed (a full disk), which ends the session.
    GoOn,
    /// A PUT, or a POST with the whole blob: the upload ends here, and whatever stops it ends
    /// its session.
    Finish(Digest),
}

/// Appends the request body at `offset` (the session's length when `None`) and does what
/// follows, all on the blocking pool: there it runs to the end even when the client goes away
/// mid-body and the request's future is dropped, so no session is left half done. With a
/// Content-Range, the body must be exactly as long as the range says.
async fn receive(
    state: &Arc<State>,
    name: &str,
    id: &str,
    range: Option<(u64, u64)>,
    then: Then,
    req: Request<Incoming>,
) -> ApiResult<u64> {
    let exact = range.map(|(start, end)| end - start + 1);
    let declared = header_str(req.headers(), "content-length").and_then(|l| l.parse::<u64>().ok());
    let stores = state.stores.clone();
    let (name, id) = (name.to_string(), id.to_string());
    let wrong_length = match (exact, declared) {
        (Some(want), Some(got)) if want != got => Some(ApiError::new(
            Code::RangeInvalid,
            format!("the chunk is {got} bytes long, but its Content-Range declares {want}"),
        )),
        _ => None,
    };
    body::with_body_reader(req.into_body(), exact, state.limits.idle_timeout, move |r| {
        let w = stores.writer_or_refuse()?;
        let received = (|| {
            if let Some(e) = wrong_length {
                return Err(e);
            }
            let offset = match range {
                Some((start, _)) => start,
                None => w.upload_len(&name, &id)?.ok_or_else(|| {
                    ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {name}"))
                })?,
            };
            let len = w.append_upload(&name, &id, offset, r)?;
            if let Then::Finish(d) = &then {
                w.finish_upload(&name, &id, d)?;
            }
            Ok(len)
        })();
        if let Err(e) = &received {
            if matches!(then, Then::Finish(_)) || e.status >= 500 {
                let _ = w.cancel_upload(&name, &id);
            }
        }
        received
    })
    .await?
}

fn upload_len(state: &State, name: &str, id: &str) -> ApiResult<u64> {
    state
        .stores
        .writer_or_refuse()?
        .upload_len(name, id)?
        .ok_or_else(|| ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {name}")))
}

fn upload_status(state: &State, name: &str, id: &str) -> ApiResult<Response<Body>> {
    Ok(upload_response(204, name, id, upload_len(state, name, id)?))
}

/// [`upload_len`] on the blocking pool.
async fn session_len(state: &Arc<State>, name: &str, id: &str) -> ApiResult<u64> {
    let (n, i) = (name.to_string(), id.to_string());
    with_storage(state, move |s| upload_len(s, &n, &i)).await
}

fn cancel_upload(state: &State, name: &str, id: &str) -> ApiResult<Response<Body>> {
    if state.stores.writer_or_refuse()?.cancel_upload(name, id)? {
        Ok(no_content(204))
    } else {
        Err(ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {name}")))
    }
}

/// `<start>-<end>` (also with a `bytes ` or `bytes=` prefix and a `/<total>` suffix), inclusive,
/// `start <= end`.
pub(crate) fn parse_content_range(text: &str) -> Option<(u64, u64)> {
    let spec = text.trim();
    let spec = spec.strip_prefix("bytes ").or_else(|| spec.strip_prefix("bytes=")).unwrap_or(spec);
    let spec = spec.split_once('/').map_or(spec, |(range, _)| range);
    let (start, end) = spec.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start <= end).then_some((start, end))
}

fn content_range(req: &Request<Incoming>) -> ApiResult<Option<(u64, u64)>> {
    let Some(text) = header_str(req.headers(), "content-range") else { return Ok(None) };
    parse_content_range(text)
        .map(Some)
        .ok_or_else(|| ApiError::new(Code::RangeInvalid, format!("Content-Range '{text}' is not <start>-<end>")))
}

/// The answer to a chunk that does not start where the session ends: 416, with where to resume.
/// The session is kept, for the client to send the right chunk.
fn out_of_order(name: &str, id: &str, current: u64) -> Response<Body> {
    let e = ApiError::new(Code::RangeInvalid, format!("upload {id} has {current} bytes; the chunk must start there"));
    let mut resp = crate::routes::error_response(&e);
    let h = resp.headers_mut();
    h.insert(LOCATION, format!("/v2/{name}/blobs/uploads/{id}").parse().expect("header value"));
    h.insert(RANGE, format!("0-{}", current.saturating_sub(1)).parse().expect("header value"));
    resp
}

async fn patch_upload(state: &Arc<State>, name: &str, id: &str, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let current = session_len(state, name, id).await?;
    let range = content_range(&req)?;
    if range.is_some_and(|(start, _)| start != current) {
        return Ok(out_of_order(name, id, current));
    }
    let len = receive(state, name, id, range, Then::GoOn, req).await?;
    Ok(upload_response(202, name, id, len))
}

async fn finish_upload(
    state: &Arc<State>,
    name: &str,
    id: &str,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let current = session_len(state, name, id).await?;
    if let Ok(Some((start, _))) = content_range(&req) {
        if start != current {
            return Ok(out_of_order(name, id, current));
        }
    }
    let digest = query
        .get("digest")
        .ok_or_else(|| ApiError::new(Code::DigestInvalid, "the digest query parameter is required"))
        .and_then(|d| parse_digest(d));
    let range = content_range(&req);
    let (d, range) = match (digest, range) {
        (Ok(d), Ok(range)) => (d, range),
        // The PUT closes the upload whatever its outcome, as distribution does on a digest mismatch.
        (Err(e), _) | (_, Err(e)) => {
            let (stores, n, i) = (state.stores.clone(), name.to_string(), id.to_string());
            body::blocking(move || stores.writer_or_refuse()?.cancel_upload(&n, &i)).await?;
            return Err(e);
        }
    };
    receive(state, name, id, range, Then::Finish(d.clone()), req).await?;
    Ok(blob_created(name, &d))
}

fn referrers(state: &State, name: &str, digest: &str, query: &HashMap<String, String>) -> ApiResult<Response<Body>> {
    let d = parse_digest(digest)?;
    let mut manifests = state.stores.referrers(name, &d)?;
    let filter = query.get("artifactType");
    if let Some(t) = filter {
        manifests.retain(|m| m.get("artifactType").and_then(Value::as_str) == Some(t));
    }
    let mut resp =
        json_response(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}), OCI_INDEX);
    if filter.is_some() {
        resp.headers_mut().insert("OCI-Filters-Applied", "artifactType".parse().expect("header value"));
    }
    Ok(resp)
}
