//! The HTTP side shared by every fetcher: one TLS client with the site's extra CAs, the mirror
//! map, and the retry policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bundles::size::human;
use reqwest::StatusCode;

pub const ATTEMPTS: u32 = 5;

pub fn client(ca_certs: &[PathBuf]) -> Result<reqwest::Client> {
    let ca_files: Vec<&Path> = ca_certs.iter().map(PathBuf::as_path).collect();
    let tls = clientcore::tls_config(&ca_files).context("ca_certs")?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("airgap-bundler/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

/// Upstream host → mirror base URL.
#[derive(Debug, Clone, Default)]
pub struct Mirrors(BTreeMap<String, String>);

impl Mirrors {
    pub fn new(map: &BTreeMap<String, String>) -> Mirrors {
        Mirrors(map.iter().map(|(k, v)| (k.clone(), v.trim_end_matches('/').to_string())).collect())
    }

    /// The URL to fetch instead of `url`: its `scheme://host` replaced by the host's mirror.
    pub fn map_url(&self, url: &str) -> String {
        let Some((_, rest)) = url.split_once("://") else { return url.to_string() };
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match self.0.get(host) {
            Some(base) => format!("{base}{path}"),
            None => url.to_string(),
        }
    }

    /// The base URL of a registry's API (`…/v2/` follows).
    pub fn registry_base(&self, registry: &str) -> String {
        match self.0.get(registry) {
            Some(base) => base.clone(),
            None if registry == "docker.io" => "https://registry-1.docker.io".to_string(),
            None => format!("https://{registry}"),
        }
    }
}

pub fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Exponential backoff: 0.5 s, 1 s, 2 s, 4 s…; `AIRGAP_RETRY_BASE_MS` shortens it in tests.
pub async fn backoff(attempt: u32) {
    let base = std::env::var("AIRGAP_RETRY_BASE_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(500u64);
    tokio::time::sleep(Duration::from_millis(base << attempt.min(6))).await;
}

/// GET (from `offset` on when it is not zero) with retries on connection errors, 429 and 5xx;
/// other statuses are the caller's.
pub async fn get_with_retry(client: &reqwest::Client, url: &str, offset: u64) -> Result<reqwest::Response> {
    let mut attempt = 0;
    loop {
        let mut req = client.get(url);
        if offset > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let outcome = req.send().await;
        match outcome {
            Ok(r) if !retryable_status(r.status()) => return Ok(r),
            Ok(r) if attempt + 1 >= ATTEMPTS => return Err(anyhow!("GET {url}: {}", r.status())),
            Err(e) if attempt + 1 >= ATTEMPTS => return Err(anyhow!("GET {url}: {}", error_chain(&e))),
            _ => {}
        }
        backoff(attempt).await;
        attempt += 1;
    }
}

/// Reads a whole (small) body of at most `limit` bytes, failing on a non-success status.
pub async fn get_bytes(client: &reqwest::Client, url: &str, limit: u64) -> Result<Vec<u8>> {
    let r = get_with_retry(client, url, 0).await?;
    if !r.status().is_success() {
        anyhow::bail!("GET {url}: {}", r.status());
    }
    read_limited(r, limit, &format!("GET {url}")).await
}

/// Reads a body whole, refusing it as soon as it passes `limit` bytes (at once when its
/// Content-Length says it will), so an upstream cannot make this hold more than the limit.
pub async fn read_limited(mut resp: reqwest::Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    let too_large = || anyhow!("{what}: the answer is larger than the {} such a document may be", human(limit));
    if resp.content_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| anyhow!("{what}: {}", error_chain(&e)))? {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// reqwest's top-level message hides the cause (refused, reset, certificate); show all of it.
pub use bundles::text::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_replace_scheme_and_host() {
        let m = Mirrors::new(&[("mosip.github.io".to_string(), "http://127.0.0.1:9/".to_string())].into());
        assert_eq!(
            m.map_url("https://mosip.github.io/mosip-helm/index.yaml"),
            "http://127.0.0.1:9/mosip-helm/index.yaml"
        );
        assert_eq!(m.map_url("https://github.com/x"), "https://github.com/x");
        assert_eq!(m.registry_base("docker.io"), "https://registry-1.docker.io");
    }
}
