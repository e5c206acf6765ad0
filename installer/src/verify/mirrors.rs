//! Node mirrors, proven the way an operator's own pod would use them: on every Ready node, a pod
//! naming a carried image by its upstream name (one per upstream host the plan's images come
//! from), pulled again (`imagePullPolicy: Always`, so a cached copy proves nothing), must start.
//! The pods are deleted whatever happens.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use bundles::artifact::Reference;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::check::Checks;
use super::live::Snapshot;
use crate::render::Rendered;
use crate::state::{State, NAMESPACE};

const LABEL: &str = "airgap.io/verify";
/// How long a node may take to pull and start the image.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `site_registry` is how nodes name the site registry: an image a chart already names there
/// (Rancher's `systemDefaultRegistry`) needs no mirror.
pub async fn check(
    c: &mut Checks,
    client: &Client,
    rendered: &[Rendered<'_>],
    live: &Snapshot,
    site_registry: &str,
) -> Result<()> {
    // One image per upstream host, by its name as the charts write it.
    let mut by_host: BTreeMap<String, String> = BTreeMap::new();
    for image in rendered.iter().filter(|r| r.skipped.is_none()).flat_map(|r| r.images.keys()) {
        let Ok(r) = Reference::parse(image) else { continue };
        if r.registry != site_registry {
            by_host.entry(r.registry.clone()).or_insert_with(|| image.clone());
        }
    }
    if by_host.is_empty() {
        c.skipped("mirror", "node mirrors", "the plan runs no image");
        return Ok(());
    }
    let nodes: Vec<String> = live.ready_nodes().iter().map(|n| n.name_any()).collect();
    if nodes.is_empty() {
        c.failed("mirror", "node mirrors", "no node is Ready");
        return Ok(());
    }
    State::ensure_namespace(client).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    clean(&pods).await?;
    let mut trials = Vec::new();
    for node in &nodes {
        for (host, image) in &by_host {
            trials.push((node.clone(), host.clone(), image.clone()));
        }
    }
    let results = futures_util::future::join_all(trials.iter().map(|(node, _, image)| start(&pods, node, image))).await;
    clean(&pods).await?;
    for ((node, host, image), result) in trials.into_iter().zip(results) {
        c.outcome(
            "mirror",
            format!("{host} on node {node}"),
            result.map(|ok| format!("{image}: {ok}")).map_err(|e| format!("{image}: {e}")),
        );
    }
    Ok(())
}

/// Deletes this check's pods, left by an earlier run that was killed, or made by this one.
async fn clean(pods: &Api<Pod>) -> Result<()> {
    let ours = ListParams::default().labels(&format!("{LABEL}=mirror"));
    pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..Default::default() }, &ours)
        .await
        .context("deleting the mirror check's pods")?;
    Ok(())
}

/// Starts the image on the node; Ok once its container has run, Err with the kubelet's reason.
async fn start(pods: &Api<Pod>, node: &str, image: &str) -> Result<String, String> {
    let digest = hex::encode(Sha256::digest(format!("{node}\n{image}")));
    let name = format!("airgap-verify-mirror-{}", &digest[..16]);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: "mirror"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "activeDeadlineSeconds": START_TIMEOUT.as_secs() + 60,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "mirror-check", "image": image, "imagePullPolicy": "Always"}],
        },
    }))
    .map_err(|e| e.to_string())?;
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| format!("cannot create pod {NAMESPACE}/{name}: {e}"))?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut last = String::from("no status yet");
    loop {
        if let Ok(p) = pods.get(&name).await {
            let status = p.status.unwrap_or_default();
            for cs in status.container_statuses.iter().flatten() {
                let state = cs.state.clone().unwrap_or_default();
                if state.running.is_some() || state.terminated.is_some() {
                    let id =
                        Some(&cs.image_id).filter(|i| !i.is_empty()).map(|i| format!(" as {i}")).unwrap_or_default();
                    return Ok(format!("pulled by its upstream name{id} and started"));
                }
                if let Some(w) = state.waiting {
                    let reason = w.reason.unwrap_or_default();
                    last = format!("{reason}: {}", w.message.unwrap_or_default());
                    if ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"].contains(&reason.as_str()) {
                        return Err(format!("the node cannot pull it: {last}"));
                    }
                }
            }
            if status.phase.as_deref() == Some("Failed") {
                return Err(format!("the pod failed: {}", status.message.unwrap_or(last)));
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("not started after {} s: {last}", START_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
