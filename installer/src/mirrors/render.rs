//! The three node formats. containerd's `certs.d` tree is the base: RKE2 generates the same tree
//! from its `registries.yaml`, and the eksctl commands write it on the node themselves.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::{Mirrors, NodeFile};

const RKE2_DIR: &str = "/etc/rancher/rke2";
const RKE2_CA: &str = "airgap-registry-ca.pem";
/// bootstrap.sh copies this template to /etc/containerd/config.toml, so preBootstrapCommands
/// change the template rather than the file.
const EKS_CONTAINERD_TEMPLATE: &str = "/etc/eks/containerd/containerd-config.toml";
const EKSCTL_FILE: &str = "pre-bootstrap-commands.yaml";
const HEREDOC_END: &str = "AIRGAP_EOF";

#[derive(Serialize)]
struct HostsToml<'a> {
    server: String,
    host: BTreeMap<String, HostEntry<'a>>,
}

#[derive(Serialize)]
struct HostEntry<'a> {
    capabilities: [&'static str; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a str>,
}

/// Where pulls go when no mirror answers; for docker.io that is not the host's own name.
fn upstream_server(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io".to_string(),
        h => format!("https://{h}"),
    }
}

fn file(root: &str, path: String, content: String) -> NodeFile {
    NodeFile { node_path: format!("{root}/{path}"), path, content }
}

/// containerd ≥ 1.5: one `<host>/hosts.toml` per upstream host, the CA beside them, and a README
/// saying how to switch the tree on.
pub fn containerd(m: &Mirrors) -> Vec<NodeFile> {
    let certs_d = m.certs_dir();
    let ca_path = m.ca_pem().map(|_| format!("{}/ca.crt", m.registry_host()));
    let ca_node_path = ca_path.as_ref().map(|p| format!("{certs_d}/{p}"));
    let mut files = Vec::new();
    for host in m.hosts() {
        let doc = HostsToml {
            server: upstream_server(host),
            host: BTreeMap::from([(
                m.registry_url(),
                HostEntry { capabilities: ["pull", "resolve"], ca: ca_node_path.as_deref() },
            )]),
        };
        let body = toml::to_string(&doc).expect("hosts.toml is plain strings");
        let content = format!(
            "# Written by airgap install mirrors: {host} images come from the site registry under their own \
             names.\n{body}"
        );
        files.push(file(certs_d, format!("{host}/hosts.toml"), content));
    }
    if let (Some(path), Some(pem)) = (ca_path, m.ca_pem()) {
        files.push(file(certs_d, path, pem_with_newline(pem)));
    }
    let readme = format!(
        "These hosts.toml files send image pulls for {} to {}.\n\
         containerd reads them once its config names this folder; in /etc/containerd/config.toml:\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{certs_d}\"\n\n\
         then restart containerd. `ctr` takes the folder as `--hosts-dir {certs_d}`.\n",
        m.hosts().join(", "),
        m.registry_url()
    );
    files.push(file(certs_d, "README.md".into(), readme));
    files
}

#[derive(Serialize)]
struct Registries {
    mirrors: BTreeMap<String, Endpoints>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    configs: BTreeMap<String, RegistryConfig>,
}

#[derive(Serialize)]
struct Endpoints {
    endpoint: Vec<String>,
}

#[derive(Serialize)]
struct RegistryConfig {
    tls: Tls,
}

#[derive(Serialize)]
struct Tls {
    ca_file: String,
}

/// RKE2's `registries.yaml` (and the CA it names), for `/etc/rancher/rke2` on every node.
pub fn rke2(m: &Mirrors) -> Result<Vec<NodeFile>> {
    let mirrors = m.hosts().iter().map(|h| (h.clone(), Endpoints { endpoint: vec![m.registry_url()] })).collect();
    let configs = match m.ca_pem() {
        Some(_) => BTreeMap::from([(
            m.registry_host(),
            RegistryConfig { tls: Tls { ca_file: format!("{RKE2_DIR}/{RKE2_CA}") } },
        )]),
        None => BTreeMap::new(),
    };
    let yaml = serde_yaml_ng::to_string(&Registries { mirrors, configs })?;
    let mut files = vec![file(
        RKE2_DIR,
        "registries.yaml".into(),
        format!("# Written by airgap install mirrors: upstream hosts served by the site registry.\n{yaml}"),
    )];
    if let Some(pem) = m.ca_pem() {
        files.push(file(RKE2_DIR, RKE2_CA.into(), pem_with_newline(pem)));
    }
    Ok(files)
}

/// Shell commands for an EKS AL2 node's `preBootstrapCommands`: write the containerd tree, then
/// make sure containerd's config names it (AMIs since 2022 already do, with a second folder).
pub fn eksctl_commands(m: &Mirrors) -> Vec<String> {
    let certs_d = m.certs_dir();
    let mut commands: Vec<String> = containerd(m)
        .into_iter()
        .filter(|f| f.path != "README.md")
        .map(|f| {
            let dir = f.node_path.rsplit_once('/').map_or(certs_d, |(d, _)| d);
            format!("mkdir -p {dir} && cat > {} <<'{HEREDOC_END}'\n{}{HEREDOC_END}", f.node_path, f.content)
        })
        .collect();
    commands.push(format!(
        "grep -q '^ *config_path *= *\"{certs_d}' {EKS_CONTAINERD_TEMPLATE} || printf '%s\\n' \
         '[plugins.\"io.containerd.grpc.v1.cri\".registry]' '  config_path = \"{certs_d}\"' >> {EKS_CONTAINERD_TEMPLATE}"
    ));
    commands
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PreBootstrap {
    pre_bootstrap_commands: Vec<String>,
}

/// The commands as the YAML list a nodegroup takes.
pub fn eksctl(m: &Mirrors) -> Result<Vec<NodeFile>> {
    let yaml = serde_yaml_ng::to_string(&PreBootstrap { pre_bootstrap_commands: eksctl_commands(m) })?;
    Ok(vec![NodeFile {
        path: EKSCTL_FILE.into(),
        node_path: EKSCTL_FILE.into(),
        content: format!(
            "# Written by airgap install mirrors: paste under a nodegroup of an eksctl ClusterConfig.\n{yaml}"
        ),
    }])
}

fn pem_with_newline(pem: &str) -> String {
    let mut s = pem.trim_end().to_string();
    s.push('\n');
    s
}
