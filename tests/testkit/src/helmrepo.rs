use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::fileserver::FileServer;
use crate::tools::shared_fixtures;

/// The MOSIP chart repository as it stood on 2023-01-08, in `shared/fixtures`.
pub const MOSIP_HELM_FIXTURE: &str = "mosip-helm-repo-2023-01-08";

/// A classic Helm chart repository (`index.yaml` and `.tgz` files) served over HTTP from the
/// fixture, unchanged.
///
/// The index names its charts by absolute upstream URLs (`https://mosip.github.io/mosip-helm/...`),
/// so a client that follows them would leave the machine. Tests map the upstream base URL to this
/// server instead: [`HelmRepo::mirror`] gives the pair (upstream, local), and
/// [`HelmRepo::map_url`] rewrites one URL. A component under test takes that pair as its mirror
/// map; a test driving `helm` itself passes it the mapped chart URL.
pub struct HelmRepo {
    server: FileServer,
    upstream: String,
}

#[derive(Deserialize)]
struct Index {
    entries: BTreeMap<String, Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    urls: Vec<String>,
}

impl HelmRepo {
    /// Serves the fixture under the path its upstream URL has, so chart URLs map by their prefix.
    pub fn start() -> Result<HelmRepo> {
        let dir = HelmRepo::fixture_dir();
        let index = fs::read_to_string(dir.join("index.yaml"))
            .with_context(|| format!("cannot read the chart repository fixture in {}", dir.display()))?;
        let upstream = upstream_base(&index)?;
        let path = upstream.splitn(4, '/').nth(3).unwrap_or("");
        let server = FileServer::start_at(&dir, path)?;
        Ok(HelmRepo { server, upstream })
    }

    /// The fixture's directory in `../shared/fixtures`: a copy of the MOSIP chart repository.
    pub fn fixture_dir() -> PathBuf {
        shared_fixtures().join(MOSIP_HELM_FIXTURE)
    }

    /// The local repository URL, e.g. `http://127.0.0.1:PORT/mosip-helm` (no trailing slash);
    /// `helm repo add` takes it as it is.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The upstream repository URL that the index's chart URLs start with:
    /// `https://mosip.github.io/mosip-helm`.
    pub fn upstream_url(&self) -> &str {
        &self.upstream
    }

    /// The upstream host, `mosip.github.io`.
    pub fn upstream_host(&self) -> &str {
        self.upstream.split('/').nth(2).unwrap_or_default()
    }

    /// (upstream URL, local URL): replacing the first prefix by the second reaches this server.
    pub fn mirror(&self) -> (String, String) {
        (self.upstream.clone(), self.url())
    }

    /// Rewrites an upstream URL to this server; other URLs are returned unchanged.
    pub fn map_url(&self, url: &str) -> String {
        match url.strip_prefix(&self.upstream) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", self.url())
            }
            _ => url.to_string(),
        }
    }

    /// The file server underneath, for its request log.
    pub fn server(&self) -> &FileServer {
        &self.server
    }
}

fn upstream_base(index: &str) -> Result<String> {
    let index: Index = serde_yaml_ng::from_str(index).context("index.yaml")?;
    let urls: Vec<&String> = index.entries.values().flatten().flat_map(|e| &e.urls).collect();
    let first = urls.first().ok_or_else(|| anyhow!("index.yaml names no chart URL"))?;
    let base = first.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_default();
    if let Some(other) = urls.iter().find(|u| !u.starts_with(&format!("{base}/"))) {
        bail!("index.yaml mixes chart hosts: {first} and {other}");
    }
    Ok(base)
}
