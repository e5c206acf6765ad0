//! A release's Helm hooks, run by the installer. Helm hands only a release's manifests to the
//! post-renderer, never its hooks (`renderResources` in helm 3.8, and still in later 3.x), so a
//! hook's images would name their upstream registries. The installer runs helm with `--no-hooks`
//! and runs the post-rendered hooks itself, the way helm does: per event in weight order, deleting
//! by policy, waiting for a Job to complete or a Pod to succeed.

use anyhow::{Context, Result};
use serde_yaml_ng::Value;

use crate::cluster::Cluster;
use crate::plan::{Wait, WaitKind};

/// Helm's default `--timeout`, which bounds each hook of a step that sets no wait of its own.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// Helm's install order of kinds (`releaseutil.InstallOrder`), which orders hooks of one weight.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// What helm does to the release; each has its own hook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Install,
    Upgrade,
    Uninstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

fn event(phase: Phase, operation: Operation) -> &'static str {
    match (phase, operation) {
        (Phase::Pre, Operation::Install) => "pre-install",
        (Phase::Post, Operation::Install) => "post-install",
        (Phase::Pre, Operation::Upgrade) => "pre-upgrade",
        (Phase::Post, Operation::Upgrade) => "post-upgrade",
        (Phase::Pre, Operation::Uninstall) => "pre-delete",
        (Phase::Post, Operation::Uninstall) => "post-delete",
    }
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub doc: Value,
    events: Vec<String>,
    weight: i64,
    delete_policies: Vec<String>,
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Whether a rendered object is a hook that runs before an install creates the release's objects.
pub fn is_pre_install(doc: &Value) -> bool {
    let install = event(Phase::Pre, Operation::Install);
    annotation(doc, "helm.sh/hook").is_some_and(|events| list(events).iter().any(|e| e == install))
}

impl Hook {
    /// None when the object is not a hook.
    fn parse(doc: Value) -> Option<Hook> {
        let events = list(annotation(&doc, "helm.sh/hook")?);
        // As helm: a weight that is not a number counts as 0; without a policy, the hook's
        // object is deleted before it is created again.
        let weight = annotation(&doc, "helm.sh/hook-weight").and_then(|w| w.trim().parse().ok()).unwrap_or(0);
        let delete_policies = annotation(&doc, "helm.sh/hook-delete-policy")
            .map(list)
            .unwrap_or_else(|| vec!["before-hook-creation".into()]);
        Some(Hook { doc, events, weight, delete_policies })
    }

    fn field(&self, path: &[&str]) -> &str {
        path.iter().try_fold(&self.doc, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.field(&["kind"])
    }

    fn name(&self) -> &str {
        self.field(&["metadata", "name"])
    }

    fn deletes_on(&self, policy: &str) -> bool {
        self.delete_policies.iter().any(|p| p == policy)
    }
}

/// Whether a rendered object is a hook: helm's, run by the installer, not kept as a release object.
pub fn is_hook(doc: &Value) -> bool {
    annotation(doc, "helm.sh/hook").is_some()
}

/// The hooks among a release's rendered objects.
pub fn hooks(docs: Vec<Value>) -> Vec<Hook> {
    docs.into_iter().filter_map(Hook::parse).collect()
}

/// The hooks of one event, in the order helm runs them: by weight, then kind, then name.
fn of_event(hooks: &[Hook], phase: Phase, operation: Operation) -> Vec<&Hook> {
    let event = event(phase, operation);
    let mut found: Vec<&Hook> = hooks.iter().filter(|h| h.events.iter().any(|e| e == event)).collect();
    let kind_rank = |h: &Hook| KIND_ORDER.iter().position(|k| *k == h.kind()).unwrap_or(KIND_ORDER.len());
    found.sort_by(|a, b| (a.weight, kind_rank(a), a.name()).cmp(&(b.weight, kind_rank(b), b.name())));
    found
}

/// Where and how long a release's hooks run: like helm's `--timeout`, `timeout` bounds each hook.
pub struct Target<'a> {
    pub namespace: &'a str,
    pub timeout: u64,
}

/// Runs the hooks of one event; a failed hook stops the release. As helm (`execHook`), the
/// `hook-succeeded` deletions wait until every hook of the event has succeeded: a chart's Job
/// needs the ServiceAccount and Role hooks of its event until it is done (ingress-nginx's
/// admission Jobs).
pub async fn run(cluster: &Cluster, hooks: &[Hook], phase: Phase, operation: Operation, at: &Target<'_>) -> Result<()> {
    let ordered = of_event(hooks, phase, operation);
    let what = |hook: &Hook| format!("{} hook {} {}", event(phase, operation), hook.kind(), hook.name());
    for hook in &ordered {
        run_one(cluster, hook, at).await.with_context(|| what(hook))?;
    }
    for hook in ordered.iter().filter(|h| h.deletes_on("hook-succeeded")) {
        cluster.delete(&hook.doc, Some(at.namespace)).await.with_context(|| what(hook))?;
    }
    Ok(())
}

async fn run_one(cluster: &Cluster, hook: &Hook, at: &Target<'_>) -> Result<()> {
    let namespace = at.namespace;
    if hook.deletes_on("before-hook-creation") {
        cluster.delete(&hook.doc, Some(namespace)).await?;
    }
    cluster.apply(std::slice::from_ref(&hook.doc), Some(namespace)).await?;
    let kind = match hook.kind() {
        "Job" => Some(WaitKind::Job),
        "Pod" => Some(WaitKind::Pod),
        _ => None,
    };
    let outcome = match kind {
        Some(kind) => {
            let ns = Some(hook.field(&["metadata", "namespace"])).filter(|n| !n.is_empty()).unwrap_or(namespace);
            let wait = Wait { kind, namespace: ns.into(), name: hook.name().into(), timeout: at.timeout };
            crate::wait::wait(&cluster.client, &wait).await
        }
        None => Ok(()),
    };
    if outcome.is_err() && hook.deletes_on("hook-failed") {
        cluster.delete(&hook.doc, Some(namespace)).await?;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
        let mut a = serde_yaml_ng::Mapping::new();
        for (k, v) in annotations {
            a.insert((*k).into(), (*v).into());
        }
        serde_yaml_ng::to_value(serde_json::json!({"kind": kind, "metadata": {"name": name, "annotations": a}}))
            .unwrap()
    }

    fn names(hooks: &[Hook], phase: Phase, operation: Operation) -> Vec<&str> {
        of_event(hooks, phase, operation).iter().map(|h| h.name()).collect()
    }

    #[test]
    fn hooks_run_per_event_by_weight_then_kind_then_name() {
        let hooks = hooks(vec![
            object("Deployment", "not-a-hook", &[]),
            object("Job", "patch", &[("helm.sh/hook", "post-install, post-upgrade"), ("helm.sh/hook-weight", "-1")]),
            object("Job", "create", &[("helm.sh/hook", "pre-install,pre-upgrade"), ("helm.sh/hook-weight", "-5")]),
            object(
                "ServiceAccount",
                "sa",
                &[("helm.sh/hook", "pre-install,post-install"), ("helm.sh/hook-weight", "-5")],
            ),
            object("Job", "b-upgrade-only", &[("helm.sh/hook", "pre-upgrade")]),
            object("Job", "a-no-number", &[("helm.sh/hook", "pre-upgrade"), ("helm.sh/hook-weight", "x")]),
            object("Pod", "test", &[("helm.sh/hook", "test")]),
            object("Job", "cleanup", &[("helm.sh/hook", "pre-delete")]),
        ]);
        assert_eq!(hooks.len(), 7, "only annotated objects are hooks");
        assert_eq!(names(&hooks, Phase::Pre, Operation::Install), ["sa", "create"]);
        assert_eq!(names(&hooks, Phase::Post, Operation::Install), ["sa", "patch"]);
        assert_eq!(names(&hooks, Phase::Pre, Operation::Upgrade), ["create", "a-no-number", "b-upgrade-only"]);
        assert_eq!(names(&hooks, Phase::Post, Operation::Upgrade), ["patch"]);
        assert_eq!(names(&hooks, Phase::Pre, Operation::Uninstall), ["cleanup"]);
        assert!(names(&hooks, Phase::Post, Operation::Uninstall).is_empty());
    }

    #[test]
    fn without_a_policy_a_hook_is_replaced_before_it_is_created() {
        let hooks = hooks(vec![
            object("Job", "default", &[("helm.sh/hook", "post-install")]),
            object(
                "Job",
                "cleaned",
                &[("helm.sh/hook", "post-install"), ("helm.sh/hook-delete-policy", "hook-succeeded,hook-failed")],
            ),
        ]);
        assert!(hooks[0].deletes_on("before-hook-creation") && !hooks[0].deletes_on("hook-succeeded"));
        assert!(!hooks[1].deletes_on("before-hook-creation"));
        assert!(hooks[1].deletes_on("hook-succeeded") && hooks[1].deletes_on("hook-failed"));
    }
}
