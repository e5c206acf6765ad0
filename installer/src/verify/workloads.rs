//! The plan's workloads as they run now: each step's recorded state; Deployments, StatefulSets and
//! DaemonSets ready at the size the plan renders; their pods free of crash loops and of restarts
//! since the step was installed (with the container's last termination); Jobs complete; claims
//! Bound; Services with a selector backed by ready endpoints; webhook configurations pointing at
//! Services that have them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::admissionregistration::v1::WebhookClientConfig;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{Client, ResourceExt};

use super::check::Checks;
use super::live::{find, show_labels, Snapshot};
use super::objects::Object;
use crate::render::Rendered;
use crate::state::StepState;
use crate::wait::{self, Readiness};

/// When each step was installed: restarts before it belong to the install itself.
pub type Installed = BTreeMap<String, SystemTime>;

/// One check per step: what the cluster records of it against what the plan renders now.
pub fn steps(c: &mut Checks, rendered: &[Rendered<'_>], recorded: &BTreeMap<String, StepState>) -> Installed {
    let mut installed = Installed::new();
    for r in rendered {
        let id = &r.step.id;
        c.at(Some(id));
        let subject = format!("step {id}");
        if let Some(why) = &r.skipped {
            c.skipped("step", subject, why.clone());
            continue;
        }
        match recorded.get(id) {
            None => c.failed("step", subject, "never applied: run install apply"),
            Some(s) if s.status == "done" && s.hash == r.hash => {
                if let Ok(at) = humantime::parse_rfc3339_weak(&s.at) {
                    installed.insert(id.clone(), at);
                }
                c.ok("step", subject, format!("done at {}", s.at));
            }
            Some(s) if s.status == "done" => c.failed(
                "step",
                subject,
                format!("done at {}, but the plan renders it differently now: run install apply", s.at),
            ),
            Some(s) if s.status == "failed" => c.failed("step", subject, format!("failed at {}: {}", s.at, s.message)),
            Some(s) => c.failed(
                "step",
                subject,
                format!("{} since {}: an installer is at work or was stopped; run install apply", s.status, s.at),
            ),
        }
    }
    c.at(None);
    installed
}

/// Every workload, its pods, Job, claim, Service and webhook configuration of the plan.
pub async fn workloads(
    c: &mut Checks,
    client: &Client,
    objects: &[Object<'_>],
    live: &Snapshot,
    installed: &Installed,
) {
    for o in objects {
        c.at(Some(o.step));
        let since = installed.get(o.step).copied();
        match o.kind {
            "Deployment" | "StatefulSet" | "DaemonSet" => {
                workload(c, client, o, live, since).await;
                for name in statefulset_claims(o) {
                    claim(c, &o.namespace, &name, live);
                }
            }
            "Job" => job(c, o, live, since),
            "PersistentVolumeClaim" => claim(c, &o.namespace, o.name, live),
            "Service" => service(c, o, live),
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => webhooks(c, o, live),
            _ => {}
        }
    }
    c.at(None);
}

/// Ready and at the size the plan gives it, then its pods.
async fn workload(c: &mut Checks, client: &Client, o: &Object<'_>, live: &Snapshot, since: Option<SystemTime>) {
    let (ns, name) = (o.namespace.as_str(), o.name);
    let found = match o.kind {
        "Deployment" => find(&live.deployments, ns, name).map(|d| (wait::deployment_ready(d), sizes_deployment(d))),
        "StatefulSet" => find(&live.statefulsets, ns, name).map(|s| (wait::statefulset_ready(s), sizes_statefulset(s))),
        _ => find(&live.daemonsets, ns, name).map(|d| (wait::daemonset_ready(d), sizes_daemonset(d))),
    };
    let Some((readiness, (want, ready, selector))) = found else {
        c.failed("workload", o.id(), "does not exist in the cluster");
        return;
    };
    let rendered = o.field(&["spec", "replicas"]).and_then(|r| r.as_i64());
    let planned = if o.kind == "DaemonSet" { None } else { Some(rendered.unwrap_or(1)) };
    match (readiness, planned) {
        (_, Some(planned)) if want < planned => c.failed(
            "workload",
            o.id(),
            format!("scaled to {want} replica(s); the plan renders {planned} ({ready} ready)"),
        ),
        (Readiness::Ready, _) => c.ok("workload", o.id(), format!("{ready} of {want} ready")),
        (Readiness::Failed(why), _) => c.failed("workload", o.id(), why),
        (Readiness::NotYet, _) => {
            let why = wait::diagnose(client, ns, name).await;
            c.failed("workload", o.id(), format!("{ready} of {want} ready: {why}"))
        }
    }
    if let Some(selector) = selector {
        pods(c, o, live.pods_selected(ns, &selector), since);
    }
}

type Sizes = (i64, i64, Option<LabelSelector>);

fn sizes_deployment(d: &Deployment) -> Sizes {
    let spec = d.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1).into();
    let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0).into();
    (want, ready, spec.map(|s| s.selector.clone()))
}

fn sizes_statefulset(s: &StatefulSet) -> Sizes {
    let spec = s.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1).into();
    let ready = s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0).into();
    (want, ready, spec.map(|s| s.selector.clone()))
}

fn sizes_daemonset(d: &DaemonSet) -> Sizes {
    let status = d.status.as_ref();
    let want = status.map_or(0, |s| s.desired_number_scheduled).into();
    let ready = status.map_or(0, |s| s.number_ready).into();
    (want, ready, d.spec.as_ref().map(|s| s.selector.clone()))
}

/// One check for the pods of a workload: none crash-looping or stuck starting, none restarted
/// since its step was installed.
fn pods(c: &mut Checks, o: &Object<'_>, pods: Vec<&Pod>, since: Option<SystemTime>) {
    let subject = format!("pods of {}", o.id());
    if pods.is_empty() {
        c.skipped("pods", subject, "no pod runs now");
        return;
    }
    let mut problems = Vec::new();
    for pod in &pods {
        let status = pod.status.as_ref();
        let containers = status
            .into_iter()
            .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()));
        for cs in containers {
            if let Some(problem) = container_problem(cs, since) {
                problems.push(format!("pod {} container {}: {problem}", pod.name_any(), cs.name));
            }
        }
    }
    match problems.is_empty() {
        true => {
            let since = since.map(|t| format!(" since the install ({})", humantime::format_rfc3339_seconds(t)));
            c.ok(
                "pods",
                subject,
                format!("{} pod(s), no crash loop or restart{}", pods.len(), since.unwrap_or_default()),
            )
        }
        false => c.failed("pods", subject, problems.join("; ")),
    }
}

/// Reasons a container is stuck starting; restarts count only after `since`.
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

fn container_problem(cs: &ContainerStatus, since: Option<SystemTime>) -> Option<String> {
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_words = last.map(|t| {
        let at = t.finished_at.as_ref().map(|f| format!(" at {}", f.0.to_rfc3339())).unwrap_or_default();
        let message = t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default();
        format!("last ended {} (exit code {}){at}{message}", t.reason.as_deref().unwrap_or("unknown"), t.exit_code)
    });
    let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
    if let Some(w) = waiting.filter(|w| w.reason.as_deref().is_some_and(|r| STUCK.contains(&r))) {
        let message = w.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default();
        let last = last_words.map(|l| format!("; {l}")).unwrap_or_default();
        return Some(format!("{}{message}{last}", w.reason.as_deref().unwrap_or_default()));
    }
    let finished = last.and_then(|t| t.finished_at.as_ref()).map(|f| SystemTime::from(f.0));
    let after_install = match (finished, since) {
        (Some(finished), Some(since)) => finished > since,
        // Without a recorded install time every restart counts.
        _ => true,
    };
    (cs.restart_count > 0 && after_install).then(|| {
        format!(
            "restarted since the install ({} restart(s) in all); {}",
            cs.restart_count,
            last_words.unwrap_or_default()
        )
    })
}

fn job(c: &mut Checks, o: &Object<'_>, live: &Snapshot, since: Option<SystemTime>) {
    let Some(j) = find(&live.jobs, &o.namespace, o.name) else {
        if o.field(&["spec", "ttlSecondsAfterFinished"]).is_some() {
            c.skipped("workload", o.id(), "gone: its ttlSecondsAfterFinished removes it once finished");
        } else {
            c.failed("workload", o.id(), "does not exist in the cluster");
        }
        return;
    };
    match wait::job_done(j) {
        Readiness::Ready => c.ok("workload", o.id(), "complete"),
        Readiness::Failed(why) => c.failed("workload", o.id(), format!("failed: {why}")),
        Readiness::NotYet => {
            let s = j.status.as_ref();
            let (active, failed) = (s.and_then(|s| s.active).unwrap_or(0), s.and_then(|s| s.failed).unwrap_or(0));
            c.failed("workload", o.id(), format!("not complete: {active} pod(s) active, {failed} failed"))
        }
    }
    if let Some(selector) = j.spec.as_ref().and_then(|s| s.selector.clone()) {
        pods(c, o, live.pods_selected(&o.namespace, &selector), since);
    }
}

/// A claim the plan renders, or one of a StatefulSet's templates, Bound.
fn claim(c: &mut Checks, namespace: &str, name: &str, live: &Snapshot) {
    let subject = format!("PersistentVolumeClaim {namespace}/{name}");
    let Some(pvc) = find(&live.claims, namespace, name) else {
        c.failed("volume", subject, "does not exist in the cluster");
        return;
    };
    let class = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_else(|| "the default".into());
    let phase = pvc.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
    match phase.as_str() {
        "Bound" => {
            let volume = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).unwrap_or_default();
            c.ok("volume", subject, format!("Bound to {volume} (storage class {class})"))
        }
        _ => c.failed("volume", subject, format!("{phase}, not Bound (storage class {class})")),
    }
}

/// The claims a StatefulSet's volumeClaimTemplates give each of its replicas (none for other kinds).
fn statefulset_claims(o: &Object<'_>) -> Vec<String> {
    let replicas = o.field(&["spec", "replicas"]).and_then(|r| r.as_i64()).unwrap_or(1);
    let templates = o.field(&["spec", "volumeClaimTemplates"]).and_then(|t| t.as_sequence());
    let names = templates.into_iter().flatten().filter_map(|t| t.get("metadata")?.get("name")?.as_str());
    names.flat_map(|t| (0..replicas).map(move |i| format!("{t}-{}-{i}", o.name))).collect()
}

fn service(c: &mut Checks, o: &Object<'_>, live: &Snapshot) {
    let Some(svc) = live.service(&o.namespace, o.name) else {
        c.failed("service", o.id(), "does not exist in the cluster");
        return;
    };
    let spec = svc.spec.as_ref();
    let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
    if selector.is_empty() || spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return;
    }
    match live.ready_endpoints(&o.namespace, o.name) {
        0 => {
            let pods = live.pods_with_labels(&o.namespace, &selector);
            let ready = pods.iter().filter(|p| pod_ready(p)).count();
            c.failed(
                "service",
                o.id(),
                format!(
                    "no ready endpoint: its selector {} matches {} pod(s), {ready} ready",
                    show_labels(&selector),
                    pods.len()
                ),
            )
        }
        n => c.ok("service", o.id(), format!("{n} ready endpoint(s)")),
    }
}

pub fn pod_ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Each webhook of a configuration calls a Service that exists and has ready endpoints.
fn webhooks(c: &mut Checks, o: &Object<'_>, live: &Snapshot) {
    let subject = format!("{} {}", o.kind, o.name);
    let configs: Option<Vec<(String, WebhookClientConfig)>> = match o.kind {
        "MutatingWebhookConfiguration" => live
            .mutating
            .iter()
            .find(|w| w.name_any() == o.name)
            .map(|w| w.webhooks.iter().flatten().map(|h| (h.name.clone(), h.client_config.clone())).collect()),
        _ => live
            .validating
            .iter()
            .find(|w| w.name_any() == o.name)
            .map(|w| w.webhooks.iter().flatten().map(|h| (h.name.clone(), h.client_config.clone())).collect()),
    };
    let Some(configs) = configs else {
        c.failed("webhook", subject, "does not exist in the cluster");
        return;
    };
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for (hook, config) in configs {
        match (&config.service, &config.url) {
            (Some(s), _) => {
                let target = format!("Service {}/{}", s.namespace, s.name);
                if live.service(&s.namespace, &s.name).is_none() {
                    problems.push(format!("{hook} calls {target}, which does not exist"));
                } else if live.ready_endpoints(&s.namespace, &s.name) == 0 {
                    problems.push(format!("{hook} calls {target}, which has no ready endpoint"));
                } else {
                    seen.push(format!("{hook} → {target}"));
                }
            }
            (None, Some(url)) => seen.push(format!("{hook} → {url} (outside the cluster, not called)")),
            (None, None) => problems.push(format!("{hook} names neither a Service nor a URL")),
        }
    }
    match problems.is_empty() {
        true => c.ok("webhook", subject, seen.join("; ")),
        false => c.failed("webhook", subject, problems.join("; ")),
    }
}

/// Every aggregated API the cluster registers answers: one that does not breaks discovery for every
/// client (kubectl, helm, the installer), whatever step made it.
pub fn api_services(c: &mut Checks, live: &Snapshot) {
    for a in live.api_services.iter().filter(|a| a.spec.as_ref().is_some_and(|s| s.service.is_some())) {
        let conditions = a.status.as_ref().and_then(|s| s.conditions.as_ref());
        let available = conditions.and_then(|c| c.iter().find(|c| c.type_ == "Available"));
        let subject = format!("APIService {}", a.name_any());
        match available {
            Some(k) if k.status == "True" => c.ok("apiservice", subject, "available"),
            Some(k) => c.failed(
                "apiservice",
                subject,
                format!("not available: {} {}", k.reason.as_deref().unwrap_or(""), k.message.as_deref().unwrap_or("")),
            ),
            None => c.failed("apiservice", subject, "the API server has not said whether it is available"),
        }
    }
}
