//! Where the plan imports a cluster into Rancher, Rancher lists it as registered and Ready. The
//! import is what the plan's objects say: a Rancher `Cluster` (`provisioning.cattle.io` or
//! `management.cattle.io`), rendered as a step's own object or among the objects an `http` step
//! applies to the cluster whose API it calls (Rancher's, another cluster of the plan). Rancher is
//! asked where that object lands.
//!
//! Where the plan's `saml` step runs, Rancher's SAML `AuthConfig` is as the step wrote it (on,
//! its type and fields the plan's) and its IdP metadata is the one the site's Keycloak serves
//! now: the same entity and signing certificates.

use anyhow::Result;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::ResourceExt;
use serde_yaml_ng::Value;

use super::check::Checks;
use super::objects::Object;
use crate::cluster::Cluster;
use crate::render::{Action, Rendered};
use crate::run;
use crate::saml::Prepared;
use crate::site::Site;

/// A Rancher Cluster the plan creates: the step, the plan cluster Rancher runs in, its name.
struct Import {
    step: String,
    rancher: String,
    name: String,
    skipped: Option<String>,
}

fn rancher_cluster(doc: &Value) -> Option<String> {
    let text = |k: &str| doc.get(k).and_then(Value::as_str);
    let group = text("apiVersion")?.split('/').next()?;
    if text("kind")? != "Cluster" || !group.ends_with(".cattle.io") {
        return None;
    }
    let meta = doc.get("metadata")?;
    // A management cluster's name is an id; people (and Rancher's UI) know it by its display name.
    let display = doc.get("spec").and_then(|s| s.get("displayName")).and_then(Value::as_str);
    Some(display.or(meta.get("name").and_then(Value::as_str))?.to_string())
}

pub async fn check(
    c: &mut Checks,
    here: &Cluster,
    rendered: &[Rendered<'_>],
    objects: &[Object<'_>],
    site: &Site,
) -> Result<()> {
    for r in rendered {
        if let Action::Saml(p) = &r.action {
            c.at(Some(&r.step.id));
            saml(c, here, p, r.skipped.as_deref()).await?;
        }
    }
    c.at(None);
    let mut imports = Vec::new();
    for o in objects {
        if let Some(name) = rancher_cluster(o.doc) {
            imports.push(Import { step: o.step.to_string(), rancher: here.name.clone(), name, skipped: None });
        }
    }
    for r in rendered {
        let Action::Http(p) = &r.action else { continue };
        for name in p.objects.iter().filter_map(rancher_cluster) {
            let rancher = p.cluster.clone().unwrap_or_else(|| here.name.clone());
            imports.push(Import { step: r.step.id.clone(), rancher, name, skipped: r.skipped.clone() });
        }
    }
    if imports.is_empty() {
        c.skipped(
            "rancher",
            "Rancher registration",
            "the plan imports this cluster into no Rancher (it creates no *.cattle.io Cluster)",
        );
        return Ok(());
    }
    for import in imports {
        c.at(Some(&import.step));
        let subject = format!("Rancher cluster {} (in cluster {})", import.name, import.rancher);
        if let Some(why) = import.skipped {
            c.skipped("rancher", subject, format!("step {} does not run: {why}", import.step));
            continue;
        }
        let other;
        let rancher = if import.rancher == here.name {
            here
        } else {
            other = Cluster::connect(&import.rancher, &run::kubeconfig(site, &import.rancher)?).await?;
            &other
        };
        let gvk = GroupVersionKind::gvk("management.cattle.io", "v3", "Cluster");
        let listed = match kube::discovery::pinned_kind(&rancher.client, &gvk).await {
            Ok((resource, _)) => {
                Api::<DynamicObject>::all_with(rancher.client.clone(), &resource)
                    .list(&ListParams::default())
                    .await?
                    .items
            }
            Err(_) => {
                c.failed(
                    "rancher",
                    subject,
                    format!(
                        "cluster {} serves no management.cattle.io/v3 Cluster: no Rancher runs there",
                        import.rancher
                    ),
                );
                continue;
            }
        };
        let found = listed.iter().find(|m| {
            m.data["spec"]["displayName"].as_str() == Some(import.name.as_str()) || m.name_any() == import.name
        });
        let Some(m) = found else {
            c.failed("rancher", subject, "Rancher lists no such cluster (management.cattle.io/v3 Cluster)");
            continue;
        };
        let conditions = m.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions.iter().any(|k| k["type"] == "Ready" && k["status"] == "True") {
            c.ok("rancher", subject, format!("registered as {} and Ready", m.name_any()));
        } else {
            let not: Vec<String> = conditions
                .iter()
                .filter(|k| k["status"] != "True")
                .map(|k| {
                    let s = |f: &str| k[f].as_str().unwrap_or("?").to_string();
                    format!("{} {}: {}", s("type"), s("status"), k["message"].as_str().unwrap_or(""))
                })
                .collect();
            c.failed("rancher", subject, format!("registered as {} but not Ready: {}", m.name_any(), not.join("; ")));
        }
    }
    c.at(None);
    Ok(())
}

/// The AuthConfig the `saml` step wrote, checked against the plan and Keycloak.
async fn saml(c: &mut Checks, here: &Cluster, p: &Prepared, skipped: Option<&str>) -> Result<()> {
    let Some(wanted) = p.rancher.last().and_then(|d| serde_json::to_value(d).ok()) else { return Ok(()) };
    let name = wanted["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let (_, keycloak, _, path) = &p.metadata;
    let subject = format!("Rancher SAML AuthConfig {name} (in cluster {})", here.name);
    if let Some(why) = skipped {
        c.skipped("rancher", subject, format!("the saml step does not run: {why}"));
        return Ok(());
    }
    let gvk = GroupVersionKind::gvk("management.cattle.io", "v3", "AuthConfig");
    let Ok((resource, _)) = kube::discovery::pinned_kind(&here.client, &gvk).await else {
        c.failed("rancher", subject, "the cluster serves no management.cattle.io/v3 AuthConfig: no Rancher runs there");
        return Ok(());
    };
    let Some(live) = Api::<DynamicObject>::all_with(here.client.clone(), &resource).get_opt(&name).await? else {
        c.failed("rancher", subject, "does not exist in the cluster");
        return Ok(());
    };
    let live = &live.data;
    let mut wrong = Vec::new();
    for (field, value) in wanted.as_object().into_iter().flatten() {
        if !["apiVersion", "kind", "metadata"].contains(&field.as_str()) && &live[field] != value {
            let shown = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), |s| format!("{s:?}"));
            wrong.push(format!("{field} is {}, the plan sets {}", shown(&live[field]), shown(value)));
        }
    }
    let held = live["idpMetadataContent"].as_str().unwrap_or_default();
    let result = match (wrong.is_empty(), p.idp_metadata(&here.client).await) {
        (false, _) => Err(wrong.join("; ")),
        (true, Err(e)) => Err(format!("{e:#}")),
        (true, Ok(served)) => match (entity(held), entity(&served)) {
            (None, _) => Err("it holds no IdP metadata (idpMetadataContent names no entityID)".to_string()),
            (Some(h), Some(s)) if h != s => {
                Err(format!("its IdP metadata names entity {h}; Keycloak serves {s} at Service {keycloak}{path}"))
            }
            _ if certificates(held) != certificates(&served) => Err(format!(
                "its IdP metadata holds other signing certificates than Keycloak serves at Service {keycloak}{path}"
            )),
            (Some(h), _) => {
                Ok(format!("enabled, its fields as the plan sets them, IdP entity {h} as Keycloak serves it"))
            }
        },
    };
    c.outcome("rancher", subject, result);
    Ok(())
}

/// The `entityID` of SAML metadata's `EntityDescriptor`.
fn entity(metadata: &str) -> Option<&str> {
    let at = metadata.find("EntityDescriptor")?;
    let rest = &metadata[at..];
    let start = rest.find("entityID=")? + "entityID=".len();
    let quote = rest[start..].chars().next()?;
    let value = &rest[start + 1..];
    value.split(quote).next()
}

/// The certificates of SAML metadata (`X509Certificate` elements, whatever their prefix), spaces
/// dropped.
fn certificates(metadata: &str) -> Vec<String> {
    metadata
        .split("X509Certificate>")
        .skip(1)
        .step_by(2)
        .filter_map(|s| s.split('<').next())
        .map(|c| c.split_whitespace().collect())
        .collect()
}
