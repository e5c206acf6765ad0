//! `install plan`'s proof that every rendered object can start where it lands, before anything is
//! applied: the ConfigMaps, Secrets (and keys), claims, classes, accounts, roles, gateways and
//! services it names exist in the cluster or are made by an earlier step (or the same release,
//! or a step's `provides:`); its API is served by the cluster's Kubernetes version (CRDs of earlier
//! steps counted); each chart's declared Kubernetes range admits that version; and no container
//! runs a controller that needs an API the version no longer serves (`manifests/runtime-apis.yaml`).
//!
//! It reads what the renderer made and asks the cluster (when it answers) only to read.

mod apis;
pub(crate) mod chart;
mod inventory;
mod kube_version;
mod live;
pub(crate) mod refs;
mod report;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::cluster::Cluster;
use crate::plan::{CopyKind, Provided, Step, StepAction};
use crate::postrender::ObjectRef;
use crate::render::{Action, Rendered};
use crate::site::Site;

pub use apis::Apis;
use inventory::{data_keys, Definition, Inventory, Phase};
pub use live::Live;
use refs::{Id, Need, Ref};
pub use report::{Accepted, Problem, Report, Severity};

/// The cluster the plan is checked against.
pub struct Target {
    /// The APIs it serves (discovered, or known for the version).
    pub apis: Apis,
    /// Its objects, when it answered; None when taken as empty.
    pub live: Option<Live>,
    /// The Kubernetes version, as charts' ranges are read against it.
    pub version: String,
    /// Why the cluster was not asked, when it was not.
    pub not_asked: Option<String>,
}

impl Target {
    /// A cluster that answers: its discovery, its version and its objects.
    pub async fn asked(cluster: &Cluster, version: &str) -> Result<Target> {
        let live = Live::new(cluster.client.clone()).await.with_context(|| format!("cluster {}", cluster.name))?;
        let apis = Apis::from_discovery(live.discovery(), version);
        Ok(Target { apis, live: Some(live), version: version.to_string(), not_asked: None })
    }

    /// A cluster that cannot be asked: taken as empty, at the version the site declares.
    pub fn declared(version: &str, why: String) -> Result<Target> {
        Ok(Target { apis: Apis::for_version(version)?, live: None, version: version.to_string(), not_asked: Some(why) })
    }
}

/// How `plan` reaches a cluster: itself, when its kubeconfig reaches it and it answers, or not,
/// and then the cluster is taken as empty at the version `--kube-version` or the site file gives.
pub(crate) enum Reach {
    Asked { cluster: Box<Cluster>, version: String },
    NotAsked { version: String, why: String },
}

/// How long `plan` waits for a cluster to say its version before planning without it.
const ANSWER_SECONDS: u64 = 15;

impl Reach {
    pub async fn new(site: &Site, name: &str, kubeconfig: Result<PathBuf>, version: Option<&str>) -> Result<Reach> {
        let why = match kubeconfig {
            Err(e) => format!("{e:#}"),
            Ok(path) => match Cluster::connect(name, &path).await {
                Err(e) => format!("{e:#}"),
                Ok(cluster) => {
                    let answer = tokio::time::timeout(Duration::from_secs(ANSWER_SECONDS), cluster.version()).await;
                    match answer {
                        Ok(Ok(v)) => {
                            let version = v.trim_start_matches('v').to_string();
                            return Ok(Reach::Asked { cluster: Box::new(cluster), version });
                        }
                        Ok(Err(e)) => format!("{e:#}"),
                        Err(_) => format!("cluster {name} did not answer in {ANSWER_SECONDS} s"),
                    }
                }
            },
        };
        let version = match version {
            Some(v) => v.to_string(),
            None => declared_version(site, name).with_context(|| why.clone())?,
        };
        Ok(Reach::NotAsked { version, why })
    }

    /// The Kubernetes version charts are rendered and checked for.
    pub fn version(&self) -> &str {
        match self {
            Reach::Asked { version, .. } | Reach::NotAsked { version, .. } => version,
        }
    }

    pub async fn target(&self) -> Result<Target> {
        match self {
            Reach::Asked { cluster, version } => Target::asked(cluster, version).await,
            Reach::NotAsked { version, why } => Target::declared(version, why.clone()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SiteView {
    clusters: BTreeMap<String, SiteCluster>,
    provider: SiteProvider,
    check: SiteCheck,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SiteCluster {
    kubernetes_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SiteProvider {
    kubernetes_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SiteCheck {
    accepted: Vec<Accepted>,
}

/// The Kubernetes version the site file declares for a cluster: `clusters.<name>.kubernetes_version`,
/// else `provider.kubernetes_version`.
pub fn declared_version(site: &Site, cluster: &str) -> Result<String> {
    let view: SiteView = site.view()?;
    view.clusters
        .get(cluster)
        .and_then(|c| c.kubernetes_version.clone())
        .or(view.provider.kubernetes_version)
        .ok_or_else(|| {
            anyhow!(
                "{}: cluster {cluster} does not answer, and neither clusters.{cluster}.kubernetes_version nor \
                 provider.kubernetes_version says which Kubernetes it runs",
                site.path().display()
            )
        })
}

/// The problems a site accepts (`check.accepted` in the site file).
pub fn accepted(site: &Site) -> Result<Vec<Accepted>> {
    Ok(site.view::<SiteView>()?.check.accepted)
}

/// The object a `provides:` entry names: a built-in kind unless it gives its apiVersion, in the
/// step's namespace unless it names one. None for an entry that names a served kind.
fn provided(p: &Provided, step: &Step, scopes: &Apis) -> Result<Option<Id>> {
    let Some(name) = &p.name else { return Ok(None) };
    let group = match &p.api_version {
        Some(v) => apis::group_of(v).to_string(),
        None => scopes
            .group_of_kind(&p.kind)
            .ok_or_else(|| anyhow!("kind {} is not one kind of the cluster's APIs: give its apiVersion", p.kind))?,
    };
    let namespaced = scopes.namespaced(&group, &p.kind).unwrap_or(true);
    let step_ns = match &step.action {
        StepAction::Helm(h) => Some(&h.namespace),
        StepAction::Apply(a) => a.namespace.as_ref(),
        StepAction::ConfigMap(c) | StepAction::Secret(c) => Some(&c.namespace),
        _ => None,
    };
    let ns = match (namespaced, &p.namespace) {
        (false, _) => None,
        (true, Some(ns)) => Some(ns),
        (true, None) => Some(step_ns.ok_or_else(|| anyhow!("{} {name}: give its namespace", p.kind))?),
    };
    Ok(Some(Id::new(&group, &p.kind, ns.map(String::as_str), name)))
}

/// The kinds a step's `provides:` makes served: (apiVersion, kind, namespaced).
fn provided_kinds(step: &Step) -> Result<Vec<(&str, &str, bool)>> {
    let kinds = step.provides.iter().filter(|p| p.name.is_none());
    kinds
        .map(|p| {
            let api = p.api_version.as_deref().ok_or_else(|| {
                anyhow!("step {}: provides {} without a name is a served kind: give its apiVersion", step.id, p.kind)
            })?;
            Ok((api, p.kind.as_str(), p.namespaced.unwrap_or(true)))
        })
        .collect()
}

/// An object of a step and the namespace it lands in when it names none.
struct Placed<'a> {
    doc: &'a Value,
    namespace: Option<&'a str>,
    phase: Phase,
}

/// What the renderer made of a step, as the check reads it: every object it sends to the
/// cluster, what a release applies before itself, and the shapes of generated material.
fn placed<'a>(r: &'a Rendered<'_>) -> Vec<Placed<'a>> {
    let release_ns = r.step.helm().map(|h| h.namespace.as_str());
    let mut out = Vec::new();
    let namespace = match &r.action {
        Action::Objects { namespace, .. } => namespace.as_deref(),
        Action::Helm(h) => {
            out.extend(h.before.iter().map(|doc| Placed { doc, namespace: release_ns, phase: Phase::PreInstall }));
            release_ns
        }
        Action::Generate { shapes } => {
            out.extend(shapes.iter().map(|doc| Placed { doc, namespace: None, phase: Phase::Main }));
            None
        }
        Action::Http(_) | Action::Saml(_) | Action::Nothing => None,
    };
    out.extend(r.docs.iter().map(|doc| Placed {
        doc,
        namespace,
        phase: if crate::hooks::is_pre_install(doc) { Phase::PreInstall } else { Phase::Main },
    }));
    out
}

fn text<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(doc, |v, k| v.get(*k)).and_then(Value::as_str)
}

/// Where a rendered object lands: (id, namespaced). A kind no API knows is taken as namespaced
/// when it names a namespace or is given one.
fn place(p: &Placed<'_>, scopes: &Apis) -> Option<Id> {
    let api_version = text(p.doc, &["apiVersion"])?;
    let kind = text(p.doc, &["kind"])?;
    let name = text(p.doc, &["metadata", "name"])?;
    let group = apis::group_of(api_version);
    let written = text(p.doc, &["metadata", "namespace"]);
    let namespaced = scopes.namespaced(group, kind).unwrap_or(written.is_some() || p.namespace.is_some());
    let ns = namespaced.then(|| written.or(p.namespace).unwrap_or("default"));
    Some(Id::new(group, kind, ns, name))
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

fn copy_ids(step: &Step) -> impl Iterator<Item = (usize, Id, Id)> + '_ {
    step.copy.iter().enumerate().map(|(i, c)| {
        let kind = match c.kind {
            CopyKind::ConfigMap => "ConfigMap",
            CopyKind::Secret => "Secret",
        };
        let to = Id::new("", kind, Some(&c.to), c.rename.as_deref().unwrap_or(&c.name));
        (i, Id::new("", kind, Some(&c.from), &c.name), to)
    })
}

/// Checks one cluster's rendered steps (in the order they run) against `target`.
pub async fn run(cluster: &str, rendered: &[Rendered<'_>], target: &Target, accepted: &[Accepted]) -> Result<Report> {
    let mut scopes = target.apis.clone();
    let running: Vec<(usize, &Rendered<'_>)> =
        rendered.iter().enumerate().filter(|(_, r)| r.skipped.is_none()).collect();
    let steps: Vec<Vec<Placed<'_>>> = rendered.iter().map(placed).collect();
    for (i, r) in &running {
        for p in &steps[*i] {
            scopes.add_crd(p.doc)?;
        }
        for (api, kind, namespaced) in provided_kinds(r.step)? {
            scopes.add_kind(api, kind, namespaced);
        }
    }
    let ids = rendered.iter().map(|r| r.step.id.clone()).collect();
    let mut checker = Checker { cluster, ids, target, inventory: Inventory::default(), problems: Vec::new() };
    for (i, r) in &running {
        checker.define(*i, r, &steps[*i], &scopes).await?;
    }
    let entries = table::entries()?;
    let mut apis = target.apis.clone();
    for (i, r) in &running {
        for p in &steps[*i] {
            apis.add_crd(p.doc)?;
        }
        checker.check_step(*i, r, &steps[*i], &apis, &scopes, &entries).await?;
        // What a step's Job makes served is there for the steps after it.
        for (api, kind, namespaced) in provided_kinds(r.step)? {
            apis.add_kind(api, kind, namespaced);
        }
    }
    Ok(Report::new(cluster, checker.problems, accepted))
}

struct Checker<'t> {
    cluster: &'t str,
    /// Step ids by position.
    ids: Vec<String>,
    target: &'t Target,
    inventory: Inventory,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// Adds what step `i` makes to the inventory.
    async fn define(&mut self, i: usize, r: &Rendered<'_>, placed: &[Placed<'_>], scopes: &Apis) -> Result<()> {
        for (n, from, to) in copy_ids(r.step) {
            let wanted = &r.step.copy[n].keys;
            let keys =
                if wanted.is_empty() { self.keys_of(&from, i).await? } else { Some(wanted.keys().cloned().collect()) };
            self.inventory.add(to, Definition { step: i, phase: Phase::Copy, keys, default_class: false });
        }
        let mut seen = BTreeSet::new();
        for p in placed {
            let Some(id) = place(p, scopes) else { continue };
            let keys = matches!(id.kind.as_str(), "ConfigMap" | "Secret").then(|| data_keys(p.doc));
            let default_class = live::default_annotation(&id.kind)
                .is_some_and(|a| text(p.doc, &["metadata", "annotations", a]) == Some("true"));
            if let Some((_, template_labels)) = refs::pod_template(p.doc, &id.kind) {
                self.inventory.add_template(id.namespace.as_deref().unwrap_or_default(), labels(template_labels));
            }
            seen.insert((id.kind.clone(), id.namespace.clone(), id.name.clone()));
            self.inventory.add(id, Definition { step: i, phase: p.phase, keys, default_class });
        }
        // Objects the renderer lists without their text (made at apply time): existence only.
        for o in &r.objects {
            let ObjectRef { kind, namespace, name } = o;
            if !seen.contains(&(kind.clone(), namespace.clone(), name.clone())) {
                let group = scopes.group_of_kind(kind).unwrap_or_default();
                let def = Definition { step: i, phase: Phase::Main, keys: None, default_class: false };
                self.inventory.add(Id::new(&group, kind, namespace.as_deref(), name), def);
            }
        }
        for (n, p) in r.step.provides.iter().enumerate() {
            let Some(id) = provided(p, r.step, scopes).with_context(|| format!("step {}: provides[{n}]", r.step.id))?
            else {
                continue;
            };
            let keys = (!p.keys.is_empty()).then(|| p.keys.iter().cloned().collect());
            self.inventory.add(id, Definition { step: i, phase: Phase::Main, keys, default_class: false });
        }
        Ok(())
    }

    /// The keys of `id` as seen from step `i` before its action: from the plan, else the cluster.
    async fn keys_of(&self, id: &Id, i: usize) -> Result<Option<BTreeSet<String>>> {
        if let Some(d) = self.inventory.visible(id, i, Phase::Copy) {
            return Ok(d.keys.clone());
        }
        Ok(match &self.target.live {
            Some(live) => live.get(id).await?.map(|f| f.keys),
            None => None,
        })
    }

    fn problem(&mut self, r: &Rendered<'_>, object: String, field: &str, message: String, severity: Severity) {
        self.problems.push(Problem {
            cluster: self.cluster.to_string(),
            step: r.step.id.clone(),
            release: r.step.helm().map(|h| h.release.clone()).filter(|rel| *rel != r.step.id),
            object,
            field: field.to_string(),
            message,
            severity,
            evidence: None,
        });
    }

    async fn check_step(
        &mut self,
        i: usize,
        r: &Rendered<'_>,
        placed: &[Placed<'_>],
        apis: &Apis,
        scopes: &Apis,
        entries: &[table::Entry],
    ) -> Result<()> {
        if let Action::Helm(h) = &r.action {
            let chart = chart::ChartMeta::read(&h.chart)?;
            for (field, range) in chart.ranges() {
                let version = kube_version::parse_version(&self.target.version)?;
                if !kube_version::satisfies(range, &version).with_context(|| format!("chart {}", chart.name))? {
                    let object = format!("chart {} {}", chart.name, chart.version);
                    let message = format!("{range:?} excludes {}", apis.target);
                    self.problem(r, object, &field, message, Severity::Error);
                }
            }
        }
        for (n, from, to) in copy_ids(r.step) {
            let field = format!("copy[{n}]");
            let shown = format!("\"{}/{}\"", from.namespace.as_deref().unwrap_or_default(), from.name);
            for key in r.step.copy[n].keys.values() {
                self.resolve(r, i, Phase::Copy, &to.to_string(), &format!("{field}.keys"), &shown, &from, Some(key))
                    .await?;
            }
            if r.step.copy[n].keys.is_empty() {
                self.resolve(r, i, Phase::Copy, &to.to_string(), &field, &shown, &from, None).await?;
            }
        }
        let mut namespaces = BTreeSet::new();
        for p in placed {
            let Some(id) = place(p, scopes) else { continue };
            let api_version = text(p.doc, &["apiVersion"]).unwrap_or_default();
            if apis.served(api_version, &id.kind).is_none() {
                let others = apis.versions_of(&id.group, &id.kind);
                let served = if others.is_empty() {
                    "no version of it".to_string()
                } else {
                    others.into_iter().collect::<Vec<_>>().join(", ")
                };
                let message =
                    format!("{api_version:?} is not served by {} (it serves {}: {served})", apis.target, id.kind);
                self.problem(r, id.to_string(), "apiVersion", message, Severity::Error);
                continue;
            }
            if let Some(ns) = id.namespace.clone().filter(|ns| namespaces.insert(ns.clone())) {
                let namespace = Id::new("", "Namespace", None, &ns);
                self.resolve(
                    r,
                    i,
                    p.phase,
                    &id.to_string(),
                    "metadata.namespace",
                    &format!("{ns:?}"),
                    &namespace,
                    None,
                )
                .await?;
            }
            for reference in refs::of(p.doc, &id.kind, id.namespace.as_deref()) {
                self.reference(r, i, p.phase, &id, &reference).await?;
            }
            if let Some((spec, _)) = refs::pod_template(p.doc, &id.kind) {
                self.runtime_needs(r, &id, spec, apis, entries);
            }
        }
        Ok(())
    }

    /// Containers running an image of `manifests/runtime-apis.yaml` on a version without the API
    /// it needs. Images are matched by the names the charts wrote, before they were pointed at the
    /// site registry.
    fn runtime_needs(&mut self, r: &Rendered<'_>, id: &Id, spec: &Value, apis: &Apis, entries: &[table::Entry]) {
        let original: BTreeMap<&str, &str> = r.images.iter().map(|(from, to)| (to.as_str(), from.as_str())).collect();
        for (list, n, c) in kubemanifests::pods::containers(spec) {
            let Some(image) = c.get("image").and_then(Value::as_str) else { continue };
            let image = original.get(image).copied().unwrap_or(image);
            for e in entries.iter().filter(|e| e.matches(image)) {
                if apis.served(&e.needs.api_version, &e.needs.kind).is_some() {
                    continue;
                }
                let message = format!(
                    "{image:?} needs {} {}, which {} does not serve: {}",
                    e.needs.api_version, e.needs.kind, apis.target, e.why
                );
                self.problem(r, id.to_string(), &format!("{list}[{n}].image"), message, Severity::Error);
                if let Some(last) = self.problems.last_mut() {
                    last.evidence = Some(e.evidence.clone());
                }
            }
        }
    }

    async fn reference(&mut self, r: &Rendered<'_>, i: usize, phase: Phase, from: &Id, reference: &Ref) -> Result<()> {
        let severity = if reference.warning { Severity::Warning } else { Severity::Error };
        let object = from.to_string();
        match &reference.need {
            Need::Object { id, key } => {
                let shown = match (&id.namespace, &from.namespace) {
                    (Some(a), b) if b.as_ref() != Some(a) => format!("\"{a}/{}\"", id.name),
                    _ if reference.field == "roleRef" => format!("{} \"{}\"", id.kind, id.name),
                    _ => format!("\"{}\"", id.name),
                };
                let problems = self.problems.len();
                self.resolve(r, i, phase, &object, &reference.field, &shown, id, key.as_deref()).await?;
                for p in &mut self.problems[problems..] {
                    p.severity = severity;
                }
            }
            Need::DefaultClass { group, kind } => {
                let in_plan = self.inventory.default_class(group, kind, i, phase);
                let live = match &self.target.live {
                    Some(live) if !in_plan => live.has_default(group, kind).await?,
                    _ => false,
                };
                if !in_plan && !live {
                    let message =
                        format!("names no {kind}, and neither the plan nor {} has a default one", self.cluster_words());
                    self.problem(r, object, &reference.field, message, severity);
                }
            }
            Need::Pods { namespace, selector } => {
                let in_plan = self.inventory.pods_match(namespace, selector);
                let live = match &self.target.live {
                    Some(live) if !in_plan => live.pods_match(namespace, selector).await?,
                    _ => false,
                };
                if !in_plan && !live {
                    let shown: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let message = format!(
                        "{} matches no pod template of the plan and no pod in {}",
                        shown.join(","),
                        self.cluster_words()
                    );
                    self.problem(r, object, &reference.field, message, severity);
                }
            }
        }
        Ok(())
    }

    fn cluster_words(&self) -> &'static str {
        if self.target.live.is_some() {
            "the cluster"
        } else {
            "the cluster (not asked)"
        }
    }

    /// Whether `id` (and its `key`) exists for a reference made at step `i` in `phase`; a problem
    /// naming `object`, `field` and `shown` when not.
    #[allow(clippy::too_many_arguments)]
    async fn resolve(
        &mut self,
        r: &Rendered<'_>,
        i: usize,
        phase: Phase,
        object: &str,
        field: &str,
        shown: &str,
        id: &Id,
        key: Option<&str>,
    ) -> Result<()> {
        if refs::built_in(id) {
            return Ok(());
        }
        let planned = self.inventory.visible(id, i, phase).map(|d| d.keys.clone());
        let has = |keys: &Option<BTreeSet<String>>| key.is_none_or(|k| keys.as_ref().is_none_or(|ks| ks.contains(k)));
        if planned.as_ref().is_some_and(has) {
            return Ok(());
        }
        let live = match &self.target.live {
            Some(live) => live.get(id).await?.map(|f| Some(f.keys)),
            None => None,
        };
        if live.as_ref().is_some_and(has) {
            return Ok(());
        }
        let message = match (planned, live) {
            (None, None) => match self.inventory.later(id, i, phase) {
                Some(later) if later == i && phase == Phase::Copy => {
                    format!("{shown} is created by this step only after its copies are made")
                }
                Some(later) if later == i => {
                    format!("{shown} is created by this release only after its pre-install hooks")
                }
                Some(later) => {
                    format!("{shown} is created only by step {}, which runs after this one", self.ids[later])
                }
                None if self.target.live.is_some() => {
                    format!("{shown} is created by no step and is not in the cluster")
                }
                None => format!("{shown} is created by no step (the cluster was not asked)"),
            },
            (planned, live) => {
                let mut keys: BTreeSet<String> = BTreeSet::new();
                keys.extend(planned.flatten().into_iter().flatten());
                keys.extend(live.flatten().into_iter().flatten());
                let key = key.unwrap_or_default();
                let listed = keys.into_iter().collect::<Vec<_>>().join(", ");
                format!("{shown} has no key {key:?} (it has: {listed})")
            }
        };
        self.problem(r, object.to_string(), field, message, Severity::Error);
        Ok(())
    }
}
