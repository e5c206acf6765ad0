//! `--testrig`: a plan step's CronJobs (an API test rig runs one per module) run once now, each
//! as a Job made from its template, as `kubectl create job --from=cronjob/...` does. Each Job's
//! outcome is compared with the previous run's, which the cluster keeps in a ConfigMap of the
//! installer's namespace; the Jobs are deleted once read.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check::Checks;
use super::live::{find, Snapshot};
use super::objects::Object;
use crate::cluster::MANAGER;
use crate::plan::{Wait, WaitKind};
use crate::render::Rendered;
use crate::state::{State, NAMESPACE};
use crate::wait;

/// How long one run may take when the step sets no longer wait.
const DEFAULT_TIMEOUT: u64 = 3600;

#[derive(Serialize, Deserialize)]
struct Run {
    passed: bool,
    at: String,
    detail: String,
}

pub async fn run(
    c: &mut Checks,
    client: &Client,
    cluster: &str,
    step: &str,
    rendered: &[Rendered<'_>],
    objects: &[Object<'_>],
    live: &Snapshot,
) -> Result<()> {
    let Some(r) = rendered.iter().find(|r| r.step.id == step) else {
        c.skipped("testrig", format!("test rig step {step}"), format!("cluster {cluster} has no step {step}"));
        return Ok(());
    };
    c.at(Some(step));
    if let Some(why) = &r.skipped {
        c.skipped("testrig", format!("test rig step {step}"), why.clone());
        return Ok(());
    }
    let cronjobs: Vec<&Object<'_>> = objects.iter().filter(|o| o.step == step && o.kind == "CronJob").collect();
    if cronjobs.is_empty() {
        c.failed("testrig", format!("test rig step {step}"), "renders no CronJob to run");
        return Ok(());
    }
    let timeout = r.step.wait.iter().map(|w| w.timeout).max().unwrap_or(DEFAULT_TIMEOUT);
    let kept: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let record = format!("airgap-verify-testrig-{cluster}");
    let previous: BTreeMap<String, String> = kept.get_opt(&record).await?.and_then(|cm| cm.data).unwrap_or_default();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let suffix = format!("-verify-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs());

    let mut started = Vec::new();
    for o in &cronjobs {
        let subject = format!("{} (run once)", o.id());
        let Some(cron) = find(&live.cronjobs, &o.namespace, o.name) else {
            c.failed("testrig", subject, "does not exist in the cluster");
            continue;
        };
        let template = cron.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
        let name: String = format!("{}{suffix}", o.name.chars().take(63 - suffix.len()).collect::<String>());
        let owner = cron.controller_owner_ref(&()).context("the CronJob has no uid")?;
        let job: Job = serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": o.namespace, "labels": template.metadata.as_ref().and_then(|m| m.labels.clone()),
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [owner],
            },
            "spec": template.spec,
        }))?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &o.namespace);
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => started.push((o, subject, name)),
            Err(e) => c.failed("testrig", subject, format!("cannot start a Job from it: {e}")),
        }
    }
    let mut results = BTreeMap::new();
    for (o, subject, name) in started {
        let w = Wait { kind: WaitKind::Job, namespace: o.namespace.clone(), name: name.clone(), timeout };
        let outcome = wait::wait(client, &w).await;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &o.namespace);
        jobs.delete(&name, &DeleteParams::background()).await.with_context(|| format!("deleting Job {name}"))?;
        let run = match &outcome {
            Ok(()) => Run { passed: true, at: now.clone(), detail: "complete".into() },
            Err(e) => Run { passed: false, at: now.clone(), detail: format!("{e:#}") },
        };
        let before = previous.get(o.name).and_then(|p| serde_json::from_str::<Run>(p).ok());
        let compared = match &before {
            None => "no earlier run kept".to_string(),
            Some(b) if b.passed == run.passed => format!("as in the run of {}", b.at),
            Some(b) if b.passed => format!("it passed in the run of {}", b.at),
            Some(b) => format!("it failed in the run of {}: {}", b.at, b.detail),
        };
        let detail = format!("{} ({compared})", if run.passed { "passed" } else { run.detail.as_str() });
        c.outcome("testrig", subject, if run.passed { Ok(detail) } else { Err(detail) });
        results.insert(o.name.to_string(), serde_json::to_string(&run)?);
    }
    c.at(None);
    State::ensure_namespace(client).await?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": record, "namespace": NAMESPACE}, "data": results});
    kept.patch(&record, &PatchParams::apply(&format!("{MANAGER}-verify")).force(), &Patch::Apply(&cm))
        .await
        .context("keeping the test rig's results")?;
    Ok(())
}
