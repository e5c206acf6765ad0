//! Whether every workload of a cluster is up, as a test checks after an install: each
//! Deployment, StatefulSet and DaemonSet at its size and ready, each Job complete.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::KubeControlPlane;

/// A cluster's workloads: how many of each kind, and those that are not ready.
pub struct Workloads {
    /// Kind → how many the cluster has.
    pub kinds: BTreeMap<String, usize>,
    /// `Kind namespace/name is not ready: <its status>`, one for each workload that is not.
    pub not_ready: Vec<String>,
}

/// Reads every Deployment, StatefulSet, DaemonSet and Job of the cluster.
pub fn workloads(plane: &KubeControlPlane) -> Result<Workloads> {
    let text = plane.kubectl(&["get", "deployments,statefulsets,daemonsets,jobs", "--all-namespaces", "-o", "json"])?;
    let listed: Value = serde_json::from_str(&text).context("kubectl get deployments,statefulsets,daemonsets,jobs")?;
    let mut found = Workloads { kinds: BTreeMap::new(), not_ready: Vec::new() };
    for w in listed["items"].as_array().into_iter().flatten() {
        let kind = w["kind"].as_str().unwrap_or_default();
        *found.kinds.entry(kind.to_string()).or_default() += 1;
        if !ready(kind, w) {
            let (namespace, name) = (&w["metadata"]["namespace"], &w["metadata"]["name"]);
            let (namespace, name) = (namespace.as_str().unwrap_or_default(), name.as_str().unwrap_or_default());
            found.not_ready.push(format!("{kind} {namespace}/{name} is not ready: {}", w["status"]));
        }
    }
    Ok(found)
}

fn ready(kind: &str, workload: &Value) -> bool {
    let (s, want) = (&workload["status"], workload["spec"]["replicas"].as_i64().unwrap_or(1));
    match kind {
        "Deployment" => s["availableReplicas"].as_i64().unwrap_or(0) >= want,
        "StatefulSet" => s["readyReplicas"].as_i64().unwrap_or(0) >= want,
        // One scheduled on no node runs nowhere.
        "DaemonSet" => {
            s["numberReady"].as_i64().is_some_and(|n| n > 0) && s["numberReady"] == s["desiredNumberScheduled"]
        }
        _ => s["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Complete" && c["status"] == "True"),
    }
}
