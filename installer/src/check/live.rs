//! What the target cluster already has, asked through its API as the check needs it: objects by
//! kind and name (with the keys of a ConfigMap's or Secret's data), default classes, and pods a
//! selector matches. Answers are kept for the run; nothing is changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::Client;
use tokio::sync::Mutex;

use super::refs::Id;

/// An object the cluster has: the keys of its data (ConfigMap, Secret; empty for other kinds).
#[derive(Debug, Clone)]
pub struct Found {
    pub keys: BTreeSet<String>,
}

/// A cluster's objects as the check asks for them: each read once, then remembered.
pub struct Live {
    client: Client,
    discovery: Discovery,
    objects: Mutex<HashMap<Id, Option<Found>>>,
}

/// The annotation that marks a class the cluster's default.
pub fn default_annotation(kind: &str) -> Option<&'static str> {
    match kind {
        "StorageClass" => Some("storageclass.kubernetes.io/is-default-class"),
        "IngressClass" => Some("ingressclass.kubernetes.io/is-default-class"),
        _ => None,
    }
}

impl Live {
    /// Reads the cluster's API discovery; fails when the cluster does not answer it.
    pub async fn new(client: Client) -> Result<Live> {
        let discovery = crate::cluster::discovery(&client).await?;
        Ok(Live { client, discovery, objects: Mutex::new(HashMap::new()) })
    }

    /// The APIs the cluster serves, as discovered by [`Live::new`].
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    fn resource(&self, group: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        self.discovery.get(group)?.recommended_kind(kind)
    }

    fn api(&self, group: &str, kind: &str, namespace: Option<&str>) -> Option<Api<DynamicObject>> {
        let (resource, caps) = self.resource(group, kind)?;
        Some(match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::all_with(self.client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// The object, if the cluster has it (a kind the cluster does not serve: none).
    pub async fn get(&self, id: &Id) -> Result<Option<Found>> {
        if let Some(hit) = self.objects.lock().await.get(id) {
            return Ok(hit.clone());
        }
        let found = match self.api(&id.group, &id.kind, id.namespace.as_deref()) {
            None => None,
            Some(api) => {
                api.get_opt(&id.name).await.with_context(|| format!("reading {id} from the cluster"))?.map(|o| {
                    let mut keys = BTreeSet::new();
                    for field in ["data", "binaryData", "stringData"] {
                        if let Some(map) = o.data.get(field).and_then(|d| d.as_object()) {
                            keys.extend(map.keys().cloned());
                        }
                    }
                    Found { keys }
                })
            }
        };
        self.objects.lock().await.insert(id.clone(), found.clone());
        Ok(found)
    }

    /// Whether the cluster has a class of this kind marked as its default.
    pub async fn has_default(&self, group: &str, kind: &str) -> Result<bool> {
        let (Some(api), Some(annotation)) = (self.api(group, kind, None), default_annotation(kind)) else {
            return Ok(false);
        };
        let list = api.list(&ListParams::default()).await.with_context(|| format!("listing {kind} in the cluster"))?;
        Ok(list
            .items
            .iter()
            .any(|o| o.metadata.annotations.as_ref().and_then(|a| a.get(annotation)).is_some_and(|v| v == "true")))
    }

    /// Whether a pod in `namespace` has every label of `selector`.
    pub async fn pods_match(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Result<bool> {
        let Some(api) = self.api("", "Pod", Some(namespace)) else { return Ok(false) };
        let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params = ListParams::default().labels(&labels.join(",")).limit(1);
        let list = api.list(&params).await.with_context(|| format!("listing pods in {namespace}"))?;
        Ok(!list.items.is_empty())
    }
}
