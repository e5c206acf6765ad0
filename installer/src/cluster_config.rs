//! `airgap install cluster-config`: the configuration that creates both clusters with node
//! mirrors in place from their first boot. For EKS, eksctl ClusterConfigs shaped like the
//! upstream samples (k8s-infra `rancher/aws/rancher.cluster.config.sample` and
//! `mosip/aws/cluster.config.sample`); for RKE2, each cluster's server `config.yaml` files and
//! its `registries.yaml`. Values come from the site file's `provider:` section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::mirrors::{self, HostSource, Mirrors, NodeFile};
use crate::site::Site;

/// The two clusters of the platform, in the order they are created.
const CLUSTERS: [&str; 2] = ["observation", "mosip"];
const RKE2_SUPERVISOR_PORT: u16 = 9345;

/// Where the clusters run, and so which configuration files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// AWS EKS: an eksctl ClusterConfig per cluster.
    Eks,
    /// RKE2 on the site's own machines: server `config.yaml` files and `registries.yaml`.
    Rke2,
}

/// `install cluster-config`: for which provider and hosts, written where.
#[derive(Debug, Clone)]
pub struct ClusterConfigOptions {
    /// The site file.
    pub site: PathBuf,
    /// Which provider's files to write.
    pub provider: Provider,
    /// Where the upstream hosts the nodes mirror come from.
    pub source: HostSource,
    /// Write the files under this folder instead of printing them.
    pub out: Option<PathBuf>,
    /// Print the files as JSON.
    pub json: bool,
}

/// Writes or prints both clusters' files; fails naming the site file's key when one the provider needs is missing.
pub fn run(opts: &ClusterConfigOptions) -> Result<()> {
    let site = Site::load(&opts.site)?;
    let (ca_file, _) = site.registry_ca()?;
    let hosts = opts.source.hosts(&registry_url(&site)?, Some(&ca_file))?;
    let files = generate(&site, opts.provider, hosts)?;
    mirrors::emit(&files, opts.out.as_deref(), opts.json)
}

/// The files for both clusters; `hosts` are the upstream hosts the nodes send to the registry.
pub fn generate(site: &Site, provider: Provider, hosts: Vec<String>) -> Result<Vec<NodeFile>> {
    let view: SiteView = site.view()?;
    let (_, ca_pem) = site.registry_ca()?;
    let mirrors = Mirrors::new(&registry_url(site)?, hosts, Some(ca_pem))?;
    let need = Need(site);
    let provider_view = need.get(&view.provider, "provider")?;
    match provider {
        Provider::Eks => eks(&need, provider_view, &mirrors),
        Provider::Rke2 => rke2(&need, provider_view, &mirrors),
    }
}

fn registry_url(site: &Site) -> Result<String> {
    Ok(format!("https://{}", site.lookup("registry.address")?))
}

/// Names the missing key and the site file.
struct Need<'a>(&'a Site);

impl Need<'_> {
    fn get<'v, T>(&self, value: &'v Option<T>, key: &str) -> Result<&'v T> {
        value.as_ref().ok_or_else(|| {
            anyhow!("{}: {key} is missing; see manifests/mosip-1.2.0.1-B2/site.example.yaml", self.0.path().display())
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SiteView {
    provider: Option<ProviderView>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProviderView {
    kubernetes_version: Option<String>,
    clusters: BTreeMap<String, ClusterView>,
    eks: Option<EksView>,
    rke2: Option<Rke2View>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClusterView {
    name: Option<String>,
    instance_type: Option<String>,
    nodes: Option<u32>,
    volume_size: Option<u32>,
    /// RKE2: the server nodes' addresses, the first one starting the cluster.
    servers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EksView {
    region: Option<String>,
    ssh_key: Option<String>,
    /// Availability zone → subnet id.
    private_subnets: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Rke2View {
    token_file: Option<String>,
}

impl ProviderView {
    fn cluster(&self, need: &Need, key: &str) -> Result<&ClusterView> {
        need.get(&self.clusters.get(key), &format!("provider.clusters.{key}")).copied()
    }
}

/// eksctl's `ClusterConfig` (v1alpha5), the fields the upstream samples set plus the mirrors.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig {
    api_version: String,
    kind: String,
    metadata: ClusterMeta,
    managed_node_groups: Vec<ManagedNodeGroup>,
    vpc: Vpc,
}

#[derive(Debug, Serialize)]
struct ClusterMeta {
    name: String,
    region: String,
    version: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ManagedNodeGroup {
    name: String,
    instance_type: String,
    instance_name: String,
    desired_capacity: u32,
    private_networking: bool,
    volume_size: u32,
    volume_type: String,
    ssh: Ssh,
    labels: BTreeMap<String, String>,
    pre_bootstrap_commands: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ssh {
    public_key_name: String,
    allow: bool,
}

#[derive(Debug, Serialize)]
struct Vpc {
    subnets: Subnets,
}

#[derive(Debug, Serialize)]
struct Subnets {
    private: BTreeMap<String, SubnetId>,
}

#[derive(Debug, Serialize)]
struct SubnetId {
    id: String,
}

fn eks(need: &Need, p: &ProviderView, mirrors: &Mirrors) -> Result<Vec<NodeFile>> {
    let eks = need.get(&p.eks, "provider.eks")?;
    let version = need.get(&p.kubernetes_version, "provider.kubernetes_version")?;
    let region = need.get(&eks.region, "provider.eks.region")?;
    let ssh_key = need.get(&eks.ssh_key, "provider.eks.ssh_key")?;
    if eks.private_subnets.is_empty() {
        bail!("{}: provider.eks.private_subnets is missing or empty", need.0.path().display());
    }
    let mut files = Vec::new();
    for key in CLUSTERS {
        let c = p.cluster(need, key)?;
        let field = |f: &str| format!("provider.clusters.{key}.{f}");
        let name = need.get(&c.name, &field("name"))?;
        let instance_type = need.get(&c.instance_type, &field("instance_type"))?;
        let volume_size = *need.get(&c.volume_size, &field("volume_size"))?;
        let config = ClusterConfig {
            api_version: "eksctl.io/v1alpha5".into(),
            kind: "ClusterConfig".into(),
            metadata: ClusterMeta { name: name.clone(), region: region.clone(), version: version.clone() },
            managed_node_groups: vec![ManagedNodeGroup {
                name: format!("{}-{volume_size}gb", instance_type.replace('.', "-")),
                instance_type: instance_type.clone(),
                instance_name: format!("{name}-worker-node"),
                desired_capacity: *need.get(&c.nodes, &field("nodes"))?,
                private_networking: true,
                volume_size,
                volume_type: "gp3".into(),
                ssh: Ssh { public_key_name: ssh_key.clone(), allow: true },
                labels: BTreeMap::from([("deployment".to_string(), name.clone())]),
                pre_bootstrap_commands: mirrors::eksctl_commands(mirrors),
            }],
            vpc: Vpc {
                subnets: Subnets {
                    private: eks
                        .private_subnets
                        .iter()
                        .map(|(zone, id)| (zone.clone(), SubnetId { id: id.clone() }))
                        .collect(),
                },
            },
        };
        let yaml = serde_yaml_ng::to_string(&config)?;
        let path = format!("{key}.cluster.config.yaml");
        files.push(NodeFile {
            node_path: path.clone(),
            path,
            content: format!(
                "# Written by airgap install cluster-config: eksctl create cluster -f <this file>\n{yaml}"
            ),
        });
    }
    Ok(files)
}

/// RKE2 server configuration (`/etc/rancher/rke2/config.yaml`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Rke2ServerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    token_file: String,
    tls_san: Vec<String>,
    node_label: Vec<String>,
    write_kubeconfig_mode: String,
}

fn rke2(need: &Need, p: &ProviderView, mirrors: &Mirrors) -> Result<Vec<NodeFile>> {
    let rke2 = need.get(&p.rke2, "provider.rke2")?;
    let token_file = need.get(&rke2.token_file, "provider.rke2.token_file")?;
    let node_files = mirrors::rke2(mirrors)?;
    let mut files = Vec::new();
    for key in CLUSTERS {
        let c = p.cluster(need, key)?;
        let name = need.get(&c.name, &format!("provider.clusters.{key}.name"))?;
        let Some(first) = c.servers.first() else {
            bail!("{}: provider.clusters.{key}.servers is missing or empty", need.0.path().display());
        };
        let config = |server: Option<String>| Rke2ServerConfig {
            server,
            token_file: token_file.clone(),
            tls_san: c.servers.clone(),
            node_label: vec![format!("deployment={name}")],
            write_kubeconfig_mode: "0600".into(),
        };
        let header = "# Written by airgap install cluster-config: /etc/rancher/rke2/config.yaml of";
        let first_yaml = serde_yaml_ng::to_string(&config(None))?;
        files.push(file(key, "config.yaml", format!("{header} {first}, which starts the cluster.\n{first_yaml}")));
        if c.servers.len() > 1 {
            let join = serde_yaml_ng::to_string(&config(Some(format!("https://{first}:{RKE2_SUPERVISOR_PORT}"))))?;
            let others = c.servers[1..].join(", ");
            files.push(file(key, "config-join.yaml", format!("{header} {others}, which join {first}.\n{join}")));
        }
        for f in &node_files {
            files.push(NodeFile {
                path: format!("{key}/{}", f.path),
                node_path: f.node_path.clone(),
                content: f.content.clone(),
            });
        }
    }
    Ok(files)
}

fn file(cluster: &str, name: &str, content: String) -> NodeFile {
    NodeFile { path: format!("{cluster}/{name}"), node_path: "/etc/rancher/rke2/config.yaml".into(), content }
}
