//! The S3 driver: a key is an object of a bucket (AWS S3, MinIO, Ceph RGW), addressed
//! path-style, below an optional prefix. A streamed object is a multipart upload, invisible
//! until it is completed, so a server killed at any point leaves no partial object.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{StatusCode, Url};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::objects::{Entry, ObjectStore, ObjectWriter};
use crate::error::{ApiError, ApiResult, Code};

/// A streamed object is put in parts of this size: it bounds the memory of one writer, and is
/// above S3's 5 MiB minimum part.
const PART: usize = 8 << 20;
/// How long a presigned request stays valid; each is sent as soon as it is signed.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// The header that makes a PutObject a server-side CopyObject; signed, as AWS wants every
/// `x-amz-*` header of a request to be.
const COPY_SOURCE: &str = "x-amz-copy-source";

/// `s3://BUCKET[/PREFIX]?endpoint=URL[&region=R]`, parsed.
#[derive(Debug, Clone)]
pub struct S3Location {
    /// The service's URL (`https://s3.<region>.amazonaws.com` when none is given).
    pub endpoint: Url,
    /// The bucket, which must exist.
    pub bucket: String,
    /// Keys start with this (`""` or ending in `/`), so one bucket can hold several registries.
    pub prefix: String,
    /// The region requests are signed for; `us-east-1` suits MinIO and most others.
    pub region: String,
    /// Access key and secret; `None` reads `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), then the `AWS_PROFILE` (or default) profile of `~/.aws/credentials`.
    pub credentials: Option<(String, String)>,
    /// A CA (PEM) to trust besides the system's, for an endpoint with a private certificate.
    pub ca_file: Option<PathBuf>,
}

impl S3Location {
    /// Reads `s3://BUCKET[/PREFIX]?endpoint=URL[&region=R][&ca-file=PEM]`; the region falls back on
    /// `AWS_REGION`, then `AWS_DEFAULT_REGION`. Credentials are left to [`S3Objects::open`].
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

/// The S3 driver, connected, with its credentials.
pub struct S3Objects {
    bucket: Bucket,
    credentials: Credentials,
    client: Client,
    prefix: String,
    /// "bucket B at URL", for messages.
    name: String,
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

impl S3Objects {
    /// Connects and checks that the bucket is there and the credentials are accepted, so a
    /// mistake shows at start-up rather than on the first push.
    pub fn open(loc: &S3Location) -> anyhow::Result<S3Objects> {
        let bucket = Bucket::new(loc.endpoint.clone(), UrlStyle::Path, loc.bucket.clone(), loc.region.clone())
            .map_err(|e| anyhow::anyhow!("S3 {loc}: {e}"))?;
        let store = S3Objects {
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

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
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

    /// [`S3Objects::send`] and the whole body, where 404 is an error too.
    fn call(&self, what: &str, req: RequestBuilder) -> ApiResult<(reqwest::header::HeaderMap, bytes::Bytes)> {
        let resp = self.send(what, req)?.ok_or_else(|| self.err(what, "404 Not Found"))?;
        let headers = resp.headers().clone();
        Ok((headers, resp.bytes().map_err(|e| self.err(what, e))?))
    }
}

impl ObjectStore for S3Objects {
    fn get(&self, key: &str) -> ApiResult<Option<Vec<u8>>> {
        let key = self.key(key);
        let what = format!("GET {key}");
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let Some(resp) = self.send(&what, self.client.get(url))? else { return Ok(None) };
        Ok(Some(resp.bytes().map_err(|e| self.err(&what, e))?.to_vec()))
    }

    fn read(&self, key: &str, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        if len == 0 {
            return Ok(Box::new(io::empty()));
        }
        let key = self.key(key);
        let what = format!("GET {key}");
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let range = format!("bytes={start}-{}", start + len - 1);
        let resp = self.send(&what, self.client.get(url).header(reqwest::header::RANGE, range))?;
        let resp = resp.ok_or_else(|| self.err(&what, "the object is missing from the bucket"))?;
        if resp.status() != StatusCode::PARTIAL_CONTENT && start != 0 {
            return Err(self.err(&what, format!("answered {} to a range request", resp.status())));
        }
        Ok(Box::new(resp.take(len)))
    }

    fn head(&self, key: &str) -> ApiResult<Option<u64>> {
        let key = self.key(key);
        let what = format!("HEAD {key}");
        let url = self.bucket.head_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        let Some(resp) = self.send(&what, self.client.head(url))? else { return Ok(None) };
        let len = resp.headers().get(reqwest::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        len.map(Some).ok_or_else(|| self.err(&what, "no Content-Length"))
    }

    fn list(&self, prefix: &str) -> ApiResult<Vec<Entry>> {
        let full = self.key(prefix);
        let what = format!("listing {full}");
        let strip = |k: &str| k.strip_prefix(self.prefix.as_str()).unwrap_or(k).to_string();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(full.as_str());
            action.with_delimiter("/");
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let (_, body) = self.call(&what, self.client.get(action.sign(SIGNED_FOR)))?;
            let page =
                ListObjectsV2::parse_response(&String::from_utf8_lossy(&body)).map_err(|e| self.err(&what, e))?;
            out.extend(page.contents.iter().map(|o| Entry {
                key: strip(&o.key),
                dir: false,
                size: o.size.unwrap_or(0),
                modified: o.last_modified.as_deref().and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
            }));
            out.extend(page.common_prefixes.iter().map(|p| Entry {
                key: strip(&p.prefix),
                dir: true,
                size: 0,
                modified: None,
            }));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> ApiResult<()> {
        let key = self.key(key);
        let url = self.bucket.put_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        self.call(&format!("PUT {key}"), self.client.put(url).body(bytes.to_vec())).map(|_| ())
    }

    /// S3 does not say whether there was an object, so this asks first.
    fn delete(&self, key: &str) -> ApiResult<bool> {
        if self.head(key)?.is_none() {
            return Ok(false);
        }
        let key = self.key(key);
        let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        self.send(&format!("DELETE {key}"), self.client.delete(url))?;
        Ok(true)
    }

    /// S3 cannot rename: a CopyObject (the bytes stay in the bucket; up to 5 GiB, far above a
    /// piece), then a delete of the source.
    fn rename(&self, from: &str, to: &str) -> ApiResult<()> {
        let (from, to) = (self.key(from), self.key(to));
        let what = format!("copying {from} to {to}");
        // `/bucket/key`, encoded as the object's path-style URL encodes it.
        let source = self.bucket.object_url(&from).path().to_string();
        let mut action = self.bucket.put_object(Some(&self.credentials), &to);
        action.headers_mut().insert(COPY_SOURCE, source.as_str());
        let req = self.client.put(action.sign(SIGNED_FOR)).header(COPY_SOURCE, &source);
        // S3 may report a failed copy with 200 and an error document.
        let (_, body) = self.call(&what, req.header(reqwest::header::CONTENT_LENGTH, 0))?;
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            return Err(self.err(&what, s3_error_text(&text)));
        }
        let url = self.bucket.delete_object(Some(&self.credentials), &from).sign(SIGNED_FOR);
        self.send(&format!("DELETE {from}"), self.client.delete(url))?;
        Ok(())
    }

    fn writer<'a>(&'a self, key: &str) -> ApiResult<Box<dyn ObjectWriter + 'a>> {
        Ok(Box::new(S3Writer {
            store: self,
            rel: key.to_string(),
            key: self.key(key),
            buf: Vec::new(),
            upload_id: None,
            etags: Vec::new(),
        }))
    }
}

/// One put when the object fits in a [`PART`], else a multipart upload that only
/// [`ObjectWriter::commit`] completes.
struct S3Writer<'a> {
    store: &'a S3Objects,
    rel: String,
    key: String,
    buf: Vec<u8>,
    upload_id: Option<String>,
    etags: Vec<String>,
}

impl S3Writer<'_> {
    fn upload_part(&mut self, part: Vec<u8>) -> ApiResult<()> {
        let s = self.store;
        let what = format!("multipart upload of {}", self.key);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let url = s.bucket.create_multipart_upload(Some(&s.credentials), &self.key).sign(SIGNED_FOR);
                let (_, body) = s.call(&what, s.client.post(url))?;
                let parsed = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&body));
                let id = parsed.map_err(|e| s.err(&what, e))?.upload_id().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = u16::try_from(self.etags.len() + 1).map_err(|_| s.err(&what, "more than 65535 parts"))?;
        let url = s.bucket.upload_part(Some(&s.credentials), &self.key, number, &upload_id).sign(SIGNED_FOR);
        let (headers, _) = s.call(&what, s.client.put(url).body(part))?;
        let etag = headers.get(reqwest::header::ETAG).and_then(|v| v.to_str().ok());
        self.etags.push(etag.ok_or_else(|| s.err(&what, "a part without an ETag"))?.to_string());
        Ok(())
    }
}

impl Write for S3Writer<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= PART {
            let rest = self.buf.split_off(PART);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part).map_err(io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer<'_> {
    fn commit(mut self: Box<Self>) -> ApiResult<()> {
        let s = self.store;
        let Some(upload_id) = self.upload_id.clone() else {
            return s.put(&self.rel, &self.buf);
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
        let (_, body) = s.call(&what, s.client.post(url).body(action.body()))?;
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            return Err(s.err(&what, s3_error_text(&text)));
        }
        self.upload_id = None;
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}

impl Drop for S3Writer<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.upload_id {
            let s = self.store;
            let url = s.bucket.abort_multipart_upload(Some(&s.credentials), &self.key, id).sign(SIGNED_FOR);
            let _ = s.send("aborting a multipart upload", s.client.delete(url));
        }
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
