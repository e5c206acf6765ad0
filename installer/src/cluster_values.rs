//! Values a plan takes from the cluster when a step runs: `${secret:NAMESPACE/NAME/KEY}` and
//! `${configmap:NAMESPACE/NAME/KEY}` in the `set`, `env` and `files` values of a release and the
//! `data` of a `configmap` or `secret` step, as upstream scripts read a generated client secret
//! with `kubectl get secret ... | base64 -d` and pass it on. The object may be made by an earlier
//! step of the same run, so the value is read just before its step; `plan`, which reads no
//! cluster, shows a placeholder naming the reference.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use crate::cluster::Cluster;
use crate::plan::{Step, StepAction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    ConfigMap,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ref {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}/{} key {}", self.kind, self.namespace, self.name, self.key)
    }
}

const PREFIXES: [(&str, Kind); 2] = [("${secret:", Kind::Secret), ("${configmap:", Kind::ConfigMap)];

/// Each reference in `text` with where it starts and ends, in order.
fn parse(text: &str) -> Result<Vec<(usize, usize, Ref)>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some((start, prefix, kind)) =
        PREFIXES.iter().filter_map(|(p, k)| text[from..].find(p).map(|i| (from + i, *p, *k))).min_by_key(|f| f.0)
    {
        let body_start = start + prefix.len();
        let end = text[body_start..]
            .find('}')
            .map(|i| body_start + i)
            .ok_or_else(|| anyhow!("unterminated {prefix}…}} in {text:?}"))?;
        let body = &text[body_start..end];
        let parts: Vec<&str> = body.split('/').collect();
        let [namespace, name, key] = parts[..] else { bail!("{prefix}{body}}}: write {prefix}NAMESPACE/NAME/KEY}}") };
        if [namespace, name, key].iter().any(|p| p.is_empty()) {
            bail!("{prefix}{body}}}: write {prefix}NAMESPACE/NAME/KEY}}");
        }
        found.push((start, end + 1, Ref { kind, namespace: namespace.into(), name: name.into(), key: key.into() }));
        from = end + 1;
    }
    Ok(found)
}

/// Every reference a step makes, checked for form.
pub fn of_step(step: &Step) -> Result<BTreeSet<Ref>> {
    let mut texts: Vec<&String> = Vec::new();
    if let Some(h) = step.helm() {
        texts.extend(h.set.values().chain(h.env.values()).chain(h.files.values()));
    }
    if let StepAction::ConfigMap(data) | StepAction::Secret(data) = &step.action {
        texts.extend(data.data.values());
    }
    let mut refs = BTreeSet::new();
    for t in texts {
        refs.extend(parse(t)?.into_iter().map(|(_, _, r)| r));
    }
    Ok(refs)
}

/// Whether `text` takes a value from the cluster.
pub fn takes_values(text: &str) -> bool {
    PREFIXES.iter().any(|(p, _)| text.contains(p))
}

/// What references become: the values read from the cluster, or placeholders when none is read.
#[derive(Debug, Default)]
pub struct Values {
    read: Option<BTreeMap<Ref, String>>,
}

impl Values {
    /// For `plan`: each reference shows as `<Secret ns/name key k, read when the step runs>`.
    pub fn placeholders() -> Values {
        Values { read: None }
    }

    /// Reads every reference of `refs` from the cluster; a missing object or key is an error
    /// naming it.
    pub async fn read(cluster: &Cluster, refs: &BTreeSet<Ref>) -> Result<Values> {
        let mut read = BTreeMap::new();
        for r in refs {
            let value = read_one(cluster, r).await.with_context(|| format!("reading {r}"))?;
            read.insert(r.clone(), value);
        }
        Ok(Values { read: Some(read) })
    }

    pub fn substitute(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, r) in parse(text)? {
            out.push_str(&text[at..start]);
            match &self.read {
                Some(read) => out.push_str(read.get(&r).ok_or_else(|| anyhow!("{r} was not read"))?),
                None => out.push_str(&format!("<{r}, read when the step runs>")),
            }
            at = end;
        }
        out.push_str(&text[at..]);
        Ok(out)
    }
}

async fn read_one(cluster: &Cluster, r: &Ref) -> Result<String> {
    let client = cluster.client.clone();
    let bytes = match r.kind {
        Kind::Secret => {
            let s = Api::<Secret>::namespaced(client, &r.namespace).get_opt(&r.name).await?;
            let s = s.ok_or_else(|| anyhow!("the Secret does not exist"))?;
            s.data.unwrap_or_default().remove(&r.key).map(|b| b.0)
        }
        Kind::ConfigMap => {
            let c = Api::<ConfigMap>::namespaced(client, &r.namespace).get_opt(&r.name).await?;
            let c = c.ok_or_else(|| anyhow!("the ConfigMap does not exist"))?;
            let text = c.data.unwrap_or_default().remove(&r.key).map(String::into_bytes);
            text.or_else(|| c.binary_data.unwrap_or_default().remove(&r.key).map(|b| b.0))
        }
    };
    let bytes = bytes.ok_or_else(|| anyhow!("it has no key {}", r.key))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("the value is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: Kind, ns: &str, name: &str, key: &str) -> Ref {
        Ref { kind, namespace: ns.into(), name: name.into(), key: key.into() }
    }

    #[test]
    fn references_are_found_in_order_and_replaced() {
        let text = "a ${configmap:s3/s3/s3-region} b ${secret:keycloak/keycloak-client-secrets/mosip_deployment_client_secret}";
        let found: Vec<Ref> = parse(text).unwrap().into_iter().map(|(_, _, r)| r).collect();
        let secret = r(Kind::Secret, "keycloak", "keycloak-client-secrets", "mosip_deployment_client_secret");
        assert_eq!(found, [r(Kind::ConfigMap, "s3", "s3", "s3-region"), secret.clone()]);
        let read = Values { read: Some(found.iter().cloned().zip(["eu", "s3cr3t"].map(String::from)).collect()) };
        assert_eq!(read.substitute(text).unwrap(), "a eu b s3cr3t");
        let shown = Values::placeholders()
            .substitute("${secret:keycloak/keycloak-client-secrets/mosip_deployment_client_secret}")
            .unwrap();
        assert_eq!(
            shown,
            "<Secret keycloak/keycloak-client-secrets key mosip_deployment_client_secret, read when the step runs>"
        );
        assert_eq!(Values::placeholders().substitute("${site.x} plain").unwrap(), "${site.x} plain");
        assert!(takes_values(text) && !takes_values("${site.registry.address}"));
    }

    #[test]
    fn malformed_references_are_named() {
        for bad in ["${secret:a/b}", "${secret:a//c}", "${configmap:a/b/c", "${secret:a/b/c/d}"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("NAMESPACE/NAME/KEY") || err.contains("unterminated"), "{bad}: {err}");
        }
        let missing = Values { read: Some(BTreeMap::new()) }.substitute("${secret:a/b/c}").unwrap_err();
        assert!(missing.to_string().contains("Secret a/b key c"), "{missing}");
    }
}
