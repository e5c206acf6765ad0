//! A plan's step made concrete for one site: objects built, charts fetched from the site
//! registry and rendered with the bundled helm, every image through the leak check. Rendering
//! changes nothing in any cluster; `plan` prints what it gives and `apply` acts on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use serde_yaml_ng::Value;
use sha2::{Digest as _, Sha256};

use crate::alertmanager_config::Alertmanager;
use crate::cluster_values::{self, Values};
use crate::generated::Generate;
use crate::helm::{Helm, ReleaseInput};
use crate::hooks::{self, Hook};
use crate::mounted_files::Mounts;
use crate::plan::{Cluster, ConfigMap, Istio, Namespace, Release, Source, Step, StepAction};
use crate::postrender::{self, ImageMode, ObjectRef};
use crate::registry_client::RegistryClient;
use crate::saml::Saml;
use crate::site::Site;
use crate::site_ca::SiteCa;

/// Where `istioctl manifest generate` puts what it leaves without a namespace.
const ISTIO_NAMESPACE: &str = "istio-system";

pub struct Renderer<'a> {
    pub plan_dir: &'a Path,
    pub site: &'a Site,
    pub registry: &'a RegistryClient,
    pub post: postrender::Config,
    pub helm: Option<Helm>,
    pub istioctl: Option<PathBuf>,
    /// Charts, clones and files fetched for this run.
    pub work: PathBuf,
    /// `--kube-version` for `helm template` (the cluster's, when known).
    pub kube_version: Option<String>,
    /// `--api-versions` for `helm template`: what the cluster serves (see `check::Apis`), so that
    /// charts choosing an apiVersion by the cluster's capabilities render as they will install.
    pub api_versions: Vec<String>,
}

pub enum Action {
    /// Applied with server-side apply; objects without a namespace get `namespace` when namespaced.
    Objects {
        docs: Vec<Value>,
        namespace: Option<String>,
    },
    Helm(Box<HelmAction>),
    /// Site material made unless the cluster holds it (`generate`): the objects with their keys
    /// and empty values, as a reader of the plan may rely on them.
    Generate {
        shapes: Vec<Value>,
    },
    /// Requests to an HTTP API inside the site (see `http_step`).
    Http(Box<crate::http_step::Prepared>),
    /// Keycloak's SAML client by a Job, then Rancher's SAML configuration (see `saml`); the Job's
    /// objects, post-rendered, are the step's `docs`.
    Saml(Box<crate::saml::Prepared>),
    Nothing,
}

pub struct HelmAction {
    pub chart: PathBuf,
    pub values: Vec<PathBuf>,
    pub set: BTreeMap<String, String>,
    /// Values taken from the cluster, each in a file of the work folder (helm `--set-file`).
    pub set_files: BTreeMap<String, PathBuf>,
    pub post: postrender::Config,
    /// Rendered for an install; helm leaves them to the installer (see `hooks`).
    pub hooks: Vec<Hook>,
    /// Applied before the release: the site CA's ConfigMap (see `site_ca`) and the ConfigMap of
    /// its mounted files (see `mounted_files`).
    pub before: Vec<Value>,
}

/// What every step of a cluster shares.
pub struct ClusterContext {
    /// The plan's global configmap, substituted, for `${site.configmap.<key>}`.
    pub configmap: BTreeMap<String, String>,
    /// The cluster's default of `site_ca`.
    pub site_ca: bool,
}

pub struct Rendered<'p> {
    pub step: &'p Step,
    pub action: Action,
    /// One line: what the step does.
    pub summary: String,
    pub objects: Vec<ObjectRef>,
    /// Every object the step sends to the cluster, post-rendered, hooks included (what `install
    /// verify` checks the live cluster against).
    pub docs: Vec<Value>,
    pub images: BTreeMap<String, String>,
    /// Over everything the step would send to the cluster: equal hashes, nothing to do.
    pub hash: String,
    /// Why the step does not run on this site (a component turned off).
    pub skipped: Option<String>,
}

impl Renderer<'_> {
    /// The plan's global configmap (`configmap: {name: global}`), substituted, for
    /// `${site.configmap.<key>}`.
    pub fn global_configmap(&self, cluster: &Cluster) -> Result<BTreeMap<String, String>> {
        let empty = BTreeMap::new();
        let Some(cm) = cluster
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                StepAction::ConfigMap(cm) => Some(cm),
                _ => None,
            })
            .find(|c| c.name == "global")
        else {
            return Ok(empty);
        };
        cm.data.iter().map(|(k, v)| Ok((k.clone(), self.site.substitute(v, &empty)?))).collect()
    }

    pub fn context(&self, cluster: &Cluster) -> Result<ClusterContext> {
        Ok(ClusterContext { configmap: self.global_configmap(cluster)?, site_ca: cluster.site_ca })
    }

    /// A step as `plan` shows it: values taken from the cluster are placeholders.
    pub async fn render<'p>(&self, step: &'p Step, ctx: &ClusterContext) -> Result<Rendered<'p>> {
        self.render_with(step, ctx, &Values::placeholders()).await
    }

    /// A step with the values it takes from the cluster (see `cluster_values`).
    pub async fn render_with<'p>(&self, step: &'p Step, ctx: &ClusterContext, values: &Values) -> Result<Rendered<'p>> {
        let mut out = Rendered {
            step,
            action: Action::Nothing,
            summary: String::new(),
            objects: Vec::new(),
            docs: Vec::new(),
            images: BTreeMap::new(),
            hash: String::new(),
            skipped: None,
        };
        if let Some(c) = &step.component {
            if !self.site.component(c) {
                out.skipped = Some(format!("components.{c} is off in the site file"));
            }
        }
        let sub = |s: &str| values.substitute(&self.site.substitute(s, &ctx.configmap)?);
        let mut hashed = serde_json::to_vec(&json!({
            "copy": step.copy.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>(),
        }))?;
        match &step.action {
            StepAction::Namespace(ns) => namespace(ns, &mut out)?,
            StepAction::ConfigMap(cm) => {
                out.summary = format!("configmap {}/{}", cm.namespace, cm.name);
                out.action =
                    Action::Objects { docs: vec![data_object("ConfigMap", "data", cm, &sub)?], namespace: None };
            }
            StepAction::Secret(s) => {
                out.summary = format!("secret {}/{}", s.namespace, s.name);
                out.action =
                    Action::Objects { docs: vec![data_object("Secret", "stringData", s, &sub)?], namespace: None };
            }
            StepAction::Apply(src) => self.apply(src, &mut out).await?,
            StepAction::Manifest(objects) => self.manifest(objects, &sub, &mut out).await?,
            StepAction::Generate(g) => generate(g, &mut out, &mut hashed)?,
            StepAction::Helm(h) => self.helm_release(step, h, ctx, &sub, &mut out, &mut hashed).await?,
            StepAction::Alertmanager(a) => self.alertmanager(a, &mut out).await?,
            StepAction::Saml(saml) => self.saml(step, saml, &sub, &mut out, &mut hashed).await?,
            StepAction::Http(http) => {
                let prepared = crate::http_step::prepare(http, self, &sub).await?;
                out.summary = prepared.summary();
                hashed.extend(prepared.hash_input()?);
                out.action = Action::Http(Box::new(prepared));
            }
            StepAction::Istio(istio) => {
                let (what, docs, images) = self.render_istio(istio, &sub).await?;
                out.summary = format!("istio from {what}");
                out.images = images;
                out.action = Action::Objects { docs, namespace: Some(ISTIO_NAMESPACE.into()) };
            }
            StepAction::CopyAndWait => out.summary = "copy and wait".into(),
        }
        if let Action::Objects { docs, .. } = &out.action {
            out.objects = docs.iter().filter_map(postrender::object_ref).collect();
            out.docs = docs.clone();
            hashed.extend(kubemanifests::to_stream(docs)?.as_bytes());
        }
        hashed.extend(out.summary.as_bytes());
        out.hash = hex::encode(Sha256::digest(&hashed));
        Ok(out)
    }

    /// `apply`: a file, or a folder of a git repository or chart, of the bundle.
    async fn apply(&self, src: &Source, out: &mut Rendered<'_>) -> Result<()> {
        let (what, yaml) = self.read_source(src).await?;
        let rendered = postrender::post_render(&yaml, &self.post, self.registry).await.context(what.clone())?;
        out.summary = format!("apply {what}");
        out.images = rendered.images;
        out.action = Action::Objects { docs: rendered.docs, namespace: src.namespace.clone() };
        Ok(())
    }

    /// `manifest`: objects written in the plan.
    async fn manifest(
        &self,
        objects: &[Value],
        sub: &dyn Fn(&str) -> Result<String>,
        out: &mut Rendered<'_>,
    ) -> Result<()> {
        let docs = objects.iter().map(|o| substitute_strings(o, sub)).collect::<Result<Vec<_>>>()?;
        let rendered = postrender::post_render(&kubemanifests::to_stream(&docs)?, &self.post, self.registry)
            .await
            .context("manifest")?;
        out.summary = format!("apply {} object(s) of the plan", rendered.docs.len());
        out.images = rendered.images;
        out.action = Action::Objects { docs: rendered.docs, namespace: None };
        Ok(())
    }

    async fn helm_release(
        &self,
        step: &Step,
        h: &Release,
        ctx: &ClusterContext,
        sub: &dyn Fn(&str) -> Result<String>,
        out: &mut Rendered<'_>,
        hashed: &mut Vec<u8>,
    ) -> Result<()> {
        let (chart, what) = match (&h.chart, &h.local_chart) {
            (Some(c), _) => (self.fetch_chart(c).await?, c.clone()),
            (None, Some(local)) => (
                self.checkout(local)?,
                format!("{}/{}", local.git.as_deref().unwrap_or(""), local.path.as_deref().unwrap_or("")),
            ),
            (None, None) => bail!("release {} names no chart", h.release),
        };
        let values: Vec<PathBuf> = h.values.iter().map(|v| self.plan_dir.join(v)).collect();
        let (from_cluster, plain): (BTreeMap<_, _>, BTreeMap<_, _>) =
            h.set.iter().partition(|(_, v)| cluster_values::takes_values(v));
        let set = plain.into_iter().map(|(k, v)| Ok((k.clone(), sub(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
        let set_dir = self.work.join("set-files").join(&step.id);
        let set_files = from_cluster
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), write_private(&set_dir, k, &sub(v)?)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let env = h.env.iter().map(|(k, v)| Ok((k.clone(), sub(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
        let files = h.files.iter().map(|(k, v)| Ok((k.clone(), sub(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
        let mounts = Mounts::of(&h.release, &files);
        let with_ca = h.site_ca.unwrap_or(ctx.site_ca);
        let post = postrender::Config { env, site_ca: with_ca, files: mounts.clone(), ..self.post.clone() };
        let input = ReleaseInput {
            release: &h.release,
            namespace: &h.namespace,
            chart: &chart,
            values: &values,
            set: &set,
            set_files: &set_files,
        };
        // A chart whose kubeVersion excludes the cluster is left unrendered (helm would refuse
        // it): `check` reports it, with the rest of the plan's problems.
        let refused = match &self.kube_version {
            Some(v) => crate::check::chart::ChartMeta::read(&chart)?.refused_by_helm(v)?,
            None => None,
        };
        let rendered = match refused {
            Some(_) => postrender::Rendered::default(),
            None => self
                .template(&input, &post, hooks::Operation::Install)
                .await
                .with_context(|| format!("release {} (chart {what})", h.release))?,
        };
        out.summary = format!(
            "helm release {}/{} from {what}{}",
            h.namespace,
            h.release,
            if h.reinstall { " (reinstalled)" } else { "" }
        );
        out.images = rendered.images;
        out.objects = rendered.objects;
        out.docs = rendered.docs.clone();
        let site_ca = match with_ca && crate::site_ca::mounted_in(&rendered.docs) {
            true => Some(SiteCa::from_site(self.site)?),
            false => None,
        };
        let mut before = Vec::new();
        if let Some(ca) = &site_ca {
            before.push(ca.configmap(&h.namespace)?);
        }
        if let Some(m) = &mounts {
            before.push(m.configmap(&h.namespace, &files)?);
        }
        out.objects.extend(before.iter().filter_map(postrender::object_ref));
        // The release's inputs, not its rendered text: charts that generate passwords
        // (`randAlphaNum`) render differently every time, so a re-run would upgrade them.
        let values_text = values
            .iter()
            .map(|v| std::fs::read_to_string(v).with_context(|| v.display().to_string()))
            .collect::<Result<Vec<_>>>()?;
        let chart_bytes = if chart.is_file() { std::fs::read(&chart)? } else { Vec::new() };
        hashed.extend(serde_json::to_vec(&json!({
            "chart": hex::encode(Sha256::digest(&chart_bytes)),
            "values": values_text, "set": set, "env": post.env, "images": out.images,
            "request_scale": post.request_scale, "probe_delay_scale": post.probe_delay_scale,
            "set_files": set_files.keys().map(|k| sub(&h.set[k])).collect::<Result<Vec<_>>>()?,
            "objects": out.objects.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "site_ca": site_ca.as_ref().map(|ca| &ca.pem), "files": files,
        }))?);
        let hooks = hooks::hooks(rendered.docs);
        out.action = Action::Helm(Box::new(HelmAction { chart, values, set, set_files, post, hooks, before }));
        Ok(())
    }

    async fn alertmanager(&self, a: &Alertmanager, out: &mut Rendered<'_>) -> Result<()> {
        let (_, base) = self.carried_file(&a.base).await?;
        let base = String::from_utf8(base).with_context(|| format!("{} is not UTF-8", a.base))?;
        out.summary = format!("alertmanager configuration {}/{} with the site's receivers", a.namespace, a.secret);
        out.action = Action::Objects { docs: vec![a.secret(&base, self.site)?], namespace: None };
        Ok(())
    }

    async fn saml(
        &self,
        step: &Step,
        saml: &Saml,
        sub: &dyn Fn(&str) -> Result<String>,
        out: &mut Rendered<'_>,
        hashed: &mut Vec<u8>,
    ) -> Result<()> {
        let (what, client) = match &saml.client.file {
            Some(file) => (file.clone(), self.carried_file(file).await?.1),
            None => {
                let path = self.checkout(&saml.client)?;
                (path.display().to_string(), std::fs::read(&path).with_context(|| path.display().to_string())?)
            }
        };
        let prepared = saml.prepare(&step.id, &client, self.site, &sub, out.skipped.is_none());
        let prepared = prepared.with_context(|| format!("saml (client {what})"))?;
        let rendered =
            postrender::post_render(&kubemanifests::to_stream(&prepared.keycloak)?, &self.post, self.registry)
                .await
                .context("saml")?;
        out.summary = prepared.summary();
        out.images = rendered.images;
        out.objects = rendered.docs.iter().filter_map(postrender::object_ref).collect();
        out.docs = rendered.docs;
        hashed.extend(kubemanifests::to_stream(&out.docs)?.as_bytes());
        hashed.extend(prepared.hash_input()?);
        out.action = Action::Saml(Box::new(prepared));
        Ok(())
    }

    /// `helm template` of a release as an install or an upgrade, post-rendered.
    pub async fn template(
        &self,
        input: &ReleaseInput<'_>,
        post: &postrender::Config,
        operation: hooks::Operation,
    ) -> Result<postrender::Rendered> {
        let helm = self.helm.as_ref().ok_or_else(|| anyhow!("no helm to render release {}", input.release))?;
        let upgrade = operation == hooks::Operation::Upgrade;
        let yaml = helm.template(input, self.kube_version.as_deref(), &self.api_versions, upgrade)?;
        postrender::post_render(&yaml, post, self.registry).await
    }

    /// `istioctl manifest generate` of the step's IstioOperator, post-rendered like a chart. The
    /// sidecar image is named only inside the injector's configuration, so it is checked apart and
    /// given whole to the sidecar and its init container (`values.global.proxy.image` and
    /// `proxy_init.image`, which Istio takes as they are when they hold a `/`): injected pods then
    /// pull it pinned, as every other image.
    async fn render_istio(
        &self,
        istio: &Istio,
        sub: &dyn Fn(&str) -> Result<String>,
    ) -> Result<(String, Vec<Value>, BTreeMap<String, String>)> {
        let istioctl = self.istioctl.as_ref().ok_or_else(|| anyhow!("no istioctl to render Istio"))?;
        let (what, operator) = self.read_source(&istio.operator).await?;
        let file = self.work.join(format!("istio-operator-{}.yaml", hex::encode(Sha256::digest(&operator))));
        std::fs::write(&file, &operator)?;
        let hub = match self.post.mode {
            ImageMode::Rewrite => format!("{}/{}", self.post.registry_address, istio.hub),
            ImageMode::Keep => istio.hub.clone(),
        };
        let sidecar = format!("{hub}/proxyv2:{}", istio.tag);
        let Some(sidecar_target) = postrender::target(&sidecar, &self.post, self.registry).await? else {
            bail!("leak check: Istio's sidecars would pull {sidecar}, which the bundle does not carry")
        };
        let mut cmd = std::process::Command::new(istioctl);
        cmd.args(["manifest", "generate", "-f"]).arg(&file);
        cmd.args(["--set", &format!("hub={hub}"), "--set", &format!("tag={}", istio.tag)]);
        for image in ["proxy", "proxy_init"] {
            cmd.args(["--set", &format!("values.global.{image}.image={sidecar_target}")]);
        }
        for (k, v) in &istio.set {
            cmd.args(["--set", &format!("{k}={}", sub(v)?)]);
        }
        let out = cmd.output().with_context(|| format!("cannot run {}", istioctl.display()))?;
        if !out.status.success() {
            bail!("istioctl manifest generate -f {what}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let yaml = String::from_utf8(out.stdout).context("istioctl wrote something that is not UTF-8")?;
        let rendered = postrender::post_render(&yaml, &self.post, self.registry).await.context(what.clone())?;
        let mut images = rendered.images;
        images.insert(sidecar, sidecar_target);
        Ok((what, rendered.docs, images))
    }

    async fn fetch_chart(&self, reference: &str) -> Result<PathBuf> {
        let file = self.work.join("charts").join(format!("{}.tgz", reference.replace(['/', ':'], "_")));
        if !file.is_file() {
            self.registry.fetch_layer(reference, &file).await.with_context(|| format!("chart {reference}"))?;
        }
        let offline = file.with_extension("offline.tgz");
        let removed = crate::chart_schema::make_offline(&file, &offline)?;
        if removed.is_empty() {
            return Ok(file);
        }
        eprintln!(
            "chart {reference}: values.schema.json refers to {} (not reachable offline): left out of validation",
            removed.join(", ")
        );
        Ok(offline)
    }

    /// The repository cloned once per run; the source's path inside it.
    fn checkout(&self, src: &Source) -> Result<PathBuf> {
        let (Some(repo), Some(path)) = (&src.git, &src.path) else { bail!("a git source needs git and path") };
        let dir = self.work.join("git").join(repo.replace(['/', ':'], "_"));
        if !dir.exists() {
            self.registry.clone_git(repo, &dir)?;
        }
        bundles::safe_path::check_member_name(path).map_err(|e| anyhow!("{repo}: {e}"))?;
        let target = dir.join(path);
        if !target.exists() {
            bail!("{repo} has no {path}");
        }
        Ok(target)
    }

    /// A file or folder inside a carried chart, the archive unpacked once per run.
    async fn chart_files(&self, reference: &str, path: &str) -> Result<PathBuf> {
        bundles::safe_path::check_member_name(path).map_err(|e| anyhow!("{reference}: {e}"))?;
        let dir = self.work.join("chart-files").join(reference.replace(['/', ':'], "_"));
        if !dir.exists() {
            let archive = self.fetch_chart(reference).await?;
            let file = std::fs::File::open(&archive).with_context(|| archive.display().to_string())?;
            let unpacking = dir.with_extension("partial");
            tar::Archive::new(flate2::read::GzDecoder::new(file))
                .unpack(&unpacking)
                .with_context(|| format!("chart {reference}: cannot unpack"))?;
            std::fs::rename(&unpacking, &dir)?;
        }
        // A chart archive holds one folder, named after the chart.
        let top = std::fs::read_dir(&dir)?
            .next()
            .transpose()?
            .ok_or_else(|| anyhow!("chart {reference}: an empty archive"))?;
        let target = top.path().join(path);
        if !target.exists() {
            bail!("chart {reference} has no {path}");
        }
        Ok(target)
    }

    /// A file of the bundle (`files.airgap.local/<name>:<version>`): its name and bytes.
    pub async fn carried_file(&self, reference: &str) -> Result<(String, Vec<u8>)> {
        let name = reference.rsplit_once(':').map_or(reference, |(n, _)| n).rsplit('/').next().unwrap_or("file");
        let dest = self.work.join("files").join(name);
        self.registry.fetch_layer(reference, &dest).await.with_context(|| format!("file {reference}"))?;
        Ok((name.to_string(), std::fs::read(&dest).with_context(|| dest.display().to_string())?))
    }

    /// The YAML a plan's `apply` names: a file, or every .yaml/.yml of a folder in name order.
    async fn read_source(&self, src: &Source) -> Result<(String, String)> {
        if let Some(file) = &src.file {
            let (_, bytes) = self.carried_file(file).await?;
            return Ok((file.clone(), String::from_utf8(bytes).with_context(|| format!("{file} is not UTF-8"))?));
        }
        let target = match &src.chart {
            Some(chart) => self.chart_files(chart, src.path.as_deref().unwrap_or_default()).await?,
            None => self.checkout(src)?,
        };
        let from = src.git.as_deref().or(src.chart.as_deref()).unwrap_or_default();
        let what = format!("{from}/{}", src.path.as_deref().unwrap_or_default());
        let mut files = Vec::new();
        if target.is_dir() {
            for e in std::fs::read_dir(&target)? {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(target);
        }
        let mut yaml = String::new();
        for f in files {
            yaml.push_str("\n---\n");
            yaml.push_str(&std::fs::read_to_string(&f).with_context(|| f.display().to_string())?);
        }
        Ok((what, yaml))
    }
}

/// Every string of a plan's object, substituted.
pub(crate) fn substitute_strings(v: &Value, sub: &dyn Fn(&str) -> Result<String>) -> Result<Value> {
    Ok(match v {
        Value::String(s) => Value::String(sub(s)?),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|i| substitute_strings(i, sub)).collect::<Result<_>>()?)
        }
        Value::Mapping(m) => {
            Value::Mapping(m.iter().map(|(k, v)| Ok((k.clone(), substitute_strings(v, sub)?))).collect::<Result<_>>()?)
        }
        Value::Tagged(t) => substitute_strings(&t.value, sub)?,
        other => other.clone(),
    })
}

/// A value written to a file only its owner reads (it may be a secret read from the cluster).
fn write_private(dir: &Path, key: &str, value: &str) -> Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let file = dir.join(key.replace(['/', '\\'], "_"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| file.display().to_string())?;
    f.write_all(value.as_bytes())?;
    Ok(file)
}

fn namespace(ns: &Namespace, out: &mut Rendered<'_>) -> Result<()> {
    let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name, "labels": ns.labels}});
    out.summary = format!("namespace {}", ns.name);
    out.action = Action::Objects { docs: vec![serde_yaml_ng::to_value(doc)?], namespace: None };
    Ok(())
}

fn generate(g: &Generate, out: &mut Rendered<'_>, hashed: &mut Vec<u8>) -> Result<()> {
    out.summary = format!("generate a signing keystore in namespace {} unless the cluster holds it", g.namespace);
    out.objects = g.objects();
    hashed.extend(format!("{g:?}").as_bytes());
    out.action = Action::Generate { shapes: g.shapes()? };
    Ok(())
}

fn data_object(kind: &str, field: &str, cm: &ConfigMap, sub: &dyn Fn(&str) -> Result<String>) -> Result<Value> {
    let data = cm.data.iter().map(|(k, v)| Ok((k.clone(), sub(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
    Ok(serde_yaml_ng::to_value(json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"name": cm.name, "namespace": cm.namespace},
        field: data,
    }))?)
}
