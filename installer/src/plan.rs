//! The install plan (`manifests/<platform>/plan.yaml`): per cluster, steps with dependencies.
//! The top of `manifests/mosip-1.2.0.1-B2/plan.yaml` documents the format; keep the two in step.
//! Loading checks what can be checked before a cluster is touched: unknown keys, one action per
//! step, dependencies that exist and form no cycle, and charts, git repositories and files that
//! the bundle spec carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bundles::naming;
use serde::Deserialize;

/// A loaded plan, checked against the bundle spec it names (see [`Plan::load`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The format version; only 1 is read.
    pub version: u32,
    /// The bundle spec the plan installs from, relative to the plan.
    pub bundle: PathBuf,
    /// Each cluster's steps, by the cluster's name in the site file.
    pub clusters: BTreeMap<String, Cluster>,
}

/// One cluster of the plan: its steps, in any order (see [`Cluster::order`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Free text, shown beside the cluster's name.
    #[serde(default)]
    pub description: String,
    /// The default of `site_ca` for the cluster's helm releases.
    #[serde(default)]
    pub site_ca: bool,
    /// The cluster's steps as written; their `after` gives the order.
    pub steps: Vec<Step>,
}

/// One step of a cluster: one action, plus the copies and waits that follow it.
#[derive(Debug, Deserialize)]
#[serde(try_from = "StepFile")]
pub struct Step {
    /// Unique within the cluster; what `after`, `--from`, `--to` and `--only` name.
    pub id: String,
    /// What the step is for, for people; may be empty.
    pub title: String,
    /// Steps of the same cluster that must be done first.
    pub after: Vec<String>,
    /// The site's `components.<name>` that must be true for the step to run.
    pub component: Option<String>,
    /// What the step does.
    pub action: StepAction,
    /// Copies of resources from other namespaces, as the upstream scripts make them.
    pub copy: Vec<Copy>,
    /// What must be ready before the step counts as done, checked after its action and copies.
    pub wait: Vec<Wait>,
    /// Objects the step makes without rendering them (a Secret a chart's Job writes), which
    /// `install plan`'s check counts as there once the step is done.
    pub provides: Vec<Provided>,
}

/// What a step does: the one action key it has, or only its copies and waits.
#[derive(Debug)]
pub enum StepAction {
    /// A namespace with its labels.
    Namespace(Namespace),
    /// A ConfigMap whose values are substituted from the site file.
    ConfigMap(ConfigMap),
    /// Same shape as a configmap; the values (site inputs) become the secret's data.
    Secret(ConfigMap),
    /// Objects of a file, or of a folder of a git repository or chart, of the bundle.
    Apply(Source),
    /// Objects written in the plan; `${site.path}` is replaced in every string of them.
    Manifest(Vec<serde_yaml_ng::Value>),
    /// A Helm release of a chart of the bundle.
    Helm(Release),
    /// Istio's control plane, rendered by the bundled istioctl.
    Istio(Istio),
    /// Site material made once and kept in the cluster (see `generated`).
    Generate(crate::generated::Generate),
    /// Requests to an HTTP API inside the site (see `http_step`).
    Http(crate::http_step::Http),
    /// rancher-monitoring's Alertmanager configuration with the site's receivers (see
    /// `alertmanager_config`).
    Alertmanager(crate::alertmanager_config::Alertmanager),
    /// Keycloak's SAML client for Rancher and Rancher's SAML configuration (see `saml`).
    Saml(crate::saml::Saml),
    /// Nothing but the step's copies and waits.
    CopyAndWait,
}

impl Step {
    /// The step's release, when it is a helm step.
    pub fn helm(&self) -> Option<&Release> {
        match &self.action {
            StepAction::Helm(h) => Some(h),
            _ => None,
        }
    }
}

/// A step as the plan file writes it: each action under its own key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    after: Vec<String>,
    component: Option<String>,
    namespace: Option<Namespace>,
    configmap: Option<ConfigMap>,
    secret: Option<ConfigMap>,
    apply: Option<Source>,
    manifest: Option<Vec<serde_yaml_ng::Value>>,
    helm: Option<Release>,
    istio: Option<Istio>,
    generate: Option<crate::generated::Generate>,
    http: Option<crate::http_step::Http>,
    alertmanager: Option<crate::alertmanager_config::Alertmanager>,
    saml: Option<crate::saml::Saml>,
    #[serde(default)]
    copy: Vec<Copy>,
    #[serde(default)]
    wait: Vec<Wait>,
    #[serde(default)]
    provides: Vec<Provided>,
}

impl TryFrom<StepFile> for Step {
    type Error = String;

    fn try_from(f: StepFile) -> Result<Step, String> {
        let actions = [
            f.namespace.map(StepAction::Namespace),
            f.configmap.map(StepAction::ConfigMap),
            f.secret.map(StepAction::Secret),
            f.apply.map(StepAction::Apply),
            f.manifest.map(StepAction::Manifest),
            f.helm.map(StepAction::Helm),
            f.istio.map(StepAction::Istio),
            f.generate.map(StepAction::Generate),
            f.http.map(StepAction::Http),
            f.alertmanager.map(StepAction::Alertmanager),
            f.saml.map(StepAction::Saml),
        ];
        let mut given = actions.into_iter().flatten();
        let action = match (given.next(), given.next()) {
            (Some(action), None) => action,
            (None, None) if !f.copy.is_empty() || !f.wait.is_empty() => StepAction::CopyAndWait,
            _ => {
                return Err(format!(
                    "step {}: a step has one of namespace, configmap, secret, apply, manifest, helm, istio, generate, http, alertmanager, saml (or only copy/wait)",
                    f.id
                ))
            }
        };
        Ok(Step {
            id: f.id,
            title: f.title,
            after: f.after,
            component: f.component,
            action,
            copy: f.copy,
            wait: f.wait,
            provides: f.provides,
        })
    }
}

/// An object a step's controller or Job makes (see `check`); without a name, a kind it makes
/// served (the CRDs a Job applies).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provided {
    /// The object's kind (`Secret`), or the kind served (`ServiceMonitor`).
    pub kind: String,
    /// `group/version`: needed for a served kind, and when the kind's name alone does not say
    /// which one it is.
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    /// The object's name; absent, the kind itself is what the step provides.
    pub name: Option<String>,
    /// Of a served kind: whether its objects are namespaced (default true).
    pub namespaced: Option<bool>,
    /// Default: the step's namespace (its release's, apply's, configmap's or secret's).
    pub namespace: Option<String>,
    /// A ConfigMap's or Secret's keys; when given, a reference to another key is a problem.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// A `namespace:` step: the namespace, applied with its labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// The namespace.
    pub name: String,
    /// Labels set on it (`istio-injection: enabled`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A `configmap:` or `secret:` step: one object whose values come from the site file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMap {
    /// The object's name.
    pub name: String,
    /// The namespace it is written to; it must exist by then.
    pub namespace: String,
    /// Key → value; `${site.path}` is replaced from the site file.
    pub data: BTreeMap<String, String>,
}

/// Where objects come from in the bundle: git + path, chart + path, or file (checked on load).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A git repository of the bundle, `<host>/<path>:<ref>`, and a file or folder in it.
    pub git: Option<String>,
    /// A chart of the bundle (as `helm.chart` names it), and a file or folder in it: what a chart
    /// ships for a hook Job to apply (rancher-monitoring-crd's CRDs).
    pub chart: Option<String>,
    /// A file or folder inside `git` or `chart`.
    pub path: Option<String>,
    /// A file of the bundle, `files.airgap.local/<name>:<version>` (see [`bundles::naming`]).
    pub file: Option<String>,
    /// The namespace given to objects that name none.
    pub namespace: Option<String>,
}

/// A `helm:` step: a release of a chart the bundle carries, installed or upgraded by the bundled helm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The release name.
    pub release: String,
    /// The release's namespace.
    pub namespace: String,
    /// A chart of the bundle, `<repo host>/<repo path>/<chart>:<version>`.
    pub chart: Option<String>,
    /// A chart folder inside a git repository of the bundle.
    pub local_chart: Option<Source>,
    /// Values files relative to the plan.
    #[serde(default)]
    pub values: Vec<PathBuf>,
    /// `--set` values; `${site.path}` is replaced from the site file.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Environment added to every container the release renders (by the post-renderer), for
    /// images that reach the internet from code no chart value controls.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run `helm uninstall` first, as the upstream scripts do for one-shot Jobs.
    #[serde(default)]
    pub reinstall: bool,
    /// Give every container the site CA (see `site_ca`), for code that calls the site's
    /// registry or domains over HTTPS itself; absent, the cluster's `site_ca`.
    pub site_ca: Option<bool>,
    /// Files mounted read-only into every container: path in the container → content
    /// (`${site.path}` replaced), from a ConfigMap applied beside the release (see `mounted_files`).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// Istio installed from an IstioOperator file, rendered by the bundled istioctl (`manifest
/// generate`, which needs no cluster) and applied like any manifest: every object and image is
/// known, and leak-checked, before the cluster is touched, and no in-cluster operator runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Istio {
    /// The IstioOperator file.
    pub operator: Source,
    /// Where the control plane images live upstream (`docker.io/istio`); the installer points it
    /// at the site registry unless images are kept by name.
    pub hub: String,
    /// The image tag of every control-plane image (`1.15.0`).
    pub tag: String,
    /// `--set` values for istioctl; `${site.path}` is replaced from the site file.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// A ConfigMap or Secret copied from one namespace to another, after the step's action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    /// ConfigMap or Secret.
    pub kind: CopyKind,
    /// The source object's name (and the copy's, unless `as` renames it).
    pub name: String,
    /// The namespace copied from; the object must exist there by then.
    pub from: String,
    /// The namespace copied to; an existing copy is overwritten.
    pub to: String,
    /// The copy's name, when not `name` (as `kubectl create secret s3 --from-literal=...` makes a
    /// new object from another's values).
    #[serde(rename = "as")]
    pub rename: Option<String>,
    /// When given, the copy holds only these keys: copy's key → the source key it takes the value of.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

/// What a [`Copy`](struct@Copy) copies.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CopyKind {
    /// A ConfigMap (`configmap` in the plan).
    ConfigMap,
    /// A Secret (`secret` in the plan).
    Secret,
}

/// A readiness wait after a step (see [`crate::wait::wait`]); the step fails when it times out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Deployment and StatefulSet: available/rolled out; Job: complete; DaemonSet: ready; Pod:
    /// succeeded.
    pub kind: WaitKind,
    /// The namespace the objects are in.
    pub namespace: String,
    /// A name, or `*` for every object of that kind in the namespace.
    #[serde(default = "all")]
    pub name: String,
    /// Seconds.
    pub timeout: u64,
}

fn all() -> String {
    "*".into()
}

/// The kind a [`Wait`] waits for, and so what ready means.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum WaitKind {
    /// Ready when every replica of the current revision is available.
    Deployment,
    /// Ready when every replica of the current revision is ready.
    StatefulSet,
    /// Ready when every scheduled pod is ready.
    DaemonSet,
    /// Ready when complete; a failed Job fails the step.
    Job,
    /// Ready when succeeded (a run-to-completion pod).
    Pod,
}

/// What the plan needs of the bundle spec: the references its charts, git repositories and files
/// get in the bundle.
#[derive(Debug, Default)]
pub struct Carried {
    /// Chart references, `<repo host>/<repo path>/<chart>:<version>`.
    pub charts: BTreeSet<String>,
    /// Git repository references, `<host>/<path>:<ref>`.
    pub git: BTreeSet<String>,
    /// File references, `files.airgap.local/<name>:<version>`.
    pub files: BTreeSet<String>,
}

#[derive(Deserialize)]
struct SpecView {
    #[serde(default)]
    charts: Vec<SpecChart>,
    #[serde(default)]
    git: Vec<SpecGit>,
    #[serde(default)]
    files: Vec<SpecFile>,
}

#[derive(Deserialize)]
struct SpecChart {
    repo: String,
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct SpecGit {
    url: String,
    #[serde(rename = "ref")]
    git_ref: String,
}

#[derive(Deserialize)]
struct SpecFile {
    url: String,
    name: Option<String>,
    version: String,
    extract: Option<String>,
    platform: Option<String>,
}

impl Carried {
    /// Reads the references a bundle spec gives its artifacts, named as the bundler names them
    /// (see [`bundles::naming`]).
    pub fn from_spec(path: &Path) -> Result<Carried> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let spec: SpecView = serde_yaml_ng::from_str(&text).with_context(|| path.display().to_string())?;
        let named = || -> bundles::Result<Carried> {
            let charts = spec.charts.iter().map(|c| naming::chart_reference(&c.repo, &c.name, &c.version));
            let git = spec.git.iter().map(|g| naming::git_reference(&g.url, &g.git_ref));
            let files = spec.files.iter().map(|f| {
                naming::FileEntry {
                    url: &f.url,
                    name: f.name.as_deref(),
                    extract: f.extract.as_deref(),
                    version: &f.version,
                    platform: f.platform.as_deref(),
                }
                .reference()
            });
            Ok(Carried {
                charts: charts.collect(),
                git: git.collect::<Result<_, _>>()?,
                files: files.collect::<Result<_, _>>()?,
            })
        };
        named().with_context(|| path.display().to_string())
    }
}

impl Plan {
    /// Reads and checks a plan against the bundle spec it names.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let plan: Plan = serde_yaml_ng::from_str(&text).map_err(|e| match e.location() {
            Some(l) => anyhow::anyhow!("{}:{}:{}: {e}", path.display(), l.line(), l.column()),
            None => anyhow::anyhow!("{}: {e}", path.display()),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let carried = Carried::from_spec(&dir.join(&plan.bundle))?;
        plan.check(dir, &carried).with_context(|| path.display().to_string())?;
        Ok(plan)
    }

    fn check(&self, dir: &Path, carried: &Carried) -> Result<()> {
        if self.version != 1 {
            bail!("plan version {} is not supported (expected 1)", self.version);
        }
        for (name, cluster) in &self.clusters {
            cluster.check(dir, carried).with_context(|| format!("cluster {name}"))?;
            for step in &cluster.steps {
                if let StepAction::Http(h) = &step.action {
                    h.check_cluster(self.clusters.keys())
                        .with_context(|| format!("cluster {name}: step {}", step.id))?;
                }
            }
        }
        Ok(())
    }
}

impl Cluster {
    fn check(&self, dir: &Path, carried: &Carried) -> Result<()> {
        let mut ids = BTreeSet::new();
        for s in &self.steps {
            if !ids.insert(s.id.as_str()) {
                bail!("step {} is declared twice", s.id);
            }
        }
        for s in &self.steps {
            s.check(dir, carried, &ids).with_context(|| format!("step {}", s.id))?;
        }
        self.order().map(|_| ())
    }

    /// The steps in an order that respects `after`: among the steps whose dependencies are done,
    /// always the one declared first, so the plan's own order is kept wherever it is valid.
    pub fn order(&self) -> Result<Vec<&Step>> {
        let index: BTreeMap<&str, usize> = self.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut done = vec![false; self.steps.len()];
        let mut order = Vec::with_capacity(self.steps.len());
        while order.len() < self.steps.len() {
            let ready =
                self.steps.iter().enumerate().find(|(i, s)| {
                    !done[*i] && s.after.iter().all(|a| index.get(a.as_str()).is_some_and(|&j| done[j]))
                });
            match ready {
                Some((i, s)) => {
                    done[i] = true;
                    order.push(s);
                }
                None => {
                    let stuck: Vec<&str> =
                        self.steps.iter().enumerate().filter(|(i, _)| !done[*i]).map(|(_, s)| s.id.as_str()).collect();
                    bail!("the dependencies of these steps form a cycle: {}", stuck.join(", "));
                }
            }
        }
        Ok(order)
    }
}

impl Step {
    fn check(&self, dir: &Path, carried: &Carried, ids: &BTreeSet<&str>) -> Result<()> {
        for a in &self.after {
            if !ids.contains(a.as_str()) {
                bail!("after: no step {a} in this cluster");
            }
        }
        match &self.action {
            StepAction::Generate(g) => g.check(),
            StepAction::Http(h) => h.check(carried),
            StepAction::Alertmanager(a) => a.check(carried),
            StepAction::Saml(s) => {
                s.check()?;
                s.client.check(carried).context("saml.client")
            }
            StepAction::Apply(a) => a.check(carried),
            StepAction::Istio(i) => i.operator.check(carried),
            StepAction::Helm(h) => h.check(dir, carried),
            StepAction::Namespace(_)
            | StepAction::ConfigMap(_)
            | StepAction::Secret(_)
            | StepAction::Manifest(_)
            | StepAction::CopyAndWait => Ok(()),
        }
    }
}

impl Release {
    fn check(&self, dir: &Path, carried: &Carried) -> Result<()> {
        match (&self.chart, &self.local_chart) {
            (Some(c), None) if carried.charts.contains(c) => {}
            (Some(c), None) => bail!("chart {c} is not in the bundle spec"),
            (None, Some(local)) => local.check(carried)?,
            _ => bail!("helm: give one of chart and local_chart"),
        }
        for v in &self.values {
            if !dir.join(v).is_file() {
                bail!("values file {} does not exist", v.display());
            }
        }
        crate::mounted_files::check(&self.files)
    }
}

impl Source {
    fn check(&self, carried: &Carried) -> Result<()> {
        match (&self.git, &self.chart, &self.path, &self.file) {
            (Some(g), None, Some(_), None) if carried.git.contains(g) => Ok(()),
            (Some(g), None, Some(_), None) => bail!("git repository {g} is not in the bundle spec"),
            (None, Some(c), Some(_), None) if carried.charts.contains(c) => Ok(()),
            (None, Some(c), Some(_), None) => bail!("chart {c} is not in the bundle spec"),
            (None, None, None, Some(f)) if carried.files.contains(f) => Ok(()),
            (None, None, None, Some(f)) => bail!("file {f} is not in the bundle spec"),
            _ => bail!("a source is git + path, chart + path, or file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/mosip-1.2.0.1-B2")
    }

    #[test]
    fn the_mosip_plan_loads_and_orders() {
        let plan = Plan::load(&manifests().join("plan.yaml")).unwrap();
        let mosip = &plan.clusters["mosip"];
        let order: Vec<&str> = mosip.order().unwrap().iter().map(|s| s.id.as_str()).collect();
        let pos = |id: &str| order.iter().position(|s| *s == id).unwrap_or_else(|| panic!("no step {id}"));
        assert!(pos("istio") < pos("httpbin") && pos("postgres") < pos("config-server"));
        assert!(pos("config-server") < pos("kernel-ready") && pos("kernel-ready") < pos("regclient"));
        assert!(plan.clusters["observation"].order().unwrap().len() > 3);
    }

    fn cluster(yaml: &str) -> Cluster {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn order_is_stable_and_follows_dependencies() {
        let c = cluster("steps:\n- {id: a, after: [c], wait: [{kind: Job, namespace: x, timeout: 1}]}\n- {id: b, namespace: {name: b}}\n- {id: c, namespace: {name: c}}\n");
        let ids: Vec<&str> = c.order().unwrap().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn cycles_unknown_steps_and_unknown_keys_are_refused() {
        let c = cluster(
            "steps:\n- {id: a, after: [b], namespace: {name: a}}\n- {id: b, after: [a], namespace: {name: b}}\n",
        );
        assert!(c.order().unwrap_err().to_string().contains("cycle"));
        let c = cluster("steps:\n- {id: a, after: [nope], namespace: {name: a}}\n");
        let err = c.check(Path::new("."), &Carried::default()).unwrap_err();
        assert!(format!("{err:#}").contains("no step nope"), "{err:#}");
        assert!(serde_yaml_ng::from_str::<Cluster>("steps:\n- {id: a, bogus: 1}\n").is_err());
        let c = cluster("steps:\n- {id: a, helm: {release: r, namespace: n, chart: 'x/y:1'}}\n");
        let err = c.check(Path::new("."), &Carried::default()).unwrap_err();
        assert!(format!("{err:#}").contains("not in the bundle spec"), "{err:#}");
    }

    #[test]
    fn manifests_generated_material_and_mounted_files_are_checked_on_load() {
        let carried = Carried { charts: BTreeSet::from(["x/y:1".to_string()]), ..Carried::default() };
        let check = |yaml: &str| cluster(yaml).check(Path::new("."), &carried).map_err(|e| format!("{e:#}"));
        let two = serde_yaml_ng::from_str::<Cluster>(
            "steps:\n- {id: a, namespace: {name: a}, manifest: [{kind: ConfigMap}]}\n",
        );
        let two = two.unwrap_err();
        assert!(two.to_string().contains("step a: a step has one of"), "{two}");
        assert_eq!(two.location().map(|l| l.line()), Some(2), "{two}");
        let relative =
            check("steps:\n- {id: a, helm: {release: r, namespace: n, chart: 'x/y:1', files: {etc/x: y}}}\n");
        assert!(relative.unwrap_err().contains("etc/x"));
        let subject = "steps:\n- {id: a, generate: {namespace: n, signing_keystore: {subject: 'Q=1', days: 1, alias: a, configmap: {name: c, ca_cert: a, cert: b, keystore: k}, password: {secret: s, key: p}}}}\n";
        assert!(check(subject).unwrap_err().contains("Q"));
        assert!(check("steps:\n- {id: a, apply: {chart: 'x/y:1', path: crds}}\n").is_ok());
        let missing = check("steps:\n- {id: a, apply: {chart: 'x/z:1', path: crds}}\n").unwrap_err();
        assert!(missing.contains("chart x/z:1 is not in the bundle spec"), "{missing}");
        let c = cluster(
            "site_ca: true\nsteps:\n- {id: a, helm: {release: r, namespace: n, chart: 'x/y:1', site_ca: false}}\n",
        );
        assert!(c.site_ca && c.steps[0].helm().unwrap().site_ca == Some(false));
    }
}
