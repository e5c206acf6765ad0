//! Where the plan imports a cluster into Rancher, Rancher lists it as registered and Ready. The
//! import is what the plan's objects say: a Rancher `Cluster` (`provisioning.cattle.io` or
//! `management.cattle.io`), rendered as a step's own object or among the objects an `http` step
//! applies to the cluster whose API it calls (Rancher's, another cluster of the plan). Rancher is
//! asked where that object lands.

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
