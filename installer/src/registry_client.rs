//! The site registry, seen as any client sees it: manifests resolved by tag, single-layer
//! artifacts (charts, tools) fetched and checked against their digests, git repositories cloned
//! over HTTP. Nothing here reads the bundle's files directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{manifest_accept, Reference};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

#[derive(Clone)]
pub struct RegistryClient {
    /// `https://host:port` as the installer reaches it.
    base: String,
    ca_file: Option<PathBuf>,
    http: reqwest::Client,
    /// Reference → digest (or None when absent), so each image is asked for once per run.
    resolved: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl RegistryClient {
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<RegistryClient> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--registry {url}: give a URL, e.g. https://registry.example.internal:5000");
        }
        let tls = clientcore::tls_config(ca_file.as_slice())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("airgap-installer/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()?;
        Ok(RegistryClient { base, ca_file: ca_file.map(Path::to_path_buf), http, resolved: Default::default() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host:port` of the base URL.
    pub fn authority(&self) -> &str {
        self.base.split_once("://").map_or(&self.base, |(_, rest)| rest)
    }

    pub async fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let res = self.http.get(&url).send().await.with_context(|| format!("the registry {url} does not answer"))?;
        match res.status() {
            s if s.is_success() || s == StatusCode::UNAUTHORIZED => Ok(()),
            s => bail!("the registry {url} answers {s}"),
        }
    }

    /// The digest the registry serves for an image (by tag or digest), or None when it does not
    /// carry it.
    pub async fn resolve(&self, image: &Reference) -> Result<Option<String>> {
        let key = image.to_string();
        if let Some(hit) = self.resolved.lock().unwrap().get(&key) {
            return Ok(hit.clone());
        }
        let url = format!("{}/v2/{}/manifests/{}", self.base, image.name(), image.manifest_ref());
        let res = self
            .http
            .head(&url)
            .header(ACCEPT, manifest_accept())
            .send()
            .await
            .with_context(|| format!("asking the registry for {key}"))?;
        let found = match res.status() {
            StatusCode::NOT_FOUND => None,
            s if s.is_success() => Some(
                res.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{url}: no Docker-Content-Digest in the answer"))?,
            ),
            s => bail!("{url}: the registry answers {s}"),
        };
        self.resolved.lock().unwrap().insert(key, found.clone());
        Ok(found)
    }

    /// The digest of the one layer of a single-layer artifact (a chart, a file).
    pub async fn layer_digest(&self, reference: &str) -> Result<String> {
        let r = Reference::parse(reference)?;
        let url = format!("{}/v2/{}/manifests/{}", self.base, r.name(), r.manifest_ref());
        let res = self.http.get(&url).header(ACCEPT, manifest_accept()).send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            bail!("{reference} is not in the site registry ({url}): is it in the bundle?");
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&res.error_for_status()?.bytes().await?).with_context(|| url.clone())?;
        let layers = manifest["layers"].as_array().map(Vec::as_slice).unwrap_or_default();
        let [layer] = layers else { bail!("{reference}: expected an artifact with one layer, found {}", layers.len()) };
        let digest = layer["digest"].as_str().ok_or_else(|| anyhow!("{reference}: layer without a digest"))?;
        Ok(digest.to_string())
    }

    /// The one layer of a single-layer artifact, checked against its digest and written to
    /// `dest` atomically.
    pub async fn fetch_layer(&self, reference: &str, dest: &Path) -> Result<String> {
        let digest = self.layer_digest(reference).await?;
        let r = Reference::parse(reference)?;
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, r.name());
        let body = self.http.get(&url).send().await?.error_for_status()?.bytes().await?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if actual != digest {
            bail!("{reference}: the registry sent {actual} for layer {digest}");
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &body)?;
        tmp.persist(dest).with_context(|| dest.display().to_string())?;
        Ok(digest)
    }

    /// Clones a git repository of the bundle (`<host>/<path>:<ref>`) into `dest` with the real
    /// `git`, over the registry's dumb-HTTP endpoint, as config-server does on site.
    pub fn clone_git(&self, repo: &str, dest: &Path) -> Result<()> {
        let url = format!("{}/git/{repo}.git", self.base);
        let mut cmd = std::process::Command::new("git");
        cmd.args(["-c", "advice.detachedHead=false"]);
        if let Some(ca) = &self.ca_file {
            // The variable, not `-c http.sslCAInfo`: git lets a GIT_SSL_CAINFO already in the
            // environment win over its configuration.
            cmd.env("GIT_SSL_CAINFO", ca);
        }
        let out = cmd
            .args(["clone", "--quiet"])
            .arg(&url)
            .arg(dest)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .context("cannot run git (install git on the machine that runs the installer)")?;
        if !out.status.success() {
            bail!("git clone {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}
