//! Every object a step renders is in the cluster now, and every ConfigMap and Secret still has
//! the keys the plan gives it. One list per kind, whatever the number of objects.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::{Client, ResourceExt};
use serde_yaml_ng::Value;

use super::check::Checks;
use super::objects::Object;

/// What the cluster holds of one kind: (namespace or "" when cluster-wide, name) → data keys.
type Held = BTreeMap<(String, String), BTreeSet<String>>;

pub async fn check(c: &mut Checks, client: &Client, objects: &[Object<'_>]) -> Result<()> {
    let mut held: BTreeMap<(&str, &str), Option<(Held, bool)>> = BTreeMap::new();
    for o in objects {
        if held.contains_key(&(o.api_version, o.kind)) {
            continue;
        }
        let (group, version) = o.api_version.rsplit_once('/').unwrap_or(("", o.api_version));
        let listed = match resource(client, group, version, o.kind).await {
            // The cluster no longer serves the kind (its CRD is gone): none of its objects exist.
            None => None,
            Some((resource, caps)) => {
                let list = Api::<DynamicObject>::all_with(client.clone(), &resource)
                    .list(&ListParams::default())
                    .await
                    .with_context(|| format!("listing {} {}", o.api_version, o.kind))?;
                let namespaced = caps.scope == Scope::Namespaced;
                let held = list
                    .items
                    .iter()
                    .map(|d| {
                        let ns = if namespaced { d.namespace().unwrap_or_default() } else { String::new() };
                        ((ns, d.name_any()), data_keys(&d.data))
                    })
                    .collect();
                Some((held, namespaced))
            }
        };
        held.insert((o.api_version, o.kind), listed);
    }
    let mut by_step: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();
    let mut order = Vec::new();
    for o in objects {
        if !by_step.contains_key(o.step) {
            order.push(o.step);
        }
        let entry = by_step.entry(o.step).or_default();
        entry.0 += 1;
        let Some(Some((objects_of_kind, namespaced))) = held.get(&(o.api_version, o.kind)) else {
            entry.1.push(format!(
                "{} {}: the cluster serves no {} of group {}",
                o.kind,
                o.name,
                o.kind,
                o.api_version.rsplit_once('/').map_or("core", |(g, _)| g)
            ));
            continue;
        };
        let ns = if *namespaced { o.namespace.clone() } else { String::new() };
        let shown = if *namespaced { o.id() } else { format!("{} {}", o.kind, o.name) };
        match objects_of_kind.get(&(ns, o.name.to_string())) {
            None => entry.1.push(format!("{shown} does not exist")),
            Some(keys) => {
                let wanted = rendered_keys(o.doc);
                let missing: Vec<&String> = wanted.difference(keys).collect();
                if !missing.is_empty() {
                    let missing: Vec<&str> = missing.iter().map(|k| k.as_str()).collect();
                    entry.1.push(format!("{shown} has no key {}", missing.join(", ")));
                }
            }
        }
    }
    for step in order {
        let (count, problems) = &by_step[step];
        c.at(Some(step));
        let subject = format!("objects of step {step}");
        match problems.is_empty() {
            true => c.ok("objects", subject, format!("all {count} exist")),
            false => c.failed("objects", subject, problems.join("; ")),
        }
    }
    c.at(None);
    Ok(())
}

/// The API of a kind at the version the plan renders it, else at the version its group
/// recommends: an object is the same object whatever version it is read at.
pub(super) async fn resource(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<(ApiResource, ApiCapabilities)> {
    match kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await {
        Ok(found) => Some(found),
        Err(_) => kube::discovery::group(client, group).await.ok()?.recommended_kind(kind),
    }
}

/// The keys of a ConfigMap's or Secret's data as the cluster holds it (empty for other kinds).
fn data_keys(data: &serde_json::Value) -> BTreeSet<String> {
    ["data", "binaryData"]
        .iter()
        .filter_map(|f| data.get(*f).and_then(|d| d.as_object()))
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// The keys the plan renders into a ConfigMap or Secret (`stringData` lands in `data`).
fn rendered_keys(doc: &Value) -> BTreeSet<String> {
    let kind = doc.get("kind").and_then(Value::as_str);
    if !matches!(kind, Some("ConfigMap" | "Secret")) {
        return BTreeSet::new();
    }
    ["data", "binaryData", "stringData"]
        .iter()
        .filter_map(|f| doc.get(*f).and_then(Value::as_mapping))
        .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_string))
        .collect()
}
