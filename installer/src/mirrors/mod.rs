//! `airgap install mirrors`: node configuration that sends every upstream host whose images the
//! bundle carries to the site registry, so an image named `docker.io/x/y:1` at run time is pulled
//! from the site registry under that same name (the registry reads containerd's `ns` parameter).

mod hosts;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use reqwest::Url;
use serde::Serialize;

pub use hosts::{from_bundle, from_catalog, CATALOG_PAGE};
pub use render::{containerd, eksctl, eksctl_commands, rke2};

/// Where containerd's `certs.d` tree lives on a node unless `--certs-dir` says otherwise.
pub const DEFAULT_CERTS_DIR: &str = "/etc/containerd/certs.d";

/// What the nodes need to know: where the site registry is, which upstream hosts it stands for,
/// and the CA that signed its certificate.
#[derive(Debug, Clone)]
pub struct Mirrors {
    registry: Url,
    hosts: Vec<String>,
    ca_pem: Option<String>,
    certs_dir: String,
}

impl Mirrors {
    /// `registry` is a URL (`https://registry.site:5000`); without a scheme it is HTTPS.
    pub fn new(registry: &str, hosts: impl IntoIterator<Item = String>, ca_pem: Option<String>) -> Result<Mirrors> {
        let with_scheme = if registry.contains("://") { registry.to_string() } else { format!("https://{registry}") };
        let url = Url::parse(&with_scheme).with_context(|| format!("--registry {registry} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.path() != "/" {
            bail!("--registry {registry}: give the registry's base URL, e.g. https://registry.site.local:5000");
        }
        let mut hosts: Vec<String> = hosts.into_iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        hosts.retain(|h| !h.is_empty());
        hosts.sort();
        hosts.dedup();
        for h in &hosts {
            if !hosts::is_host(h) {
                bail!("'{h}' is not a registry host name (like docker.io or quay.io)");
            }
        }
        if hosts.is_empty() {
            bail!("no upstream hosts to mirror: name them with --hosts, or give a --bundle that carries images");
        }
        if let Some(pem) = &ca_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!("the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
            }
        }
        Ok(Mirrors { registry: url, hosts, ca_pem, certs_dir: DEFAULT_CERTS_DIR.to_string() })
    }

    /// The containerd tree lives in `dir` on the nodes instead of [`DEFAULT_CERTS_DIR`]: the
    /// hosts.toml files name the CA beside them by that path.
    pub fn with_certs_dir(mut self, dir: &str) -> Result<Mirrors> {
        let dir = dir.trim_end_matches('/');
        if !dir.starts_with('/') || dir.contains(['"', '\\', '\n']) {
            bail!("--certs-dir {dir}: give the absolute path of the folder on the nodes, e.g. {DEFAULT_CERTS_DIR}");
        }
        self.certs_dir = dir.to_string();
        Ok(self)
    }

    /// The registry's URL as nodes reach it, without the trailing slash.
    pub fn registry_url(&self) -> String {
        self.registry.as_str().trim_end_matches('/').to_string()
    }

    /// `host[:port]`, the name under which containerd and RKE2 key the registry's own settings.
    pub fn registry_host(&self) -> String {
        let host = self.registry.host_str().unwrap_or_default();
        match self.registry.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// The upstream hosts mirrored: lower-case, sorted, each once.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The PEM CA nodes are told to trust for the registry, when one was given.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// containerd's `certs.d` folder on the nodes.
    pub fn certs_dir(&self) -> &str {
        &self.certs_dir
    }
}

/// A generated file: `path` relative to the output folder, `node_path` where it belongs on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFile {
    /// Where it is written, relative to `--out`.
    pub path: String,
    /// Where it belongs on a node.
    pub node_path: String,
    /// The file's text.
    pub content: String,
}

/// Which node configuration `install mirrors` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// containerd's `certs.d` tree of `hosts.toml` files (`--out /etc/containerd/certs.d`).
    Containerd,
    /// RKE2's `/etc/rancher/rke2/registries.yaml` (`--out /etc/rancher/rke2`).
    Rke2,
    /// eksctl `preBootstrapCommands` writing the containerd tree on an EKS AL2 node.
    Eksctl,
}

/// `install mirrors`: which files, for which hosts, written where.
#[derive(Debug, Clone)]
pub struct MirrorsOptions {
    /// The site registry's base URL, as nodes reach it.
    pub registry: String,
    /// Which node configuration to write.
    pub format: Format,
    /// Where the upstream hosts come from.
    pub source: HostSource,
    /// The PEM CA that signed the registry's certificate.
    pub ca_file: Option<PathBuf>,
    /// containerd's certs.d folder on the nodes.
    pub certs_dir: String,
    /// Write the files under this folder instead of printing them.
    pub out: Option<PathBuf>,
    /// Print the files as JSON.
    pub json: bool,
}

/// Where the upstream hosts come from.
#[derive(Debug, Clone)]
pub enum HostSource {
    /// These hosts.
    Named(Vec<String>),
    /// The hosts of the images this bundle carries.
    Bundle(PathBuf),
    /// The registry's catalog.
    Catalog,
}

impl HostSource {
    /// The upstream hosts; `registry` and `ca_file` are used only to read the catalog, which fails when the registry
    /// cannot be reached.
    pub fn hosts(&self, registry: &str, ca_file: Option<&Path>) -> Result<Vec<String>> {
        match self {
            HostSource::Named(hosts) => Ok(hosts.clone()),
            HostSource::Bundle(dir) => from_bundle(dir),
            HostSource::Catalog => from_catalog(registry, ca_file, CATALOG_PAGE),
        }
    }
}

/// `airgap install mirrors`: renders the node files and writes or prints them (see [`emit`]).
pub fn run(opts: &MirrorsOptions) -> Result<()> {
    let ca_pem = match &opts.ca_file {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("cannot read --ca-file {}", p.display()))?),
        None => None,
    };
    let hosts = opts.source.hosts(&opts.registry, opts.ca_file.as_deref())?;
    if opts.format == Format::Rke2 && opts.certs_dir != DEFAULT_CERTS_DIR {
        bail!("--certs-dir is for the containerd and eksctl formats: RKE2 writes its certs.d tree itself");
    }
    let mirrors = Mirrors::new(&opts.registry, hosts, ca_pem)
        .and_then(|m| m.with_certs_dir(&opts.certs_dir))
        .with_context(|| match &opts.ca_file {
            Some(p) => format!("mirrors for {} (CA {})", opts.registry, p.display()),
            None => format!("mirrors for {}", opts.registry),
        })?;
    let files = render(&mirrors, opts.format)?;
    emit(&files, opts.out.as_deref(), opts.json)
}

/// Writes the files under `out`, or prints them (as JSON with `json`).
pub fn emit(files: &[NodeFile], out: Option<&Path>, json: bool) -> Result<()> {
    match out {
        Some(dir) => {
            write_files(dir, files)?;
            for f in files {
                eprintln!("wrote {}", dir.join(&f.path).display());
            }
        }
        None if json => println!("{}", serde_json::to_string_pretty(files)?),
        None => print_files(&mut std::io::stdout().lock(), files)?,
    }
    Ok(())
}

/// The node files of `format` for these mirrors.
pub fn render(mirrors: &Mirrors, format: Format) -> Result<Vec<NodeFile>> {
    match format {
        Format::Containerd => Ok(containerd(mirrors)),
        Format::Rke2 => rke2(mirrors),
        Format::Eksctl => eksctl(mirrors),
    }
}

/// Each file under a header line naming where it goes on the node (and its name in --out).
pub fn print_files(out: &mut impl Write, files: &[NodeFile]) -> Result<()> {
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        if f.node_path.ends_with(&f.path) {
            writeln!(out, "==> {} <==", f.node_path)?;
        } else {
            writeln!(out, "==> {} (on the node: {}) <==", f.path, f.node_path)?;
        }
        out.write_all(f.content.as_bytes())?;
    }
    Ok(())
}

/// Writes every file under `dir`, each through a temporary name so a node never reads half a file.
pub fn write_files(dir: &Path, files: &[NodeFile]) -> Result<()> {
    for f in files {
        let dest = dir.join(&f.path);
        let parent = dest.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or(&f.path);
        bundles::outdir::write_atomic(parent, name, f.content.as_bytes())?;
    }
    Ok(())
}
