//! Entry point for every request: access control, dispatch by path prefix, error bodies and the
//! access log.

use std::sync::Arc;

use bundles::digest::Digest;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Request, Response};

use crate::auth::{Access, REALM};
use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult, Code};
use crate::server::State;

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let resp = match route(&state, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let bytes = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    state.log.record(method.as_str(), &uri, resp.status().as_u16(), bytes);
    resp
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let access = match *req.method() {
        Method::GET | Method::HEAD => Access::Pull,
        _ => Access::Push,
    };
    if let Some(auth) = &state.auth {
        let header = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        auth.check(header, access).await?;
    }
    if path == "/v2" || path == "/v2/" {
        return Ok(ok_builder(200)
            .header(CONTENT_TYPE, "application/json")
            .body(body::full("{}"))
            .expect("valid response"));
    }
    if access == Access::Push && state.read_only {
        return Err(ApiError::new(Code::Unsupported, "this registry is read-only"));
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return crate::distribution::route(state, rest, req).await;
    }
    if access == Access::Push {
        return Err(ApiError::new(Code::Unsupported, format!("{} is not supported on {path}", req.method())));
    }
    let head = req.method() == Method::HEAD;
    if let Some(rest) = path.strip_prefix("/charts/") {
        return crate::charts::route(state, rest, req.headers(), head).await;
    }
    if let Some(rest) = path.strip_prefix("/files/") {
        return crate::files::route(state, rest, req.headers(), head).await;
    }
    if let Some(rest) = path.strip_prefix("/git/") {
        return crate::git::route(state, rest, head).await;
    }
    let page = match path.as_str() {
        "/" | "/ui" => Some(""),
        p => p.strip_prefix("/ui/"),
    };
    if let Some(rest) = page {
        if let Some(resp) = state.contents.route(rest, head).await {
            return resp;
        }
    }
    Err(ApiError::new(Code::NotFound, format!("nothing is served at {path}")))
}

pub(crate) fn ok_builder(status: u16) -> hyper::http::response::Builder {
    Response::builder().status(status).header("Docker-Distribution-API-Version", "registry/2.0")
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let body = e.body();
    let mut b = ok_builder(e.status).header(CONTENT_TYPE, "application/json").header(CONTENT_LENGTH, body.len());
    if e.code == Code::Unauthorized {
        b = b.header(WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\""));
    }
    b.body(body::full(body)).expect("valid response")
}

/// What to send: a whole blob, or `len` bytes from `base` within it (a file inside a git tar).
pub(crate) struct BlobSlice<'a> {
    pub repo: &'a str,
    pub digest: &'a Digest,
    pub base: u64,
    pub len: u64,
    pub content_type: &'a str,
}

/// Serves a blob slice with Range support, streaming.
pub(crate) async fn blob_response(
    state: &Arc<State>,
    slice: BlobSlice<'_>,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response<Body>> {
    let BlobSlice { repo, digest: d, base, len: total, content_type } = slice;
    let range = match headers.get(hyper::header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match parse_range(r, total) {
            Some(range) => Some(range),
            None => {
                // RFC 9110: a 416 names the representation's length, so the client can ask again.
                let e = ApiError::new(Code::RangeInvalid, format!("range '{r}' is outside the {total} bytes of {d}"));
                let mut resp = error_response(&e);
                let unsatisfied = format!("bytes */{total}").parse().expect("a header value");
                resp.headers_mut().insert(CONTENT_RANGE, unsatisfied);
                return Ok(resp);
            }
        },
        None => None,
    };
    let (start, len, status) = match range {
        Some((s, e)) => (s, e - s + 1, 206),
        None => (0, total, 200),
    };
    let mut b = ok_builder(status)
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, len)
        .header(ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", d.to_string());
    if status == 206 {
        b = b.header(CONTENT_RANGE, format!("bytes {start}-{}/{total}", start + len - 1));
    }
    if head || len == 0 {
        return Ok(b.body(body::empty()).expect("valid response"));
    }
    let (stores, repo_owned, digest) = (state.stores.clone(), repo.to_string(), d.clone());
    let reader = body::blocking(move || stores.open_blob(&repo_owned, &digest, base + start, len)).await?;
    Ok(b.body(body::stream(reader)).expect("valid response"))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n`, one range only, as inclusive bounds.
pub(crate) fn parse_range(text: &str, total: u64) -> Option<(u64, u64)> {
    let spec = text.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.checked_sub(n.min(total))?, total.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, total.checked_sub(1)?),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(total.checked_sub(1)?)),
    };
    (start <= end && end < total).then_some((start, end))
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}
