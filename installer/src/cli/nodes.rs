//! `airgap install mirrors` and `airgap install cluster-config`: node configuration for the site
//! registry, and the clusters' configuration with it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::cluster_config::{self, ClusterConfigOptions, Provider};
use crate::mirrors::{self, Format, HostSource, MirrorsOptions, DEFAULT_CERTS_DIR};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap install mirrors --registry https://registry.site.local:5000 --format containerd \\
      --bundle /media/usb/bundle --ca-file site-ca.pem --out /etc/containerd/certs.d
  airgap install mirrors --registry https://registry.site.local:5000 --format rke2 --hosts docker.io,quay.io
Without --hosts or --bundle the hosts come from the registry's catalog.")]
/// What `airgap install mirrors` is given.
pub struct MirrorsArgs {
    /// The site registry's base URL, as nodes reach it.
    #[arg(long)]
    pub registry: String,
    /// Which node configuration to write.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where the upstream hosts come from.
    #[command(flatten)]
    pub source: HostSourceArgs,
    /// The PEM CA that signed the registry's certificate; nodes are told to trust it.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Where containerd's certs.d folder is on the nodes (containerd and eksctl formats); the
    /// hosts.toml files name the CA by this path.
    #[arg(long, default_value = DEFAULT_CERTS_DIR)]
    pub certs_dir: String,
    /// Write the files under DIR (each replaced atomically) instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the files as JSON ([{path, nodePath, content}]).
    #[arg(long)]
    pub json: bool,
}

impl MirrorsArgs {
    /// `airgap install mirrors`.
    pub fn run(self) -> Result<()> {
        let MirrorsArgs { registry, format, source, ca_file, certs_dir, out, json } = self;
        mirrors::run(&MirrorsOptions { registry, format, source: source.options(), ca_file, certs_dir, out, json })
    }
}

/// Where the upstream hosts come from: named, the bundle's images, else the registry's catalog.
#[derive(Debug, Clone, Args)]
pub struct HostSourceArgs {
    /// Upstream hosts to send to the registry (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Take the hosts from the images this bundle carries.
    #[arg(long, conflicts_with = "hosts")]
    pub bundle: Option<PathBuf>,
}

impl HostSourceArgs {
    fn options(self) -> HostSource {
        if !self.hosts.is_empty() {
            HostSource::Named(self.hosts)
        } else if let Some(dir) = self.bundle {
            HostSource::Bundle(dir)
        } else {
            HostSource::Catalog
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap install cluster-config --site site.yaml --provider eks --bundle /media/usb/bundle --out clusters
  eksctl create cluster -f clusters/observation.cluster.config.yaml
  airgap install cluster-config --site site.yaml --provider rke2 --hosts docker.io,quay.io --out rke2")]
/// What `airgap install cluster-config` is given.
pub struct ClusterConfigArgs {
    /// The site file; its `provider:` section gives the clusters' names, sizes and networks.
    #[arg(long)]
    pub site: PathBuf,
    /// Which provider's configuration to write.
    #[arg(long, value_enum)]
    pub provider: Provider,
    /// Where the upstream hosts the nodes mirror come from.
    #[command(flatten)]
    pub source: HostSourceArgs,
    /// Write the files under DIR instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the files as JSON ([{path, nodePath, content}]).
    #[arg(long)]
    pub json: bool,
}

impl ClusterConfigArgs {
    /// `airgap install cluster-config`.
    pub fn run(self) -> Result<()> {
        let ClusterConfigArgs { site, provider, source, out, json } = self;
        cluster_config::run(&ClusterConfigOptions { site, provider, source: source.options(), out, json })
    }
}
