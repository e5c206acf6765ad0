//! Waits with watches: a step is done when its workloads are rolled out, or its Jobs complete.
//! On timeout the error says what is not ready and why (container states, warning events).

use std::time::Duration;

use anyhow::{bail, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource, ResourceExt};

use crate::plan::{Wait, WaitKind};

/// Waits, with watches, until what `w` names is ready; fails at its timeout saying what is not ready and why, or at
/// once when a Job has failed or nothing matches.
pub async fn wait(client: &Client, w: &Wait) -> Result<()> {
    match w.kind {
        WaitKind::Deployment => wait_all::<Deployment>(client, w, deployment_ready).await,
        WaitKind::StatefulSet => wait_all::<StatefulSet>(client, w, statefulset_ready).await,
        WaitKind::DaemonSet => wait_all::<DaemonSet>(client, w, daemonset_ready).await,
        WaitKind::Job => wait_all::<Job>(client, w, job_done).await,
        WaitKind::Pod => wait_all::<Pod>(client, w, pod_done).await,
    }
}

/// Whether what a wait names is ready now, without waiting: None when it is, else why not, in
/// the words a timed-out wait would use.
pub async fn ready_now(client: &Client, w: &Wait) -> Result<Option<String>> {
    match w.kind {
        WaitKind::Deployment => now::<Deployment>(client, w, deployment_ready).await,
        WaitKind::StatefulSet => now::<StatefulSet>(client, w, statefulset_ready).await,
        WaitKind::DaemonSet => now::<DaemonSet>(client, w, daemonset_ready).await,
        WaitKind::Job => now::<Job>(client, w, job_done).await,
        WaitKind::Pod => now::<Pod>(client, w, pod_done).await,
    }
}

async fn now<K>(client: &Client, w: &Wait, ready: fn(&K) -> Readiness) -> Result<Option<String>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &w.namespace);
    let kind = format!("{:?}", w.kind);
    let objects = if w.name == "*" {
        api.list(&ListParams::default()).await?.items
    } else {
        api.get_opt(&w.name).await?.into_iter().collect()
    };
    if objects.is_empty() {
        return Ok(Some(format!("no {kind} {}/{} exists", w.namespace, w.name)));
    }
    for o in &objects {
        let name = o.name_any();
        match ready(o) {
            Readiness::Ready => {}
            Readiness::Failed(why) => return Ok(Some(format!("{kind} {}/{name} failed: {why}", w.namespace))),
            Readiness::NotYet => {
                let why = diagnose(client, &w.namespace, &name).await;
                return Ok(Some(format!("{kind} {}/{name} is not ready: {why}", w.namespace)));
            }
        }
    }
    Ok(None)
}

/// Ready, not ready, or failed for good (a Job that gave up).
pub(crate) enum Readiness {
    Ready,
    NotYet,
    Failed(String),
}

async fn wait_all<K>(client: &Client, w: &Wait, ready: fn(&K) -> Readiness) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api = Api::<K>::namespaced(client.clone(), &w.namespace);
    let names: Vec<String> = if w.name == "*" {
        api.list(&ListParams::default()).await?.items.iter().map(|o| o.name_any()).collect()
    } else {
        vec![w.name.clone()]
    };
    let kind = format!("{:?}", w.kind);
    if names.is_empty() {
        bail!("no {kind} in namespace {} to wait for", w.namespace);
    }
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(w.timeout);
    let every = report_interval(w.timeout);
    let mut report = tokio::time::interval_at(started + every, every);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for name in names {
        let cond = move |o: Option<&K>| o.is_some_and(|o| !matches!(ready(o), Readiness::NotYet));
        let watch = tokio::time::timeout_at(deadline, await_condition(api.clone(), &name, cond));
        tokio::pin!(watch);
        // A long wait says now and then what it waits for, so that it does not look hung.
        let outcome = loop {
            tokio::select! {
                outcome = &mut watch => break outcome,
                _ = report.tick() => {
                    let why = diagnose(client, &w.namespace, &name).await;
                    let waited = started.elapsed().as_secs();
                    eprintln!("  waiting for {kind} {}/{name} ({waited} s of {} s): {why}", w.namespace, w.timeout);
                }
            }
        };
        match outcome {
            Ok(Ok(Some(obj))) => {
                if let Readiness::Failed(why) = ready(&obj) {
                    bail!("{kind} {}/{name} failed: {why}", w.namespace);
                }
            }
            Ok(Ok(None)) => bail!("{kind} {}/{name} was deleted while waiting", w.namespace),
            Ok(Err(e)) => bail!("watching {kind} {}/{name}: {e}", w.namespace),
            Err(_) => {
                let why = diagnose(client, &w.namespace, &name).await;
                bail!("{kind} {}/{name} is not ready after {} s: {why}", w.namespace, w.timeout);
            }
        }
    }
    Ok(())
}

/// A quarter of the timeout, between 5 and 30 seconds.
fn report_interval(timeout: u64) -> Duration {
    Duration::from_secs((timeout / 4).clamp(5, 30))
}

fn generation_seen(meta_generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= meta_generation.unwrap_or(0)
}

pub(crate) fn deployment_ready(d: &Deployment) -> Readiness {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = &d.status else { return Readiness::NotYet };
    // As `kubectl rollout status`: pods of an older template still running (a new one that
    // cannot start) mean the rollout is not done.
    let done = generation_seen(d.metadata.generation, s.observed_generation)
        && s.updated_replicas.unwrap_or(0) >= want
        && s.replicas.unwrap_or(0) <= s.updated_replicas.unwrap_or(0)
        && s.available_replicas.unwrap_or(0) >= want;
    if done {
        Readiness::Ready
    } else {
        Readiness::NotYet
    }
}

pub(crate) fn statefulset_ready(d: &StatefulSet) -> Readiness {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = &d.status else { return Readiness::NotYet };
    let done = generation_seen(d.metadata.generation, s.observed_generation) && s.ready_replicas.unwrap_or(0) >= want;
    if done {
        Readiness::Ready
    } else {
        Readiness::NotYet
    }
}

pub(crate) fn daemonset_ready(d: &DaemonSet) -> Readiness {
    let Some(s) = &d.status else { return Readiness::NotYet };
    let done = generation_seen(d.metadata.generation, s.observed_generation)
        && s.number_ready >= s.desired_number_scheduled
        && s.updated_number_scheduled.unwrap_or(0) >= s.desired_number_scheduled;
    if done {
        Readiness::Ready
    } else {
        Readiness::NotYet
    }
}

pub(crate) fn job_done(j: &Job) -> Readiness {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => return Readiness::Ready,
            ("Failed", "True") => return Readiness::Failed(c.message.clone().unwrap_or_else(|| c.type_.clone())),
            _ => {}
        }
    }
    Readiness::NotYet
}

fn pod_done(p: &Pod) -> Readiness {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Readiness::Ready,
        Some("Failed") => Readiness::Failed(
            p.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_else(|| "the pod failed".into()),
        ),
        _ => Readiness::NotYet,
    }
}

/// Why the pods of `name` are not ready: each pod's waiting containers and recent warnings.
pub(crate) async fn diagnose(client: &Client, namespace: &str, name: &str) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default()).await else { return "the pods cannot be listed".into() };
    let mut reasons = Vec::new();
    for pod in list.items.iter().filter(|p| p.name_any().starts_with(name)) {
        let pod_name = pod.name_any();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
        let mut line = format!("pod {pod_name} {phase}");
        let init = status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten();
        for c in init.chain(status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten()) {
            let state = c.state.as_ref();
            if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
                line += &format!(
                    "; {} waiting: {} {}",
                    c.name,
                    w.reason.as_deref().unwrap_or(""),
                    w.message.as_deref().unwrap_or("")
                );
            } else if state.is_some_and(|s| s.running.is_some()) && !c.ready {
                // Running but failing its readiness probe: the kubelet's reason is in the events.
                line += &format!("; {} running, not ready", c.name);
            }
        }
        if phase == "Pending" {
            line += &unbound_claims(client, namespace, pod).await;
        }
        // The kubelet's (or the scheduler's) latest word on the pod: a missing key, a volume that
        // cannot mount, a failing probe, an unbound claim.
        let params = ListParams::default().fields(&format!("involvedObject.name={pod_name},type=Warning"));
        if let Some(last) = events.list(&params).await.ok().and_then(|ev| latest(ev.items)) {
            line += &format!(
                "; event {}{}: {}",
                last.reason.as_deref().unwrap_or(""),
                last.source
                    .as_ref()
                    .and_then(|s| s.component.as_deref())
                    .map(|c| format!(" from {c}"))
                    .unwrap_or_default(),
                last.message.as_deref().unwrap_or("")
            );
        }
        reasons.push(line);
    }
    if !reasons.is_empty() {
        return reasons.join(" | ");
    }
    // No pod: what kept the controller from making one (a quota, an admission webhook) is a
    // warning on the workload or on its ReplicaSets, which are named after it.
    let warnings = ListParams::default().fields("type=Warning");
    let last = events.list(&warnings).await.ok().and_then(|ev| {
        latest(ev.items.into_iter().filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n.starts_with(name))))
    });
    match last {
        Some(e) => format!(
            "no pod of {name} exists; event {} on {} {}: {}",
            e.reason.as_deref().unwrap_or(""),
            e.involved_object.kind.as_deref().unwrap_or(""),
            e.involved_object.name.as_deref().unwrap_or(""),
            e.message.as_deref().unwrap_or("")
        ),
        None => format!("no pod of {name} exists and no warning names it (kubectl -n {namespace} get events)"),
    }
}

/// The event seen last (an event repeated counts at its last time).
fn latest(events: impl IntoIterator<Item = Event>) -> Option<Event> {
    events.into_iter().max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)))
}

/// A pending pod's claims that are not bound, each with the latest warning on it (the
/// provisioner's refusal): the pod's own events may say nothing more than that it waits.
async fn unbound_claims(client: &Client, namespace: &str, pod: &Pod) -> String {
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace);
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    let names = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()));
    let mut out = String::new();
    for name in names {
        let phase = match claims.get_opt(&name).await {
            Ok(Some(c)) => c.status.and_then(|s| s.phase).unwrap_or_else(|| "Pending".into()),
            Ok(None) => "missing".into(),
            Err(_) => continue,
        };
        if phase == "Bound" {
            continue;
        }
        out += &format!("; claim {name} {phase}");
        let params = ListParams::default().fields(&format!("involvedObject.name={name},type=Warning"));
        if let Some(e) = events.list(&params).await.ok().and_then(|ev| latest(ev.items)) {
            out += &format!(": event {}: {}", e.reason.as_deref().unwrap_or(""), e.message.as_deref().unwrap_or(""));
        }
    }
    out
}
