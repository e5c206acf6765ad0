//! A pull-only OCI distribution client: manifests (OCI and docker schema 2, images and indexes)
//! and blobs, with basic auth and the bearer token flow Docker Hub and most registries use.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{manifest_accept, OCI_MANIFEST_MEDIA_TYPE};
use bundles::digest::{sha256_digest, Digest};
use reqwest::header::{ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use clientcore::{basic_authorization, bearer_authorization, parse_challenge, Challenge};

use crate::auth::CredentialStore;
use crate::http::{backoff, error_chain, read_limited, retryable_status, Mirrors, ATTEMPTS};

/// Manifests are read whole; the distribution spec lets registries refuse more than 4 MiB.
const MAX_MANIFEST: u64 = 16 << 20;
/// A token service's answer: a token of a few KiB and its expiry.
const MAX_TOKEN_ANSWER: u64 = 1 << 20;

pub struct Client {
    http: reqwest::Client,
    mirrors: Mirrors,
    credentials: CredentialStore,
    /// Authorization header per (base URL, repository), so a token is fetched once.
    auth: Mutex<HashMap<String, String>>,
}

pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
    pub json: serde_json::Value,
}

impl Client {
    pub fn new(http: reqwest::Client, mirrors: Mirrors, credentials: CredentialStore) -> Client {
        Client { http, mirrors, credentials, auth: Mutex::new(HashMap::new()) }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GET `/v2/<repository>/<path>`, authenticating when challenged and retrying on
    /// connection errors, 429 and 5xx.
    async fn get(
        &self,
        registry: &str,
        repository: &str,
        path: &str,
        accept: Option<&str>,
        offset: u64,
    ) -> Result<reqwest::Response> {
        let base = self.mirrors.registry_base(registry);
        let url = format!("{base}/v2/{repository}/{path}");
        let key = format!("{base} {repository}");
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let mut req = self.http.get(&url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if offset > 0 {
                req = req.header(RANGE, format!("bytes={offset}-"));
            }
            if let Some(h) = self.auth.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(_) if attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => bail!("GET {url}: {}", error_chain(&e)),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let host = base.split("://").nth(1).unwrap_or(&base).split('/').next().unwrap_or_default().to_string();
                if authenticated {
                    let who = self
                        .credentials
                        .find(&host, registry)
                        .map(|l| format!(" as {}", l.username))
                        .unwrap_or_default();
                    bail!("authentication to {host}{who} failed: GET {url} is still 401 Unauthorized after logging in");
                }
                let challenge =
                    resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let header = self.authorize(&host, registry, repository, &challenge).await?;
                self.auth.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), header);
                authenticated = true;
                continue;
            }
            if retryable_status(status) && attempt + 1 < ATTEMPTS {
                attempt += 1;
                backoff(attempt).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn authorize(&self, host: &str, registry: &str, repository: &str, challenge: &str) -> Result<String> {
        let login = self.credentials.find(host, registry);
        match parse_challenge(challenge) {
            Some(Challenge::Basic) => {
                let login = login.ok_or_else(|| {
                    anyhow!("{host} requires a login and no credentials are configured for it (spec: credentials.docker_config or credentials.env)")
                })?;
                Ok(basic_authorization(&login.username, &login.password))
            }
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
                let mut params = vec![("scope", scope.as_str())];
                if let Some(s) = &service {
                    params.push(("service", s.as_str()));
                }
                let url =
                    reqwest::Url::parse_with_params(&realm, &params).with_context(|| format!("token realm {realm}"))?;
                let mut req = self.http.get(url);
                if let Some(l) = login {
                    req = req.basic_auth(&l.username, Some(&l.password));
                }
                let resp = req.send().await.map_err(|e| anyhow!("token from {realm}: {}", error_chain(&e)))?;
                if !resp.status().is_success() {
                    bail!("authentication to {host} failed: the token service {realm} answered {}", resp.status());
                }
                let raw = read_limited(resp, MAX_TOKEN_ANSWER, &format!("token from {realm}")).await?;
                bearer_authorization(&raw).ok_or_else(|| anyhow!("token from {realm}: no token in the answer"))
            }
            None => bail!("{host} answered 401 with an unsupported challenge '{challenge}'"),
        }
    }

    /// Fetches a manifest by tag or digest; a digest asked for is checked against the bytes.
    pub async fn manifest(&self, registry: &str, repository: &str, reference: &str) -> Result<Manifest> {
        let what = format!("{registry}/{repository}{}{reference}", if reference.contains(':') { "@" } else { ":" });
        let resp =
            self.get(registry, repository, &format!("manifests/{reference}"), Some(&manifest_accept()), 0).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => bail!("{what}: not found upstream (manifest unknown)"),
            s => bail!("{what}: the registry answered {s}"),
        }
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = read_limited(resp, MAX_MANIFEST, &format!("{what}: manifest")).await?;
        let digest = sha256_digest(&hex::encode(Sha256::digest(&bytes)));
        // Asked for by digest (a tag holds no colon), the answer must be that digest: an
        // upstream that answers anything else is refused, whatever it says.
        if reference.contains(':') && reference != digest.to_string() {
            bail!("{what}: the registry sent a manifest that hashes to {digest}; nothing stored");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{what}: manifest is not JSON"))?;
        let media_type = json
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .or(content_type.map(|c| c.split(';').next().unwrap_or_default().trim().to_string()))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| OCI_MANIFEST_MEDIA_TYPE.to_string());
        Ok(Manifest { bytes, media_type, digest, json })
    }

    /// Opens a blob, from `offset` on when resuming.
    pub async fn blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<reqwest::Response> {
        self.get(registry, repository, &format!("blobs/{digest}"), None, offset).await
    }
}

pub fn is_index(m: &Manifest) -> bool {
    m.json.get("manifests").is_some()
}
