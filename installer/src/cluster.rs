//! One cluster through the Kubernetes API: server-side apply of rendered objects, copies of
//! configmaps and secrets between namespaces, and the facts preflight needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::{Client, Resource, ResourceExt};
use serde_yaml_ng::Value;
use tokio::sync::Mutex;

use crate::plan::{Copy, CopyKind};

/// How long a deleted object may take to go (its finalizers run).
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the API server may take to serve a new CRD's kind.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Field manager of every object the installer applies.
pub const MANAGER: &str = "airgap";

/// A cluster of the plan, reached through its kubeconfig; what steps are applied to.
pub struct Cluster {
    /// The plan's name for the cluster, used in messages.
    pub name: String,
    /// The kubeconfig it was reached with, handed on to helm and the bundled tools.
    pub kubeconfig: PathBuf,
    /// The Kubernetes client of that kubeconfig's current context.
    pub client: Client,
    /// Per API group: an aggregated API whose server is down (prometheus-adapter starting) fails
    /// the discovery of its own group only, as with kubectl.
    discovery: Mutex<BTreeMap<String, Discovery>>,
}

/// The cluster's API discovery without the aggregated groups whose server does not answer
/// (prometheus-adapter's custom.metrics.k8s.io while it starts), as kubectl leaves them out: one
/// such group would otherwise fail the discovery of every group.
pub async fn discovery(client: &Client) -> Result<Discovery> {
    let groups = client.list_api_groups().await.context("API discovery")?;
    let mut answering = vec![String::new()];
    for g in groups.groups {
        let mut answers = true;
        for v in &g.versions {
            answers &= client.list_api_group_resources(&v.group_version).await.is_ok();
        }
        if answers {
            answering.push(g.name);
        }
    }
    let names: Vec<&str> = answering.iter().map(String::as_str).collect();
    Discovery::new(client.clone()).filter(&names).run().await.context("API discovery")
}

/// The cluster's nodes, as [`Cluster::nodes`] counts them.
pub struct NodeCounts {
    /// Every node, ready or not.
    pub total: usize,
    /// Nodes whose `Ready` condition is true (the cordoned ones included).
    pub ready: usize,
    /// Ready, but taking no new pods (`kubectl cordon`).
    pub cordoned: usize,
}

impl Cluster {
    /// Builds the client from the kubeconfig; fails when it cannot be read or used, but does not contact the cluster
    /// (see [`Cluster::version`]).
    pub async fn connect(name: &str, kubeconfig: &Path) -> Result<Cluster> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .with_context(|| format!("cluster {name}: cannot read kubeconfig {}", kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .with_context(|| format!("cluster {name}: kubeconfig {}", kubeconfig.display()))?;
        let client = Client::try_from(config)?;
        Ok(Cluster { name: name.into(), kubeconfig: kubeconfig.into(), client, discovery: Mutex::new(BTreeMap::new()) })
    }

    /// `v1.24.17`: also tells whether the cluster answers at all.
    pub async fn version(&self) -> Result<String> {
        let v =
            self.client.apiserver_version().await.with_context(|| format!("cluster {} does not answer", self.name))?;
        Ok(v.git_version)
    }

    /// How many nodes there are, how many are Ready, and how many of those are cordoned.
    pub async fn nodes(&self) -> Result<NodeCounts> {
        let nodes = Api::<Node>::all(self.client.clone()).list(&ListParams::default()).await?;
        let ready: Vec<&Node> = nodes
            .items
            .iter()
            .filter(|n| {
                let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
                conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect();
        let cordoned = ready.iter().filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)).count();
        Ok(NodeCounts { total: nodes.items.len(), ready: ready.len(), cordoned })
    }

    /// The names of the cluster's StorageClasses.
    pub async fn storage_classes(&self) -> Result<Vec<String>> {
        let list = Api::<StorageClass>::all(self.client.clone()).list(&ListParams::default()).await?;
        Ok(list.items.iter().map(|s| s.name_any()).collect())
    }

    /// Server-side apply of every document, in order; objects of namespaced kinds without a
    /// namespace go to `default_ns` (or `default`).
    pub async fn apply(&self, docs: &[Value], default_ns: Option<&str>) -> Result<()> {
        for doc in docs {
            let (api, obj, what) = self.api_for(doc, default_ns).await?;
            api.patch(&obj.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&obj))
                .await
                .with_context(|| format!("applying {what}"))?;
        }
        Ok(())
    }

    /// Deletes the object a document names, if it exists, and returns once it is gone.
    pub async fn delete(&self, doc: &Value, default_ns: Option<&str>) -> Result<()> {
        let (api, obj, what) = self.api_for(doc, default_ns).await?;
        let name = obj.name_any();
        let gone = |r: Result<Option<DynamicObject>, kube::Error>| matches!(r, Ok(None));
        if gone(api.get_opt(&name).await) {
            return Ok(());
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) | Err(kube::Error::Api(kube::core::ErrorResponse { code: 404, .. })) => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {what}")),
        }
        let deadline = tokio::time::Instant::now() + DELETE_TIMEOUT;
        while !gone(api.get_opt(&name).await) {
            if tokio::time::Instant::now() > deadline {
                bail!("{what} is still there {} s after it was deleted", DELETE_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// The API of a document's kind and namespace (namespaced kinds without a namespace go to
    /// `default_ns`, or `default`), the object, and how to name it in messages.
    async fn api_for(
        &self,
        doc: &Value,
        default_ns: Option<&str>,
    ) -> Result<(Api<DynamicObject>, DynamicObject, String)> {
        let obj: DynamicObject = serde_yaml_ng::from_value(doc.clone()).context("not a Kubernetes object")?;
        let types = obj.types.clone().ok_or_else(|| anyhow!("an object without apiVersion/kind"))?;
        let what = format!("{} {}", types.kind, obj.name_any());
        let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let (ar, caps) = self.resolve(&gvk).await.with_context(|| what.clone())?;
        let api = match caps.scope {
            Scope::Namespaced => {
                let ns = obj.namespace().or(default_ns.map(str::to_string)).unwrap_or_else(|| "default".into());
                Api::namespaced_with(self.client.clone(), &ns, &ar)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        Ok((api, obj, what))
    }

    /// The API resource of a kind, discovering its group again once when it is unknown (a CRD
    /// applied by an earlier step).
    async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<(kube::discovery::ApiResource, kube::discovery::ApiCapabilities)> {
        let mut cached = self.discovery.lock().await;
        for fresh in [false, true] {
            if fresh || !cached.contains_key(&gvk.group) {
                let group = Discovery::new(self.client.clone()).filter(&[gvk.group.as_str()]).run().await;
                let group = group.with_context(|| format!("API discovery of group {:?}", gvk.group))?;
                cached.insert(gvk.group.clone(), group);
            }
            if let Some(found) = cached.get(&gvk.group).and_then(|d| d.resolve_gvk(gvk)) {
                return Ok(found);
            }
        }
        bail!("the cluster does not serve {}/{} {}", gvk.group, gvk.version, gvk.kind)
    }

    /// Returns once every named CustomResourceDefinition is Established (its kind served).
    pub async fn wait_established(&self, names: &[&str]) -> Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
        for name in names {
            loop {
                let crd = api.get_opt(name).await.with_context(|| format!("reading CRD {name}"))?;
                let conditions = crd.as_ref().and_then(|c| c.status.as_ref()).and_then(|s| s.conditions.as_ref());
                if conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True")) {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("CRD {name} is not established {} s after it was applied", ESTABLISH_TIMEOUT.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Copies a configmap or secret between namespaces, as the upstream scripts do with
    /// `kubectl get -o yaml | sed | kubectl apply`.
    pub async fn copy(&self, c: &Copy) -> Result<()> {
        match c.kind {
            CopyKind::ConfigMap => copy_object::<ConfigMap>(&self.client, c).await,
            CopyKind::Secret => copy_object::<Secret>(&self.client, c).await,
        }
        .with_context(|| {
            let rename = c.rename.as_ref().map(|n| format!(" as {n}")).unwrap_or_default();
            format!("copying {:?} {} from {} to {}{rename}", c.kind, c.name, c.from, c.to)
        })
    }
}

async fn copy_object<K>(client: &Client, c: &Copy) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let mut obj = Api::<K>::namespaced(client.clone(), &c.from).get(&c.name).await?;
    let name = c.rename.clone().unwrap_or_else(|| c.name.clone());
    let meta = obj.meta_mut();
    meta.name = Some(name.clone());
    meta.namespace = Some(c.to.clone());
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    let obj = select_keys(obj, &c.keys)?;
    Api::<K>::namespaced(client.clone(), &c.to)
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&obj))
        .await?;
    Ok(())
}

/// Only the `keys` of a configmap's or secret's data (all of it when `keys` is empty), each under
/// its new name: `keys` maps the new name to the source key.
fn select_keys<K: serde::Serialize + serde::de::DeserializeOwned>(
    obj: K,
    keys: &BTreeMap<String, String>,
) -> Result<K> {
    const FIELDS: [&str; 2] = ["data", "binaryData"];
    if keys.is_empty() {
        return Ok(obj);
    }
    let mut v = serde_json::to_value(obj)?;
    let mut selected: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (to, from) in keys {
        let (field, value) = FIELDS
            .iter()
            .find_map(|f| v.get(*f).and_then(|d| d.get(from)).map(|value| (*f, value.clone())))
            .ok_or_else(|| anyhow!("it has no key {from}"))?;
        selected.entry(field).or_default().insert(to.clone(), value);
    }
    let map = v.as_object_mut().ok_or_else(|| anyhow!("not an object"))?;
    for f in FIELDS {
        match selected.remove(f) {
            Some(data) => map.insert(f.to_string(), serde_json::Value::Object(data)),
            None => map.remove(f),
        };
    }
    Ok(serde_json::from_value(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_only_the_keys_it_names_under_their_new_names() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "minio"},
            "data": {"root-user": "YWRtaW4=", "root-password": "c2VjcmV0"},
        }))
        .unwrap();
        let keys = BTreeMap::from([("s3-user-secret".to_string(), "root-password".to_string())]);
        let copy = select_keys(secret.clone(), &keys).unwrap();
        let data = copy.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["s3-user-secret"]);
        assert_eq!(data["s3-user-secret"].0, b"secret");
        assert_eq!(select_keys(secret.clone(), &BTreeMap::new()).unwrap(), secret);
        let missing = BTreeMap::from([("x".to_string(), "nope".to_string())]);
        assert!(select_keys(secret, &missing).unwrap_err().to_string().contains("nope"));
    }
}
