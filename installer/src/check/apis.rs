//! Which kinds the target cluster serves, and whether each is namespaced: from the cluster's
//! discovery when it answers, otherwise from the Kubernetes version the site file declares and the
//! table `manifests/kubernetes-apis.yaml` (generated from the k8s-openapi crate, see its header).
//! CustomResourceDefinitions that steps create are added as the steps are walked.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use kube::discovery::{Discovery, Scope};
use serde::Deserialize;
use serde_yaml_ng::Value;

const TABLE: &str = include_str!("../../../manifests/kubernetes-apis.yaml");

/// `group/version` (`v1` for the core group) and kind.
pub type ApiKind = (String, String);

/// The kinds a cluster serves, and whether each is namespaced: discovered, or known for a Kubernetes version.
#[derive(Debug, Clone)]
pub struct Apis {
    /// (apiVersion, kind) → namespaced.
    served: BTreeMap<ApiKind, bool>,
    /// How messages name the target: `Kubernetes 1.24.17`.
    pub target: String,
}

#[derive(Deserialize)]
struct Table {
    versions: Vec<String>,
    kinds: Vec<TableKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableKind {
    api_version: String,
    kind: String,
    namespaced: bool,
    from: String,
    to: String,
}

/// `1.24` of `v1.24.17-eks-…` (the table is per minor version).
fn minor_of(version: &str) -> Result<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-', '+']);
    let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
    match (number(), number()) {
        (Some(major), Some(minor)) => Ok((major, minor)),
        _ => bail!("{version:?} is not a Kubernetes version (e.g. 1.24 or v1.24.17)"),
    }
}

/// The group of an apiVersion: `apps` of `apps/v1`, `` of `v1`.
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

impl Apis {
    /// The kinds a kube-apiserver of `version` serves by default (see the table's header).
    pub fn for_version(version: &str) -> Result<Apis> {
        let table: Table = serde_yaml_ng::from_str(TABLE).context("manifests/kubernetes-apis.yaml")?;
        let wanted = minor_of(version)?;
        let minors: Vec<(u64, u64)> = table.versions.iter().map(|v| minor_of(v)).collect::<Result<_>>()?;
        let (Some(first), Some(last)) = (minors.first(), minors.last()) else { bail!("an empty API table") };
        if wanted < *first || wanted > *last {
            bail!(
                "Kubernetes {version}: manifests/kubernetes-apis.yaml knows {} to {} (give a kubeconfig of a cluster that \
                 answers, so its own discovery is used, or extend the table with installer/tools/kubernetes-apis.py)",
                table.versions[0],
                table.versions[table.versions.len() - 1]
            );
        }
        let mut served = BTreeMap::new();
        for k in table.kinds {
            if minor_of(&k.from)? <= wanted && wanted <= minor_of(&k.to)? {
                served.insert((k.api_version, k.kind), k.namespaced);
            }
        }
        Ok(Apis { served, target: format!("Kubernetes {version}") })
    }

    /// What the cluster's discovery lists (its CRDs included).
    pub fn from_discovery(discovery: &Discovery, version: &str) -> Apis {
        let mut served = BTreeMap::new();
        for group in discovery.groups() {
            for v in group.versions() {
                for (resource, caps) in group.versioned_resources(v) {
                    served
                        .insert((resource.api_version.clone(), resource.kind.clone()), caps.scope == Scope::Namespaced);
                }
            }
        }
        Apis { served, target: format!("Kubernetes {version}") }
    }

    /// What helm's `--api-versions` takes: every served `group/version` and `group/version/Kind`.
    pub fn helm_api_versions(&self) -> Vec<String> {
        let versions: BTreeSet<&String> = self.served.keys().map(|(v, _)| v).collect();
        let kinds = self.served.keys().map(|(v, k)| format!("{v}/{k}"));
        versions.into_iter().cloned().chain(kinds).collect()
    }

    /// A kind that something the plan installs makes served (a CRD a Job applies).
    pub fn add_kind(&mut self, api_version: &str, kind: &str, namespaced: bool) {
        self.served.insert((api_version.to_string(), kind.to_string()), namespaced);
    }

    /// Whether the kind is served at that apiVersion, and if so whether it is namespaced.
    pub fn served(&self, api_version: &str, kind: &str) -> Option<bool> {
        self.served.get(&(api_version.to_string(), kind.to_string())).copied()
    }

    /// Every apiVersion at which `kind` of that group is served, for messages.
    pub fn versions_of(&self, group: &str, kind: &str) -> BTreeSet<String> {
        self.served.keys().filter(|(v, k)| k == kind && group_of(v) == group).map(|(v, _)| v.clone()).collect()
    }

    /// Whether a kind of that group is namespaced, at whichever version it is served.
    pub fn namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.served.iter().find(|((v, k), _)| k == kind && group_of(v) == group).map(|(_, n)| *n)
    }

    /// The group of a kind, when exactly one served group has a kind of that name.
    pub fn group_of_kind(&self, kind: &str) -> Option<String> {
        let groups: BTreeSet<&str> = self.served.keys().filter(|(_, k)| k == kind).map(|(v, _)| group_of(v)).collect();
        match groups.into_iter().collect::<Vec<_>>()[..] {
            [one] => Some(one.to_string()),
            _ => None,
        }
    }

    /// The served kinds a CustomResourceDefinition adds; an object that is not one adds nothing.
    pub fn add_crd(&mut self, doc: &Value) -> Result<()> {
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition")
            || group_of(api) != "apiextensions.k8s.io"
        {
            return Ok(());
        }
        let spec = doc.get("spec").ok_or_else(|| anyhow!("a CustomResourceDefinition without spec"))?;
        let text = |v: Option<&Value>, what: &str| {
            v.and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("a CustomResourceDefinition without {what}"))
        };
        let group = text(spec.get("group"), "spec.group")?;
        let kind = text(spec.get("names").and_then(|n| n.get("kind")), "spec.names.kind")?;
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let versions = spec.get("versions").and_then(Value::as_sequence).into_iter().flatten();
        let mut found = false;
        for v in versions.filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true)) {
            self.served
                .insert((format!("{group}/{}", text(v.get("name"), "a version name")?), kind.clone()), namespaced);
            found = true;
        }
        // apiextensions.k8s.io/v1beta1 names one version at spec.version.
        if !found {
            let version = text(spec.get("version"), "spec.versions")?;
            self.served.insert((format!("{group}/{version}"), kind), namespaced);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_what_each_version_removed() {
        let v124 = Apis::for_version("1.24").unwrap();
        assert_eq!(v124.served("policy/v1beta1", "PodSecurityPolicy"), Some(false));
        assert_eq!(v124.served("apps/v1", "Deployment"), Some(true));
        assert_eq!(v124.served("networking.k8s.io/v1beta1", "Ingress"), None, "removed in 1.22");
        let v125 = Apis::for_version("v1.25.3").unwrap();
        assert_eq!(v125.served("policy/v1beta1", "PodSecurityPolicy"), None);
        assert_eq!(v125.versions_of("policy", "PodDisruptionBudget"), BTreeSet::from(["policy/v1".to_string()]));
        let err = Apis::for_version("1.19").unwrap_err().to_string();
        assert!(err.contains("1.24 to 1.30") && err.contains("kubernetes-apis.py"), "{err}");
        assert!(Apis::for_version("latest").is_err());
    }

    #[test]
    fn a_crd_adds_its_served_versions_and_scope() {
        let mut apis = Apis::for_version("1.24").unwrap();
        let crd: Value = serde_yaml_ng::from_str(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gateways.networking.istio.io}\nspec:\n  group: networking.istio.io\n  scope: Namespaced\n  names: {kind: Gateway, plural: gateways}\n  versions: [{name: v1alpha3, served: true}, {name: v1beta1, served: false}]\n",
        )
        .unwrap();
        apis.add_crd(&crd).unwrap();
        assert_eq!(apis.served("networking.istio.io/v1alpha3", "Gateway"), Some(true));
        assert_eq!(apis.served("networking.istio.io/v1beta1", "Gateway"), None);
    }
}
