//! An S3-compatible bucket that accepts pushes (AWS S3, MinIO, Ceph RGW), addressed path-style.
//!
//! ```text
//! PREFIX/blobs/sha256/<hex>                          content, put only after its digest is checked
//! PREFIX/_uploads/<id>/session                       the repository an upload session is for
//! PREFIX/_uploads/<id>/<offset, 20 digits>           the bytes received so far, in pieces
//! PREFIX/repositories/<name>/_blobs/<hex>            the blobs a repository may serve (holds the size)
//! PREFIX/repositories/<name>/_manifests/<hex>        its manifests (holds the media type)
//! PREFIX/repositories/<name>/_tags/<tag>             tag → digest
//! PREFIX/repositories/<name>/_referrers/<subject>/<hex>  descriptor JSON, for the referrers API
//! ```
//!
//! Everything a request needs is in the bucket, so replicas behind a load balancer can serve one
//! bucket: an upload started on one may be continued and finished on another. S3 cannot append,
//! so each chunk is stored as pieces of its own; finishing streams the pieces through the hash
//! into a multipart upload of the blob's key that is completed only when the digest matches.
//! An incomplete multipart upload is invisible, so a server killed at any point leaves no
//! partial blob, and two clients finishing the same blob write the same bytes to the same key.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use bundles::digest::{blob_path, Digest};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{StatusCode, Url};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::Value;

use super::dir::random_id;
use super::{subject_of, NewManifest, Storage, StoredManifest, WritableStorage};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{hash_reader, parse_digest};

/// A PATCH body is stored in pieces of at most this size, and a blob is put in parts of this size:
/// it bounds the memory of one upload, and is above S3's 5 MiB minimum part.
const PIECE: usize = 8 << 20;
/// How long a presigned request stays valid; each is sent as soon as it is signed.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// `s3://BUCKET[/PREFIX]?endpoint=URL[&region=R]`, parsed.
#[derive(Debug, Clone)]
pub struct S3Location {
    pub endpoint: Url,
    pub bucket: String,
    /// Keys start with this (`""` or ending in `/`), so one bucket can hold several registries.
    pub prefix: String,
    pub region: String,
    /// Access key and secret; `None` reads `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), then the `AWS_PROFILE` (or default) profile of `~/.aws/credentials`.
    pub credentials: Option<(String, String)>,
    /// A CA (PEM) to trust besides the system's, for an endpoint with a private certificate.
    pub ca_file: Option<PathBuf>,
}

impl S3Location {
    pub fn parse(text: &str) -> anyhow::Result<S3Location> {
        let usage = "expected s3://BUCKET[/PREFIX]?endpoint=URL[&region=REGION]";
        let rest = text.strip_prefix("s3://").ok_or_else(|| anyhow::anyhow!("'{text}': {usage}"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            anyhow::bail!("'{text}': '{bucket}' is not a bucket name; {usage}");
        }
        let (mut endpoint, mut region, mut ca_file) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = Some(v.into_owned()),
                "ca-file" => ca_file = Some(PathBuf::from(v.as_ref())),
                other => anyhow::bail!("'{text}': unknown parameter '{other}'; {usage}[&ca-file=PEM]"),
            }
        }
        let region = region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = Url::parse(&endpoint).map_err(|e| anyhow::anyhow!("'{text}': endpoint '{endpoint}': {e}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(S3Location {
            endpoint,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            region,
            credentials: None,
            ca_file,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bucket {} at {}", self.bucket, self.endpoint.as_str().trim_end_matches('/'))
    }
}

pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    client: Client,
    prefix: String,
    /// "bucket B at URL", for messages.
    name: String,
}

/// One page-joined listing: objects (key relative to the prefix, size) and, with a delimiter,
/// the "directories" below.
#[derive(Default)]
struct Listing {
    objects: Vec<(String, u64)>,
    dirs: Vec<String>,
    /// The latest modification time (RFC 3339, UTC, so the greatest string is the latest).
    newest: Option<String>,
}

/// A whole answer: small objects, listings and the results of writes.
struct Answer {
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The `<Code>` and `<Message>` of an S3 error body, for messages people read.
fn s3_error_text(body: &str) -> String {
    let tag = |t: &str| {
        let start = body.find(&format!("<{t}>"))? + t.len() + 2;
        let end = body[start..].find(&format!("</{t}>"))? + start;
        Some(body[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => body.chars().take(200).collect(),
    }
}

/// `text` with the query of every URL in it cut off: an error from the HTTP client names the
/// request's URL, and a presigned URL's query is a credential for as long as it is valid.
fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let url_end =
            rest[at..].find(|c: char| c.is_whitespace() || c == ')' || c == '"').map_or(rest.len(), |e| at + e);
        let query = rest[at..url_end].find('?').map_or(url_end, |q| at + q);
        out.push_str(&rest[..query]);
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    out
}

fn credentials(loc: &S3Location) -> anyhow::Result<Credentials> {
    if let Some((key, secret)) = &loc.credentials {
        return Ok(Credentials::new(key, secret));
    }
    let profile = std::env::var("AWS_PROFILE").ok();
    let found = awscreds::Credentials::new(None, None, None, None, profile.as_deref()).map_err(|e| {
        anyhow::anyhow!(
            "no credentials for the S3 {loc}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in \
             ~/.aws/credentials ({e})"
        )
    })?;
    let (Some(key), Some(secret)) = (found.access_key, found.secret_key) else {
        anyhow::bail!("the credentials found for the S3 {loc} have no access key or secret");
    };
    Ok(match found.session_token.or(found.security_token) {
        Some(token) => Credentials::new_with_token(key, secret, token),
        None => Credentials::new(key, secret),
    })
}

impl S3Store {
    /// Connects and checks that the bucket is there and the credentials are accepted, so a
    /// mistake shows at start-up rather than on the first push.
    pub fn open(loc: &S3Location) -> anyhow::Result<S3Store> {
        let bucket = Bucket::new(loc.endpoint.clone(), UrlStyle::Path, loc.bucket.clone(), loc.region.clone())
            .map_err(|e| anyhow::anyhow!("S3 {loc}: {e}"))?;
        let store = S3Store {
            bucket,
            credentials: credentials(loc)?,
            client: crate::tls::https_client(loc.ca_file.as_deref())?,
            prefix: loc.prefix.clone(),
            name: loc.to_string(),
        };
        let mut probe = store.bucket.list_objects_v2(Some(&store.credentials));
        probe.with_prefix(store.prefix.as_str());
        probe.with_max_keys(1);
        let resp = store.client.get(probe.sign(SIGNED_FOR)).send().map_err(|e| {
            anyhow::anyhow!("cannot reach the S3 endpoint of {loc}: {}", without_queries(&e.to_string()))
        })?;
        let status = resp.status();
        if !status.is_success() {
            let why = s3_error_text(&resp.text().unwrap_or_default());
            match status {
                StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => anyhow::bail!(
                    "the S3 endpoint refused the credentials for {loc} ({why}): check AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (or the AWS profile), and that they may list, read and write the bucket"
                ),
                StatusCode::NOT_FOUND => {
                    anyhow::bail!("S3 {loc}: the bucket does not exist ({why}); create it first, e.g. `mc mb`")
                }
                _ => anyhow::bail!("S3 {loc}: listing the bucket answered {status} ({why})"),
            }
        }
        Ok(store)
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    fn err(&self, what: &str, detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(Code::Internal, format!("S3 {}: {what}: {}", self.name, without_queries(&detail.to_string())))
    }

    /// Sends, and turns a transport failure or an unexpected status into an error naming `what`;
    /// 404 comes back as `None`.
    fn send(&self, what: &str, req: RequestBuilder) -> ApiResult<Option<Response>> {
        let resp = req.send().map_err(|e| self.err(what, e))?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp)),
            StatusCode::NOT_FOUND => Ok(None),
            s => {
                let why = s3_error_text(&resp.text().unwrap_or_default());
                Err(self.err(what, format!("{s} ({why})")))
            }
        }
    }

    /// [`S3Store::send`] and the whole body. The server calls some storage methods on its async
    /// workers (the directory store's file operations are short enough there), where a blocking
    /// HTTP client must not run: there it runs in `block_in_place`.
    fn call(&self, what: &str, req: RequestBuilder) -> ApiResult<Option<Answer>> {
        let run = || {
            let Some(resp) = self.send(what, req)? else { return Ok(None) };
            let headers = resp.headers().clone();
            let body = resp.bytes().map_err(|e| self.err(what, e))?;
            Ok(Some(Answer { headers, body }))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }

    /// [`S3Store::call`] where 404 is an error too.
    fn call_found(&self, what: &str, req: RequestBuilder) -> ApiResult<Answer> {
        self.call(what, req)?.ok_or_else(|| self.err(what, "404 Not Found"))
    }

    fn get(&self, rel: &str) -> ApiResult<Option<Vec<u8>>> {
        let key = self.key(rel);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        Ok(self.call(&format!("GET {key}"), self.client.get(url))?.map(|a| a.body.to_vec()))
    }

    fn get_text(&self, rel: &str) -> ApiResult<Option<String>> {
        Ok(self.get(rel)?.map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// The size of an object, `None` when it is not there.
    fn head(&self, rel: &str) -> ApiResult<Option<u64>> {
        let key = self.key(rel);
        let url = self.bucket.head_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let Some(resp) = self.call(&format!("HEAD {key}"), self.client.head(url))? else { return Ok(None) };
        let len = resp.headers.get(reqwest::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        len.map(Some).ok_or_else(|| self.err(&format!("HEAD {key}"), "no Content-Length"))
    }

    fn put(&self, rel: &str, bytes: Vec<u8>) -> ApiResult<()> {
        let key = self.key(rel);
        let url = self.bucket.put_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        self.call_found(&format!("PUT {key}"), self.client.put(url).body(bytes)).map(|_| ())
    }

    fn remove(&self, rel: &str) -> ApiResult<()> {
        let key = self.key(rel);
        let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        self.call(&format!("DELETE {key}"), self.client.delete(url)).map(|_| ())
    }

    /// Deletes an object; `false` when it was not there (S3 itself does not say).
    fn delete(&self, rel: &str) -> ApiResult<bool> {
        let found = self.head(rel)?.is_some();
        if found {
            self.remove(rel)?;
        }
        Ok(found)
    }

    /// Everything under `rel_prefix`, sorted by key; with `dirs`, only one level, the rest as
    /// directory names (relative, ending in `/`).
    fn list(&self, rel_prefix: &str, dirs: bool) -> ApiResult<Listing> {
        let prefix = self.key(rel_prefix);
        let what = format!("listing {prefix}");
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix.as_str());
            if dirs {
                action.with_delimiter("/");
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let resp = self.call_found(&what, self.client.get(action.sign(SIGNED_FOR)))?;
            let page = ListObjectsV2::parse_response(&resp.text()).map_err(|e| self.err(&what, e))?;
            let strip = |k: &str| k.strip_prefix(self.prefix.as_str()).unwrap_or(k).to_string();
            out.objects.extend(page.contents.iter().map(|o| (strip(&o.key), o.size.unwrap_or(0))));
            out.dirs.extend(page.common_prefixes.iter().map(|p| strip(&p.prefix)));
            out.newest = page.contents.iter().filter_map(|o| o.last_modified.clone()).chain(out.newest).max();
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(out)
    }

    fn repo(repo: &str) -> String {
        format!("repositories/{repo}/")
    }

    fn linked(repo: &str, kind: &str, d: &Digest) -> String {
        format!("repositories/{repo}/{kind}/{}", d.digest())
    }

    fn collect_repos(&self, dir: &str, name: &str, out: &mut Vec<String>) -> ApiResult<()> {
        for sub in self.list(dir, true)?.dirs {
            let child = sub[dir.len()..].trim_end_matches('/');
            if child == "_manifests" && !name.is_empty() {
                out.push(name.to_string());
            } else if !child.starts_with('_') {
                let full = if name.is_empty() { child.to_string() } else { format!("{name}/{child}") };
                self.collect_repos(&sub, &full, out)?;
            }
        }
        Ok(())
    }

    fn check_upload_id(id: &str) -> ApiResult<()> {
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(ApiError::new(Code::BlobUploadUnknown, format!("'{id}' is not an upload session")))
        }
    }

    fn unknown_upload(repo: &str, id: &str) -> ApiError {
        ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {repo}"))
    }

    /// The session's pieces (key, size) in order, after checking that it belongs to `repo`.
    fn pieces(&self, repo: &str, id: &str) -> ApiResult<Option<Vec<(String, u64)>>> {
        Self::check_upload_id(id)?;
        if self.get_text(&format!("_uploads/{id}/session"))?.as_deref() != Some(repo) {
            return Ok(None);
        }
        let mut objects = self.list(&format!("_uploads/{id}/"), false)?.objects;
        objects.retain(|(k, _)| !k.ends_with("/session"));
        Ok(Some(objects))
    }

    fn end_session(&self, id: &str) -> ApiResult<()> {
        for (key, _) in self.list(&format!("_uploads/{id}/"), false)?.objects {
            self.remove(&key)?;
        }
        Ok(())
    }

    /// Streams the pieces in order through `sink`, returning their digest under `algorithm`.
    fn hash_pieces(&self, pieces: &[(String, u64)], algorithm: &str, sink: &mut dyn Write) -> ApiResult<Digest> {
        let mut reader = PiecesReader { store: self, pieces: pieces.iter(), current: None };
        let mut tee = Tee { inner: &mut reader, sink };
        hash_reader(algorithm, &mut tee).map_err(|e| self.err("reading an upload back", e))
    }
}

/// The pieces of an upload, read one after the other as a single stream.
struct PiecesReader<'a> {
    store: &'a S3Store,
    pieces: std::slice::Iter<'a, (String, u64)>,
    current: Option<Response>,
}

impl Read for PiecesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                match r.read(buf)? {
                    0 => self.current = None,
                    n => return Ok(n),
                }
            }
            let Some((key, _)) = self.pieces.next() else { return Ok(0) };
            let full = self.store.key(key);
            let url = self.store.bucket.get_object(Some(&self.store.credentials), &full).sign(SIGNED_FOR);
            let resp = self.store.send(&format!("GET {full}"), self.store.client.get(url)).map_err(io::Error::other)?;
            self.current = Some(resp.ok_or_else(|| io::Error::other(format!("{full} vanished")))?);
        }
    }
}

/// Copies what is read into `sink` as well.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    sink: &'a mut dyn Write,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Writes one object: a single put when it fits in [`PIECE`], else a multipart upload that is
/// completed only by [`ObjectWriter::finish`] (and aborted by [`ObjectWriter::abort`]).
struct ObjectWriter<'a> {
    store: &'a S3Store,
    rel: String,
    key: String,
    buf: Vec<u8>,
    upload_id: Option<String>,
    etags: Vec<String>,
}

impl<'a> ObjectWriter<'a> {
    fn new(store: &'a S3Store, rel: &str) -> ObjectWriter<'a> {
        ObjectWriter {
            store,
            rel: rel.to_string(),
            key: store.key(rel),
            buf: Vec::new(),
            upload_id: None,
            etags: Vec::new(),
        }
    }

    fn upload_part(&mut self, part: Vec<u8>) -> ApiResult<()> {
        let s = self.store;
        let what = format!("multipart upload of {}", self.key);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let url = s.bucket.create_multipart_upload(Some(&s.credentials), &self.key).sign(SIGNED_FOR);
                let text = s.call_found(&what, s.client.post(url))?.text();
                let id =
                    CreateMultipartUpload::parse_response(&text).map_err(|e| s.err(&what, e))?.upload_id().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = u16::try_from(self.etags.len() + 1).map_err(|_| s.err(&what, "more than 65535 parts"))?;
        let url = s.bucket.upload_part(Some(&s.credentials), &self.key, number, &upload_id).sign(SIGNED_FOR);
        let resp = s.call_found(&what, s.client.put(url).body(part))?;
        let etag = resp.headers.get(reqwest::header::ETAG).and_then(|v| v.to_str().ok());
        self.etags.push(etag.ok_or_else(|| s.err(&what, "a part without an ETag"))?.to_string());
        Ok(())
    }

    fn finish(mut self) -> ApiResult<()> {
        let s = self.store;
        let Some(upload_id) = self.upload_id.clone() else {
            return s.put(&self.rel, std::mem::take(&mut self.buf));
        };
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.upload_part(last)?;
        }
        let what = format!("completing the multipart upload of {}", self.key);
        let action = s.bucket.complete_multipart_upload(
            Some(&s.credentials),
            &self.key,
            &upload_id,
            self.etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        // S3 may report a failed completion with 200 and an error document.
        let text = s.call_found(&what, s.client.post(url).body(action.body()))?.text();
        if text.contains("<Error>") {
            return Err(s.err(&what, s3_error_text(&text)));
        }
        Ok(())
    }

    fn abort(self) {
        if let Some(id) = &self.upload_id {
            let s = self.store;
            let url = s.bucket.abort_multipart_upload(Some(&s.credentials), &self.key, id).sign(SIGNED_FOR);
            let _ = s.call("aborting a multipart upload", s.client.delete(url));
        }
    }
}

impl Write for ObjectWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= PIECE {
            let rest = self.buf.split_off(PIECE);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part).map_err(io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fills `buf` from `r` up to its capacity, stopping early only at the end of the stream.
fn read_piece(r: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut chunk = vec![0u8; 256 << 10];
    while buf.len() < PIECE {
        let want = chunk.len().min(PIECE - buf.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Storage for S3Store {
    fn repositories(&self) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        self.collect_repos("repositories/", "", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        let base = Self::repo(repo);
        let dirs = self.list(&base, true)?.dirs;
        if !dirs.iter().any(|d| d.ends_with("/_manifests/") || d.ends_with("/_tags/")) {
            return Ok(None);
        }
        let tags = format!("{base}_tags/");
        let mut names: Vec<String> =
            self.list(&tags, false)?.objects.into_iter().map(|(k, _)| k[tags.len()..].to_string()).collect();
        names.sort();
        Ok(Some(names))
    }

    fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        let rel = format!("{}_tags/{tag}", Self::repo(repo));
        match self.get_text(&rel)? {
            None => Ok(None),
            Some(text) => parse_digest(&text).map(Some).map_err(|e| self.err(&rel, e.message)),
        }
    }

    fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>> {
        let Some(media_type) = self.get_text(&Self::linked(repo, "_manifests", d))? else { return Ok(None) };
        let bytes =
            self.get(&blob_path(d))?.ok_or_else(|| self.err(&blob_path(d), "the manifest's blob is missing"))?;
        Ok(Some(StoredManifest { bytes, media_type }))
    }

    fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        let rel = Self::linked(repo, "_blobs", d);
        match self.get_text(&rel)? {
            None => Ok(None),
            Some(size) => size.parse().map(Some).map_err(|_| self.err(&rel, format!("'{size}' is not a size"))),
        }
    }

    fn open_blob(&self, _repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        if len == 0 {
            return Ok(Box::new(io::empty()));
        }
        let key = self.key(&blob_path(d));
        let what = format!("GET {key}");
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let range = format!("bytes={start}-{}", start + len - 1);
        let resp = self.send(&what, self.client.get(url).header(reqwest::header::RANGE, range))?;
        let resp = resp.ok_or_else(|| self.err(&what, "the blob is missing from the bucket"))?;
        if resp.status() != StatusCode::PARTIAL_CONTENT && start != 0 {
            return Err(self.err(&what, format!("answered {} to a range request", resp.status())));
        }
        Ok(Box::new(resp.take(len)))
    }

    fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>> {
        let dir = format!("{}_referrers/{}/", Self::repo(repo), d.digest());
        let mut out = Vec::new();
        for (key, _) in self.list(&dir, false)?.objects {
            if let Some(bytes) = self.get(&key)? {
                out.push(serde_json::from_slice(&bytes).map_err(|e| self.err(&key, e))?);
            }
        }
        Ok(out)
    }

    fn writable(&self) -> Option<&dyn WritableStorage> {
        Some(self)
    }
}

impl WritableStorage for S3Store {
    fn start_upload(&self, repo: &str) -> ApiResult<String> {
        let id = random_id();
        self.put(&format!("_uploads/{id}/session"), repo.as_bytes().to_vec())?;
        Ok(id)
    }

    fn upload_len(&self, repo: &str, id: &str) -> ApiResult<Option<u64>> {
        Ok(self.pieces(repo, id)?.map(|p| p.iter().map(|(_, size)| size).sum()))
    }

    fn append_upload(&self, repo: &str, id: &str, offset: u64, data: &mut dyn Read) -> ApiResult<u64> {
        let len = self.upload_len(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        if offset != len {
            return Err(ApiError::new(
                Code::RangeInvalid,
                format!("upload {id} has {len} bytes; a chunk starting at {offset} does not follow on"),
            ));
        }
        let mut at = len;
        let mut put = Vec::new();
        let mut buf = Vec::with_capacity(PIECE);
        let copied = loop {
            if let Err(e) = read_piece(data, &mut buf) {
                break Err(ApiError::request_body(format!("upload {id}"), e));
            }
            if buf.is_empty() {
                break Ok(at);
            }
            let n = buf.len() as u64;
            // Zero-padded offsets list in order.
            let key = format!("_uploads/{id}/{at:020}");
            if let Err(e) = self.put(&key, std::mem::take(&mut buf)) {
                break Err(e);
            }
            put.push(key);
            at += n;
            buf.reserve(PIECE);
        };
        if copied.is_err() {
            // A chunk is kept whole or not at all, so the session's length stays true.
            for key in &put {
                self.remove(key)?;
            }
        }
        copied
    }

    fn expire_uploads(&self, idle_for: Duration) -> ApiResult<usize> {
        let mut ended = 0;
        for session in self.list("_uploads/", true)?.dirs {
            let newest = self.list(&session, false)?.newest;
            let idle = newest.and_then(|t| humantime::parse_rfc3339(&t).ok()).and_then(|t| t.elapsed().ok());
            if idle.is_some_and(|a| a > idle_for) {
                self.end_session(session.trim_start_matches("_uploads/").trim_end_matches('/'))?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> ApiResult<()> {
        let pieces = self.pieces(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        let result = (|| {
            let size: u64 = pieces.iter().map(|(_, s)| s).sum();
            let dest = blob_path(digest);
            let algorithm = digest.algorithm().as_ref().to_string();
            let mismatch =
                |got: Digest| ApiError::new(Code::DigestInvalid, format!("upload {id} hashes to {got}, not {digest}"));
            if self.head(&dest)?.is_some() {
                // Already stored by another push: check this upload all the same.
                let got = self.hash_pieces(&pieces, &algorithm, &mut io::sink())?;
                if &got != digest {
                    return Err(mismatch(got));
                }
            } else {
                let mut writer = ObjectWriter::new(self, &dest);
                let got = match self.hash_pieces(&pieces, &algorithm, &mut writer) {
                    Ok(got) => got,
                    Err(e) => {
                        writer.abort();
                        return Err(e);
                    }
                };
                if &got != digest {
                    writer.abort();
                    return Err(mismatch(got));
                }
                writer.finish()?;
            }
            self.put(&Self::linked(repo, "_blobs", digest), size.to_string().into_bytes())
        })();
        self.end_session(id)?;
        result
    }

    fn cancel_upload(&self, repo: &str, id: &str) -> ApiResult<bool> {
        if self.pieces(repo, id)?.is_none() {
            return Ok(false);
        }
        self.end_session(id)?;
        Ok(true)
    }

    fn mount_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        let Some(size) = self.head(&blob_path(d))? else { return Ok(false) };
        self.put(&Self::linked(repo, "_blobs", d), size.to_string().into_bytes())?;
        Ok(true)
    }

    fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> ApiResult<()> {
        let dest = blob_path(m.digest);
        if self.head(&dest)?.is_none() {
            self.put(&dest, m.bytes.to_vec())?;
        }
        // The manifest is also a blob of the repository, as distribution serves it.
        self.put(&Self::linked(repo, "_blobs", m.digest), m.bytes.len().to_string().into_bytes())?;
        self.put(&Self::linked(repo, "_manifests", m.digest), m.media_type.as_bytes().to_vec())?;
        if let Some((subject, desc)) = &m.referrer {
            let rel = format!("{}_referrers/{}/{}", Self::repo(repo), subject.digest(), m.digest.digest());
            self.put(&rel, serde_json::to_vec(desc).expect("a descriptor serializes"))?;
        }
        for tag in m.tags {
            self.put(&format!("{}_tags/{tag}", Self::repo(repo)), m.digest.to_string().into_bytes())?;
        }
        Ok(())
    }

    fn delete_manifest(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        let Some(m) = self.manifest(repo, d)? else { return Ok(false) };
        for tag in self.tags(repo)?.unwrap_or_default() {
            if self.resolve_tag(repo, &tag)?.as_ref() == Some(d) {
                self.delete(&format!("{}_tags/{tag}", Self::repo(repo)))?;
            }
        }
        if let Some(s) = subject_of(&m.bytes) {
            self.delete(&format!("{}_referrers/{}/{}", Self::repo(repo), s.digest(), d.digest()))?;
        }
        self.delete(&Self::linked(repo, "_manifests", d))
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> ApiResult<bool> {
        self.delete(&format!("{}_tags/{tag}", Self::repo(repo)))
    }

    fn delete_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        self.delete(&Self::linked(repo, "_blobs", d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = S3Location::parse("s3://blobs/site/registry/?endpoint=http://127.0.0.1:9000&region=eu-1").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str(), l.region.as_str()), ("blobs", "site/registry/", "eu-1"));
        assert_eq!(l.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(l.to_string(), "bucket blobs at http://127.0.0.1:9000");
        assert_eq!(S3Location::parse("s3://b?endpoint=http://h:1").unwrap().prefix, "");
        for bad in ["s3://", "s3://b?endpoint=notaurl", "s3://b?colour=red", "s3://a b?endpoint=http://h"] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_carry_a_presigned_query() {
        let text = "error sending request for url (http://127.0.0.1:9/b/k?X-Amz-Signature=abc&X-Amz-Credential=k) \
                    then http://h/x?y=1 and https://h/z";
        assert_eq!(
            without_queries(text),
            "error sending request for url (http://127.0.0.1:9/b/k) then http://h/x and https://h/z"
        );
    }

    #[test]
    fn error_bodies_are_summarised() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The key is wrong.</Message></Error>";
        assert_eq!(s3_error_text(body), "InvalidAccessKeyId: The key is wrong.");
    }
}
