//! The cluster as it is now, read once: one list per kind that the checks look at, so that a
//! plan of hundreds of objects costs a dozen requests and every check sees the same moment.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde_yaml_ng::Value;

pub struct Snapshot {
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cronjobs: Vec<CronJob>,
    pub pods: Vec<Pod>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    pub configmaps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub nodes: Vec<Node>,
    pub ingresses: Vec<Ingress>,
    pub mutating: Vec<MutatingWebhookConfiguration>,
    pub validating: Vec<ValidatingWebhookConfiguration>,
    pub api_services: Vec<APIService>,
}

async fn all<K>(client: &Client) -> Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .with_context(|| format!("listing {}", K::plural(&())))
}

impl Snapshot {
    pub async fn read(client: &Client) -> Result<Snapshot> {
        let c = client;
        let (deployments, statefulsets, daemonsets, jobs, cronjobs, pods, claims, services) =
            tokio::try_join!(all(c), all(c), all(c), all(c), all(c), all(c), all(c), all(c))?;
        let (endpoints, configmaps, secrets, nodes, ingresses, mutating, validating, api_services) =
            tokio::try_join!(all(c), all(c), all(c), all(c), all(c), all(c), all(c), all(c))?;
        Ok(Snapshot {
            deployments,
            statefulsets,
            daemonsets,
            jobs,
            cronjobs,
            pods,
            claims,
            services,
            endpoints,
            configmaps,
            secrets,
            nodes,
            ingresses,
            mutating,
            validating,
            api_services,
        })
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        find(&self.services, namespace, name)
    }

    /// The ready addresses behind a Service, as its Endpoints object lists them.
    pub fn ready_endpoints(&self, namespace: &str, name: &str) -> usize {
        let Some(e) = find(&self.endpoints, namespace, name) else { return 0 };
        e.subsets.iter().flatten().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum()
    }

    /// The pods of a namespace whose labels a Service-style selector (every pair equal) matches.
    pub fn pods_with_labels(&self, namespace: &str, wanted: &BTreeMap<String, String>) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace) && has_labels(p.labels(), wanted))
            .collect()
    }

    /// The pods of a namespace that a workload's label selector picks.
    pub fn pods_selected(&self, namespace: &str, selector: &LabelSelector) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace) && selects(selector, p.labels()))
            .collect()
    }

    /// A container's environment variable as the kubelet gives it: its own value, or a key of a
    /// ConfigMap or Secret by reference or `envFrom` (with its prefix), read from the cluster.
    pub fn env(&self, namespace: &str, container: &Value, name: &str) -> Option<String> {
        let configmap = |cm: &str, key: &str| find(&self.configmaps, namespace, cm)?.data.as_ref()?.get(key).cloned();
        let secret = |s: &str, key: &str| {
            let bytes = &find(&self.secrets, namespace, s)?.data.as_ref()?.get(key)?.0;
            String::from_utf8(bytes.clone()).ok()
        };
        let seq = |key: &str| container.get(key).and_then(Value::as_sequence).into_iter().flatten();
        if let Some(e) = seq("env").find(|e| text(e, &["name"]) == Some(name)) {
            if let Some(v) = text(e, &["value"]) {
                return Some(v.to_string());
            }
            let from = e.get("valueFrom")?;
            return match (from.get("configMapKeyRef"), from.get("secretKeyRef")) {
                (Some(r), _) => configmap(text(r, &["name"])?, text(r, &["key"])?),
                (_, Some(r)) => secret(text(r, &["name"])?, text(r, &["key"])?),
                _ => None,
            };
        }
        // A later source of envFrom wins, as the kubelet has it.
        seq("envFrom").rev().find_map(|f| {
            let key = name.strip_prefix(text(f, &["prefix"]).unwrap_or(""))?;
            match (text(f, &["configMapRef", "name"]), text(f, &["secretRef", "name"])) {
                (Some(cm), _) => configmap(cm, key),
                (_, Some(s)) => secret(s, key),
                _ => None,
            }
        })
    }

    pub fn ready_nodes(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| {
                let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
                conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect()
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

/// The object of that namespace and name in a list.
pub fn find<'a, K: Resource>(list: &'a [K], namespace: &str, name: &str) -> Option<&'a K> {
    list.iter().find(|o| o.meta().name.as_deref() == Some(name) && o.meta().namespace.as_deref() == Some(namespace))
}

pub fn has_labels(labels: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a label selector picks these labels (`matchLabels` and `matchExpressions`, as the API
/// server reads them; an empty selector picks everything).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exprs = selector.match_expressions.iter().flatten();
    has_labels(labels, selector.match_labels.as_ref().unwrap_or(&BTreeMap::new()))
        && exprs.into_iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// `app=hello,tier=web`, as kubectl prints a selector.
pub fn show_labels(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn selectors_read_as_the_api_server_reads_them() {
        let labels =
            BTreeMap::from([("app".to_string(), "hello".to_string()), ("tier".to_string(), "web".to_string())]);
        assert!(selects(&selector(serde_json::json!({"matchLabels": {"app": "hello"}})), &labels));
        assert!(!selects(&selector(serde_json::json!({"matchLabels": {"app": "other"}})), &labels));
        let expr = |op: &str, values: &[&str]| {
            selector(serde_json::json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}))
        };
        assert!(selects(&expr("In", &["web", "db"]), &labels));
        assert!(!selects(&expr("NotIn", &["web"]), &labels));
        assert!(selects(&expr("Exists", &[]), &labels));
        assert!(!selects(&expr("DoesNotExist", &[]), &labels));
        assert!(selects(&LabelSelector::default(), &labels), "an empty selector picks everything");
    }
}
