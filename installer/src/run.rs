//! The three commands: `plan` renders and leak-checks, `apply` does it and acts, `status` reads
//! what the clusters record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::bundled_tools;
use crate::check;
use crate::cluster::Cluster;
use crate::cluster_values::{self, Values};
use crate::helm::{Helm, ReleaseInput};
use crate::hooks::{self, Operation, Phase};
use crate::manifests_dir;
use crate::options::{ApplyOptions, PlanOptions, Render, StatusOptions, Target};
use crate::plan::{self, Carried, Plan, StepAction};
use crate::postrender;
use crate::registry_client::RegistryClient;
use crate::render::{Action, ClusterContext, HelmAction, Rendered, Renderer};
use crate::site::Site;
use crate::state::{self, Live, Lock, State, StepState};
use crate::wait;

#[derive(Deserialize)]
struct SiteClusters {
    clusters: BTreeMap<String, SiteCluster>,
}

#[derive(Deserialize)]
struct SiteCluster {
    kubeconfig: String,
}

pub(crate) struct Loaded {
    pub(crate) plan: Plan,
    pub(crate) plan_dir: PathBuf,
    pub(crate) site: Site,
    pub(crate) clusters: Vec<String>,
}

pub(crate) fn load(t: &Target) -> Result<Loaded> {
    let plan = Plan::load(&t.plan)?;
    let site = Site::load(&t.site)?;
    let clusters = match &t.cluster {
        Some(c) if plan.clusters.contains_key(c) => vec![c.clone()],
        Some(c) => bail!(
            "the plan has no cluster {c} (it has {})",
            plan.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => plan.clusters.keys().cloned().collect(),
    };
    let plan_dir = t.plan.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(Loaded { plan, plan_dir, site, clusters })
}

pub(crate) fn kubeconfig(site: &Site, cluster: &str) -> Result<PathBuf> {
    let view: SiteClusters = site.view()?;
    let c = view
        .clusters
        .get(cluster)
        .ok_or_else(|| anyhow!("{}: clusters.{cluster}.kubeconfig is missing", site.path().display()))?;
    Ok(site.resolve_path(&c.kubeconfig))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

pub(crate) struct Tools {
    pub(crate) registry: RegistryClient,
    /// Fetched once per run, whatever the number of clusters.
    helm: PathBuf,
    /// Only when a step installs Istio.
    istioctl: Option<PathBuf>,
    work: tempfile::TempDir,
}

impl Tools {
    pub(crate) async fn new(l: &Loaded, r: &Render) -> Result<Tools> {
        let registry = RegistryClient::new(&r.registry, r.ca_file.as_deref())?;
        registry.ping().await?;
        let carried = Carried::from_spec(&l.plan_dir.join(&l.plan.bundle))?;
        let bundled = |name: &'static str| {
            let (registry, carried) = (&registry, &carried);
            async move { bundled_tools::fetch(registry, carried, name, &bundled_tools::default_cache()).await }
        };
        let helm = match &r.helm {
            Some(p) => p.clone(),
            None => bundled("helm").await.context(
                "no helm to render the charts with: give one with --helm FILE (or AIRGAP_HELM=FILE), or carry \
                 helm in the bundle under files:",
            )?,
        };
        let istio_step = |s: &plan::Step| matches!(s.action, StepAction::Istio(_));
        let needs_istio = l.clusters.iter().any(|c| l.plan.clusters[c].steps.iter().any(istio_step));
        let istioctl = match &r.istioctl {
            Some(p) => Some(p.clone()),
            None if needs_istio => Some(bundled("istioctl").await?),
            None => None,
        };
        Ok(Tools { registry, helm, istioctl, work: tempfile::Builder::new().prefix("airgap-install-").tempdir()? })
    }

    pub(crate) fn renderer<'a>(&'a self, l: &'a Loaded, r: &Render, kube_version: &str) -> Result<Renderer<'a>> {
        let address = match l.site.lookup("registry.address") {
            Ok(a) if !a.is_empty() => a,
            _ => self.registry.authority().to_string(),
        };
        let post = postrender::Config {
            registry_url: r.registry.clone(),
            ca_file: r.ca_file.clone(),
            registry_address: address,
            mode: r.images,
            env: BTreeMap::new(),
            site_ca: false,
            files: None,
            request_scale: l.site.request_scale()?,
            probe_delay_scale: l.site.probe_delay_scale()?,
        };
        let helm = Helm { binary: self.helm.clone(), home: self.work.path().join("helm") };
        Ok(Renderer {
            plan_dir: &l.plan_dir,
            site: &l.site,
            registry: &self.registry,
            post,
            helm: Some(helm),
            istioctl: self.istioctl.clone(),
            work: self.work.path().to_path_buf(),
            kube_version: Some(kube_version.to_string()),
            api_versions: Vec::new(),
        })
    }
}

pub(crate) async fn render_cluster<'p>(
    renderer: &Renderer<'_>,
    cluster: &'p plan::Cluster,
) -> Result<Vec<Rendered<'p>>> {
    let ctx = renderer.context(cluster)?;
    let mut out = Vec::new();
    for step in cluster.order()? {
        out.push(renderer.render(step, &ctx).await.with_context(|| format!("step {}", step.id))?);
    }
    Ok(out)
}

fn step_json(r: &Rendered<'_>) -> serde_json::Value {
    json!({
        "id": r.step.id,
        "summary": r.summary,
        "skipped": r.skipped,
        "objects": r.objects.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "images": r.images,
        "waits": r.step.wait.iter().map(|w| format!("{:?} {}/{}", w.kind, w.namespace, w.name)).collect::<Vec<_>>(),
        "hash": r.hash,
    })
}

fn print_step(n: usize, r: &Rendered<'_>) {
    let skip = r.skipped.as_ref().map(|s| format!(" (skipped: {s})")).unwrap_or_default();
    println!("  {n:>3}. {:<28} {}{skip}", r.step.id, r.summary);
    for o in &r.objects {
        println!("         creates {o}");
    }
    for (from, to) in &r.images {
        if from == to {
            println!("         image   {from}");
        } else {
            println!("         image   {from} -> {to}");
        }
    }
    for w in &r.step.wait {
        println!("         waits   {:?} {}/{} ({} s)", w.kind, w.namespace, w.name, w.timeout);
    }
}

pub fn plan(a: &PlanOptions) -> Result<()> {
    let l = load(&a.target)?;
    let accepted = check::accepted(&l.site)?;
    let manifests = a.manifests.as_deref().map(manifests_dir::prepare).transpose()?;
    runtime()?.block_on(async {
        let tools = Tools::new(&l, &a.render).await?;
        let mut all = Vec::new();
        let mut errors = 0;
        for name in &l.clusters {
            let kubeconfig = kubeconfig(&l.site, name);
            let reach = check::Reach::new(&l.site, name, kubeconfig, a.render.kube_version.as_deref()).await?;
            let target = reach.target().await.with_context(|| format!("cluster {name}"))?;
            let mut renderer = tools.renderer(&l, &a.render, reach.version())?;
            renderer.api_versions = target.apis.helm_api_versions();
            let rendered =
                render_cluster(&renderer, &l.plan.clusters[name]).await.with_context(|| format!("cluster {name}"))?;
            if let Some(out) = &manifests {
                manifests_dir::write_cluster(out, name, &rendered)?;
            }
            let report = if a.render.no_check {
                None
            } else {
                Some((check::run(name, &rendered, &target, &accepted).await?, &target.not_asked))
            };
            errors += report.as_ref().map_or(0, |(r, _)| r.errors());
            if a.target.json {
                let mut doc = json!({"cluster": name, "steps": rendered.iter().map(step_json).collect::<Vec<_>>()});
                if let Some((report, not_asked)) = &report {
                    doc["check"] = json!({"events": report.events(), "not_asked": not_asked});
                }
                all.push(doc);
            } else {
                println!("cluster {name}: {} steps, leak check passed", rendered.len());
                for (i, r) in rendered.iter().enumerate() {
                    print_step(i + 1, r);
                }
                if let Some((report, not_asked)) = &report {
                    if let Some(why) = not_asked {
                        println!(
                            "cluster {name} was not asked ({why}): checked as an empty cluster of Kubernetes {}",
                            reach.version()
                        );
                    }
                    report.lines().iter().for_each(|l| println!("{l}"));
                }
            }
        }
        if a.target.json {
            println!("{}", serde_json::to_string_pretty(&json!({"clusters": all}))?);
        }
        // Kept whatever the check found: the files show what it found it in.
        if let Some(out) = manifests {
            out.keep();
        }
        if errors > 0 {
            bail!("the check found {errors} problem(s): see above");
        }
        Ok(())
    })
}

pub fn status(a: &StatusOptions) -> Result<()> {
    let l = load(&a.target)?;
    runtime()?.block_on(async {
        let mut all = Vec::new();
        for name in &l.clusters {
            let cluster = Cluster::connect(name, &kubeconfig(&l.site, name)?).await?;
            let recorded = State::new(&cluster.client, name).read().await?;
            let mut steps: Vec<(String, Option<StepState>, Live)> = Vec::new();
            for s in l.plan.clusters[name].order()? {
                let live = state::live_health(&cluster.client, s).await?;
                steps.push((s.id.clone(), recorded.get(&s.id).cloned(), live));
            }
            if a.target.json {
                let steps: Vec<_> =
                    steps.iter().map(|(id, s, live)| json!({"id": id, "state": s, "live": live})).collect();
                all.push(json!({"cluster": name, "steps": steps}));
                continue;
            }
            println!("cluster {name}");
            for (id, s, live) in &steps {
                match s {
                    Some(s) => println!("  {id:<28} {:<8} {} {}  live: {live}", s.status, s.at, s.message),
                    None => println!("  {id:<28} pending  live: {live}"),
                }
            }
        }
        if a.target.json {
            println!("{}", serde_json::to_string_pretty(&json!({"clusters": all}))?);
        }
        Ok(())
    })
}

pub fn apply(a: &ApplyOptions) -> Result<()> {
    let l = load(&a.target)?;
    runtime()?.block_on(async {
        let tools = Tools::new(&l, &a.render).await?;
        for name in &l.clusters {
            apply_cluster(a, &l, &tools, name).await.with_context(|| format!("cluster {name}"))?;
        }
        Ok(())
    })
}

/// The renderer of a cluster that answers, as apply renders for it: at the cluster's version, with
/// the API versions it serves (what charts see as `.Capabilities`), and what it was asked.
pub(crate) async fn renderer_for<'a>(
    tools: &'a Tools,
    l: &'a Loaded,
    r: &Render,
    cluster: &Cluster,
    version: &str,
) -> Result<(Renderer<'a>, check::Target)> {
    let version = version.trim_start_matches('v');
    let target = check::Target::asked(cluster, version).await?;
    let mut renderer = tools.renderer(l, r, version)?;
    renderer.api_versions = target.apis.helm_api_versions();
    Ok((renderer, target))
}

async fn apply_cluster(a: &ApplyOptions, l: &Loaded, tools: &Tools, name: &str) -> Result<()> {
    let cluster = Cluster::connect(name, &kubeconfig(&l.site, name)?).await?;
    let version = crate::preflight::run(&cluster, &l.site, &tools.registry).await?;
    let (renderer, target) = renderer_for(tools, l, &a.render, &cluster, &version).await?;
    let plan_cluster = &l.plan.clusters[name];
    // Every step is rendered and leak-checked before the cluster is touched.
    let rendered = render_cluster(&renderer, plan_cluster).await?;
    if !a.render.no_check {
        let report = check::run(name, &rendered, &target, &check::accepted(&l.site)?).await?;
        report.lines().iter().for_each(|l| eprintln!("{l}"));
        if a.target.json {
            report.events().iter().for_each(|e| println!("{e}"));
        }
        if report.errors() > 0 {
            bail!("the check found {} problem(s) in cluster {name}: nothing was applied", report.errors());
        }
    }
    let ids: Vec<&str> = rendered.iter().map(|r| r.step.id.as_str()).collect();
    for wanted in [&a.from, &a.to, &a.only].into_iter().flatten() {
        if !ids.contains(&wanted.as_str()) {
            bail!("--from/--to/--only {wanted}: no such step in cluster {name}");
        }
    }
    State::ensure_namespace(&cluster.client).await?;
    let lock = Lock::acquire(&cluster.client, name).await?;
    let ctx = renderer.context(plan_cluster)?;
    let result = apply_steps(a, &cluster, &renderer, &ctx, &rendered).await;
    lock.release().await?;
    result
}

async fn apply_steps(
    a: &ApplyOptions,
    cluster: &Cluster,
    renderer: &Renderer<'_>,
    ctx: &ClusterContext,
    rendered: &[Rendered<'_>],
) -> Result<()> {
    let state = State::new(&cluster.client, &cluster.name);
    let recorded = state.read().await?;
    let position = |step: &Option<String>| step.as_ref().and_then(|s| rendered.iter().position(|r| &r.step.id == s));
    let from = position(&a.from).unwrap_or(0);
    let to = position(&a.to).unwrap_or(usize::MAX);
    if from > to {
        bail!(
            "--from {} comes after --to {} in cluster {}",
            a.from.as_deref().unwrap_or_default(),
            a.to.as_deref().unwrap_or_default(),
            cluster.name
        );
    }
    let total = rendered.len();
    for (i, r) in rendered.iter().enumerate() {
        let id = &r.step.id;
        let progress = Progress { json: a.target.json, cluster: &cluster.name, position: i + 1, total, step: id };
        if i < from || i > to || a.only.as_ref().is_some_and(|o| o != id) {
            continue;
        }
        if let Some(why) = &r.skipped {
            progress.say("skipped", &format!("skipped ({why})"), json!({"reason": why}));
            continue;
        }
        let with_values = with_cluster_values(cluster, renderer, ctx, r).await.with_context(|| format!("step {id}"))?;
        let r = with_values.as_ref().unwrap_or(r);
        if recorded.get(id).is_some_and(|s| s.status == "done" && s.hash == r.hash) {
            progress.say("unchanged", "unchanged", json!({}));
            continue;
        }
        progress.say("running", &format!("{} …", r.summary), json!({"summary": r.summary}));
        let started = Instant::now();
        state.record(id, "running", &r.hash, "").await?;
        match apply_step(cluster, renderer, r).await {
            Ok(()) => {
                state.record(id, "done", &r.hash, "").await?;
                let took = started.elapsed();
                progress.say("done", &format!("done in {took:.0?}"), json!({"seconds": took.as_secs_f64()}));
            }
            Err(e) => {
                let message = format!("{e:#}");
                state.record(id, "failed", &r.hash, &message).await?;
                let took = started.elapsed();
                let fields = json!({"seconds": took.as_secs_f64(), "error": message});
                progress.say("failed", &format!("failed after {took:.0?}"), fields);
                return Err(e.context(format!("step {id}")));
            }
        }
    }
    Ok(())
}

/// The step rendered again with the values it takes from the cluster, read now that the steps
/// before it ran; None when it takes none.
async fn with_cluster_values<'p>(
    cluster: &Cluster,
    renderer: &Renderer<'_>,
    ctx: &ClusterContext,
    r: &Rendered<'p>,
) -> Result<Option<Rendered<'p>>> {
    let refs = cluster_values::of_step(r.step)?;
    if refs.is_empty() {
        return Ok(None);
    }
    let values = Values::read(cluster, &refs).await?;
    Ok(Some(renderer.render_with(r.step, ctx, &values).await?))
}

/// Where one step of `apply` stands: a line on stderr for people and, with `--json`, a JSON
/// line on stdout for machines (`{"cluster", "step", "position", "total", "status", ...}`).
struct Progress<'a> {
    json: bool,
    cluster: &'a str,
    position: usize,
    total: usize,
    step: &'a str,
}

impl Progress<'_> {
    fn say(&self, status: &str, text: &str, fields: serde_json::Value) {
        let Progress { json, cluster, position, total, step } = self;
        eprintln!("[{position}/{total}] {cluster}: {step} {text}");
        if *json {
            let mut line =
                json!({"cluster": cluster, "step": step, "position": position, "total": total, "status": status});
            if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), fields) {
                line.extend(extra);
            }
            println!("{line}");
        }
    }
}

async fn apply_step(cluster: &Cluster, renderer: &Renderer<'_>, r: &Rendered<'_>) -> Result<()> {
    for c in &r.step.copy {
        cluster.copy(c).await?;
    }
    match &r.action {
        Action::Objects { docs, namespace } => cluster.apply(docs, namespace.as_deref()).await?,
        Action::Helm(action) => apply_release(cluster, renderer, r, action).await?,
        Action::Generate { .. } => {
            let StepAction::Generate(g) = &r.step.action else {
                unreachable!("a generate action comes from a generate step")
            };
            let made = g.ensure(cluster).await?;
            eprintln!("{}: {}", r.step.id, if made { "generated" } else { "kept what the cluster holds" });
        }
        Action::Http(prepared) => crate::http_step::apply(cluster, renderer, &r.step.id, prepared).await?,
        Action::Saml(prepared) => prepared.apply(cluster, &r.docs).await?,
        Action::Nothing => {}
    }
    // A chart that a later step installs may check for these kinds (rancher-logging's
    // validate-install-crd): they are served only once established.
    let crds: Vec<&str> =
        r.objects.iter().filter(|o| o.kind == "CustomResourceDefinition").map(|o| o.name.as_str()).collect();
    cluster.wait_established(&crds).await?;
    for w in &r.step.wait {
        wait::wait(&cluster.client, w).await?;
    }
    Ok(())
}

/// One helm release: a half-done one undone, a `reinstall` one uninstalled first, the site CA
/// applied, then the chart installed or upgraded. Helm runs no hook: the installer runs them,
/// post-rendered, around each helm command (see `hooks`).
async fn apply_release(
    cluster: &Cluster,
    renderer: &Renderer<'_>,
    r: &Rendered<'_>,
    action: &HelmAction,
) -> Result<()> {
    let HelmAction { chart, values, set, set_files, post, hooks, before } = action;
    let h = r.step.helm().expect("a helm action comes from a helm step");
    let helm = renderer.helm.as_ref().ok_or_else(|| anyhow!("no helm"))?;
    let kc = &cluster.kubeconfig;
    helm.recover(&h.release, &h.namespace, kc)?;
    // A step that waits long for its workloads gives its hooks as long.
    let longest_wait = r.step.wait.iter().map(|w| w.timeout).max();
    let at = hooks::Target { namespace: &h.namespace, timeout: longest_wait.unwrap_or(hooks::DEFAULT_TIMEOUT_SECONDS) };
    if h.reinstall && helm.status(&h.release, &h.namespace, kc)?.is_some() {
        // The delete hooks are those helm keeps with the installed release.
        let kept = helm.release_hooks(&h.release, &h.namespace, kc)?;
        let kept = hooks::hooks(postrender::post_render(&kept, post, renderer.registry).await?.docs);
        hooks::run(cluster, &kept, Phase::Pre, Operation::Uninstall, &at).await?;
        helm.uninstall(&h.release, &h.namespace, kc)?;
        hooks::run(cluster, &kept, Phase::Post, Operation::Uninstall, &at).await?;
    }
    let config = renderer.work.join(format!("post-render-{}.json", r.step.id));
    postrender::write_config(post, &config)?;
    cluster.apply(before, None).await?;
    let input = ReleaseInput { release: &h.release, namespace: &h.namespace, chart, values, set, set_files };
    let upgraded;
    let (operation, hooks) = if helm.status(&h.release, &h.namespace, kc)?.is_some() {
        // Rendered again: a chart may render other hooks for an upgrade.
        upgraded = hooks::hooks(renderer.template(&input, post, Operation::Upgrade).await?.docs);
        (Operation::Upgrade, &upgraded)
    } else {
        (Operation::Install, hooks)
    };
    hooks::run(cluster, hooks, Phase::Pre, operation, &at).await?;
    helm.upgrade_install(&input, kc, &config)?;
    hooks::run(cluster, hooks, Phase::Post, operation, &at).await?;
    Ok(())
}
