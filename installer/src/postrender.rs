//! The leak check and the Helm post-renderer: every image of every rendered object must be in the
//! bundle (the site registry serves it), and is pointed at the site registry — or kept as named,
//! for nodes whose container runtime mirrors the upstream hosts to the site registry.
//!
//! Helm 3.8 runs a post-renderer as an executable without arguments, so the airgap binary plays
//! that part when `AIRGAP_POST_RENDER` names a configuration file (see `run_as_helm_post_renderer`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::Reference;
use kubemanifests::pods::{containers_mut, pod_spec_mut};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::registry_client::RegistryClient;

/// The environment variable naming the [`Config`] file; when set, the airgap binary runs as helm's post-renderer.
pub const ENV: &str = "AIRGAP_POST_RENDER";

/// How rendered image references are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ImageMode {
    /// `<site registry>/<upstream host>/<path>:<tag>@<digest>`: nodes need no mirror configuration.
    Rewrite,
    /// Names kept as the charts write them: nodes mirror the upstream hosts to the site registry
    /// (`airgap install mirrors`). Every image is still checked to be in the bundle.
    Keep,
}

/// What the post-renderer is told, as a JSON file named by [`ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// How the installer reaches the registry.
    pub registry_url: String,
    /// CA certificate (PEM) of the registry, when it is not in the system's store.
    pub ca_file: Option<PathBuf>,
    /// How nodes name the registry in image references (`registry.example.internal:5000`).
    pub registry_address: String,
    /// Rewrite image references to the registry, or keep them as named.
    pub mode: ImageMode,
    /// Environment added to every container (a plan's `helm.env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Mount the site CA into every container (see `site_ca`).
    #[serde(default)]
    pub site_ca: bool,
    /// Files mounted into every container (a plan's `helm.files`, see `mounted_files`).
    #[serde(default)]
    pub files: Option<crate::mounted_files::Mounts>,
    /// The site's `lab.request_scale`: every container's requests scaled down (see `capacity`).
    #[serde(default)]
    pub request_scale: Option<f64>,
    /// The site's `lab.probe_delay_scale`: every probe's initial delay shortened, and the period
    /// of startup and readiness probes (see `probe_pace`).
    #[serde(default)]
    pub probe_delay_scale: Option<f64>,
}

/// What a post-rendered stream holds.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The objects, post-rendered.
    pub docs: Vec<Value>,
    /// Original image → the reference written into the objects.
    pub images: BTreeMap<String, String>,
    /// Each object's kind, namespace and name, in stream order.
    pub objects: Vec<ObjectRef>,
}

/// Which object; shown as `Kind namespace/name`, or `Kind name` when it names no namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: String,
    /// The object's namespace, as written; none for cluster-scoped objects or when left to the release.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Post-renders a YAML stream; fails, naming every missing image, when one is not carried.
pub async fn post_render(yaml: &str, cfg: &Config, registry: &RegistryClient) -> Result<Rendered> {
    let mut docs = kubemanifests::parse_stream(yaml)?;
    let mut named = BTreeSet::new();
    docs.iter().for_each(|d| kubemanifests::images(d, &mut named));
    let mut images = BTreeMap::new();
    let mut missing = Vec::new();
    for image in named {
        match target(&image, cfg, registry).await? {
            Some(to) => {
                images.insert(image, to);
            }
            None => missing.push(image),
        }
    }
    if !missing.is_empty() {
        bail!(
            "leak check: {} image(s) are not in the bundle (the site registry {} does not serve them): {}",
            missing.len(),
            registry.base(),
            missing.join(", ")
        );
    }
    let mut objects = Vec::new();
    for doc in &mut docs {
        kubemanifests::rewrite_images(doc, &mut |i| {
            images.get(i).cloned().ok_or_else(|| anyhow!("image {i} was not resolved"))
        })?;
        add_env(doc, &cfg.env);
        if let Some(spec) = pod_spec_mut(doc).filter(|_| cfg.site_ca) {
            crate::site_ca::mount(spec)?;
        }
        if let (Some(files), Some(spec)) = (&cfg.files, pod_spec_mut(doc)) {
            files.mount(spec)?;
        }
        if let Some(scale) = cfg.request_scale {
            if let Some(spec) = pod_spec_mut(doc) {
                crate::capacity::scale_pod_spec(spec, scale)?;
            }
            crate::capacity::scale_istio_injector(doc, scale)?;
        }
        if let (Some(scale), Some(spec)) = (cfg.probe_delay_scale, pod_spec_mut(doc)) {
            crate::probe_pace::scale_pod_spec(spec, scale)?;
        }
        if let Some(o) = object_ref(doc) {
            objects.push(o);
        }
    }
    Ok(Rendered { docs, images, objects })
}

/// The reference to write for `image`, or None when the registry does not carry it. An image
/// already pointed at the site registry (Istio's hub, a re-render) is checked for what it names
/// and, when rewriting, pinned like any other.
pub async fn target(image: &str, cfg: &Config, registry: &RegistryClient) -> Result<Option<String>> {
    let Some(named) = image.strip_prefix(&format!("{}/", cfg.registry_address)) else {
        return upstream_target(image, cfg, registry).await;
    };
    Ok(upstream_target(named, cfg, registry).await?.map(|pinned| match cfg.mode {
        ImageMode::Keep => image.to_string(),
        ImageMode::Rewrite => pinned,
    }))
}

async fn upstream_target(image: &str, cfg: &Config, registry: &RegistryClient) -> Result<Option<String>> {
    let mut r = Reference::parse(image).map_err(|e| anyhow!("image {e}"))?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
    }
    let Some(digest) = registry.resolve(&r).await? else { return Ok(None) };
    Ok(Some(match cfg.mode {
        ImageMode::Keep => image.to_string(),
        ImageMode::Rewrite => {
            // The digest pins mutable tags (`latest`, `develop`) to what the bundle carries, so
            // `imagePullPolicy: Always` fetches the same bytes every time.
            let tag = r.tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
            format!("{}/{}{tag}@{digest}", cfg.registry_address, r.name())
        }
    }))
}

/// The kind, namespace and name of a rendered object; None when it lacks a kind or name.
pub fn object_ref(doc: &Value) -> Option<ObjectRef> {
    let kind = doc.get("kind")?.as_str()?.to_string();
    let meta = doc.get("metadata")?;
    Some(ObjectRef {
        kind,
        namespace: meta.get("namespace").and_then(Value::as_str).map(str::to_string),
        name: meta.get("name")?.as_str()?.to_string(),
    })
}

fn add_env(doc: &mut Value, env: &BTreeMap<String, String>) {
    if env.is_empty() {
        return;
    }
    let Some(spec) = pod_spec_mut(doc) else { return };
    for c in containers_mut(spec) {
        let vars = c.entry("env".into()).or_insert(Value::Sequence(Vec::new()));
        let Value::Sequence(vars) = vars else { continue };
        for (name, value) in env {
            vars.retain(|v| v.get("name").and_then(Value::as_str) != Some(name));
            let mut var = serde_yaml_ng::Mapping::new();
            var.insert("name".into(), name.as_str().into());
            var.insert("value".into(), value.as_str().into());
            vars.push(Value::Mapping(var));
        }
    }
}

/// Writes the configuration helm's post-renderer child reads.
pub fn write_config(cfg: &Config, path: &Path) -> Result<()> {
    std::fs::write(path, serde_json::to_vec(cfg)?).with_context(|| path.display().to_string())
}

/// Helm pipes the rendered manifests in and reads the post-rendered ones out.
pub fn run_as_helm_post_renderer(config: &Path) -> Result<()> {
    let cfg: Config = serde_json::from_slice(&std::fs::read(config).with_context(|| config.display().to_string())?)
        .with_context(|| format!("{ENV}={}", config.display()))?;
    let registry = RegistryClient::new(&cfg.registry_url, cfg.ca_file.as_deref())?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rendered = rt.block_on(post_render(&input, &cfg, &registry))?;
    std::io::stdout().write_all(kubemanifests::to_stream(&rendered.docs)?.as_bytes())?;
    Ok(())
}
