//! `--testrig`: a plan step's CronJobs (an API test rig runs one per module) run once now, each
//! as a Job made from its template, as `kubectl create job --from=cronjob/...` does. Each Job's
//! outcome is compared with the previous run's, which the cluster keeps in a ConfigMap of the
//! installer's namespace; the Jobs are deleted once read.
//!
//! Where a CronJob's container is set up to push its report to an object store (the rig's own
//! settings, from its environment: `s3-host`, `s3-region`, `s3-user-key`, `s3-user-secret`,
//! `s3-account`, `push-reports-to-s3`, and the module in `MODULES`), the module's newest report
//! is read from the store ([`store`]), its counts taken from it ([`report`]) and compared with
//! the previous run's: the module fails when more of its tests fail or fewer pass, when this run
//! wrote no report, and, with no earlier run kept, when any test failed.

mod report;
mod store;

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
use report::Summary;
use store::{Settings, Store};

/// How long one run may take when the step sets no longer wait.
const DEFAULT_TIMEOUT: u64 = 3600;

/// The rig's own default bucket (`s3-account` in its `Kernel.properties`).
const RIG_BUCKET: &str = "automation";

#[derive(Serialize, Deserialize)]
struct Run {
    passed: bool,
    at: String,
    detail: String,
    /// What the module's report said, where the rig reports to an object store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    report: Option<Summary>,
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
        let before = previous.get(o.name).and_then(|p| serde_json::from_str::<Run>(p).ok());
        let mut run = match &outcome {
            Ok(()) => Run { passed: true, at: now.clone(), detail: "complete".into(), report: None },
            Err(e) => Run { passed: false, at: now.clone(), detail: format!("{e:#}"), report: None },
        };
        let compared = match &before {
            None => "no earlier run kept".to_string(),
            Some(b) if b.passed == run.passed => format!("as in the run of {}", b.at),
            Some(b) if b.passed => format!("it passed in the run of {}", b.at),
            Some(b) => format!("it failed in the run of {}: {}", b.at, b.detail),
        };
        let detail = format!("{} ({compared})", if run.passed { "passed" } else { run.detail.as_str() });
        c.outcome("testrig", subject, if run.passed { Ok(detail) } else { Err(detail) });
        run.report = module_report(c, client, o, live, before.as_ref()).await;
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

/// The check of the module's report, where the CronJob's rig pushes one; this run's summary to keep.
async fn module_report(
    c: &mut Checks,
    client: &Client,
    o: &Object<'_>,
    live: &Snapshot,
    before: Option<&Run>,
) -> Option<Summary> {
    let container = o.pod_spec()?.get("containers")?.as_sequence()?.first()?;
    let env = |name: &str| live.env(&o.namespace, container, name);
    let module = env("MODULES").unwrap_or_else(|| o.name.to_string());
    let subject = format!("module {module} ({})", o.id());
    let Some(endpoint) = env("s3-host") else {
        c.skipped("testrig", subject, "its container names no object store (s3-host): the rig keeps its report");
        return None;
    };
    if env("push-reports-to-s3").is_some_and(|p| p.eq_ignore_ascii_case("no")) {
        c.skipped("testrig", subject, "its container sets push-reports-to-s3 to no: the rig keeps its report");
        return None;
    }
    let bucket = env("s3-account").unwrap_or_else(|| RIG_BUCKET.to_string());
    let read = async {
        let setting = |name: &str| env(name).ok_or_else(|| format!("its container has no {name} for {endpoint}"));
        let (region, key, secret) = (setting("s3-region")?, setting("s3-user-key")?, setting("s3-user-secret")?);
        let store = Store::new(&Settings {
            endpoint: &endpoint,
            region: &region,
            bucket: &bucket,
            key: &key,
            secret: &secret,
        })?;
        let listed = store.list(client).await?;
        let newest = report::newest(&listed, &module).ok_or_else(|| {
            format!("no report of module {module} in {} (*-{module}-*report_T-*.html)", store.describe())
        })?;
        let html = store.get(client, &newest.key).await?;
        report::read(newest, &String::from_utf8_lossy(&html))
            .map_err(|e| format!("report {} of {}: {e}", newest.key, store.describe()))
    };
    let summary = match read.await {
        Ok(s) => s,
        Err(e) => {
            c.failed("testrig", subject, e);
            return None;
        }
    };
    let at = format!("report {bucket}/{} of {}", summary.key, summary.modified);
    let earlier = before.and_then(|b| Some((b.at.as_str(), b.report.as_ref()?)));
    let judged = match earlier {
        Some((when, kept)) if kept.key == summary.key => {
            Err(format!("this run wrote no report: the newest, {at}, was read in the run of {when}"))
        }
        Some((when, kept)) if summary.worse_than(kept) => {
            Err(format!("regressed: {}; in the run of {when}: {} ({at})", summary.counts(), kept.counts()))
        }
        Some((when, kept)) => Ok(format!("{}; in the run of {when}: {} ({at})", summary.counts(), kept.counts())),
        None if summary.failed > 0 => {
            Err(format!("{}, with no earlier run kept to compare with ({at})", summary.counts()))
        }
        None => Ok(format!("{} (no earlier run kept; {at})", summary.counts())),
    };
    c.outcome("testrig", subject, judged);
    Some(summary)
}
