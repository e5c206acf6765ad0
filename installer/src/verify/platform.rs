//! Facts about well-known servers the plan runs, found in its rendered objects by their own
//! conventions rather than by chart or release names:
//! - Keycloak: a container whose HTTP probe asks `<base>/realms/master` (how Keycloak's images are
//!   probed). Each realm the plan's objects define for it must answer at `<base>/realms/<name>`.
//! - Spring Cloud Config Server: a container with `SPRING_CLOUD_CONFIG_SERVER_GIT_URI` (its own
//!   setting) pointing at a repository the bundle carries. Each `.properties` file of that
//!   repository must be served, at `<context>/*/<profile>/<label>/<file>`, with all its keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Client, ResourceExt};
use serde_yaml_ng::Value;

use super::check::Checks;
use super::live::{has_labels, Snapshot};
use super::objects::Object;
use super::proxy::{self, Judge, Probe, Target};
use crate::plan::Carried;
use crate::registry_client::RegistryClient;

const REALM_PROBE: &str = "/realms/master";
const CONFIG_GIT_URI: &str = "SPRING_CLOUD_CONFIG_SERVER_GIT_URI";
const CONFIG_LABEL: &str = "SPRING_CLOUD_CONFIG_SERVER_GIT_DEFAULTLABEL";

/// A server container of the plan: the workload, the container, and the Service that reaches it.
struct Served<'a> {
    object: &'a Object<'a>,
    container: &'a Value,
    service: String,
    port: i32,
    probe_path: String,
}

impl Served<'_> {
    /// A GET of `path` on the server's Service.
    fn probe(&self, kind: &'static str, subject: String, path: String, judge: Judge) -> Probe {
        Probe {
            step: Some(self.object.step.to_string()),
            kind,
            subject,
            target: Target {
                namespace: self.object.namespace.clone(),
                service: self.service.clone(),
                port: self.port.to_string(),
                https: false,
                path,
                host: None,
            },
            judge,
        }
    }
}

pub async fn check(
    c: &mut Checks,
    client: &Client,
    objects: &[Object<'_>],
    live: &Snapshot,
    registry: &RegistryClient,
    carried: &Carried,
    work: &Path,
) -> Result<()> {
    let mut probes = Vec::new();
    keycloak(c, objects, live, &mut probes);
    config_servers(c, objects, live, registry, carried, work, &mut probes)?;
    proxy::run_all(client, probes, c).await;
    Ok(())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

fn seq<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_sequence).into_iter().flatten()
}

/// Every container of the plan with an HTTP probe whose path passes `wanted`, and the Service
/// port that reaches the probed port.
fn served<'a>(objects: &'a [Object<'a>], live: &Snapshot, wanted: &dyn Fn(&Value, &str) -> bool) -> Vec<Served<'a>> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = o.pod_spec() else { continue };
        let labels: BTreeMap<String, String> = o
            .field(&["spec", "template", "metadata", "labels"])
            .and_then(|l| serde_yaml_ng::from_value(l.clone()).ok())
            .unwrap_or_default();
        for container in seq(spec, "containers") {
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let Some(get) = container.get(probe).and_then(|p| p.get("httpGet")) else { continue };
                let Some(path) = text(get, &["path"]).filter(|p| wanted(container, p)) else { continue };
                let port = get.get("port");
                let (number, name) = match port {
                    Some(Value::Number(n)) => (n.as_i64().map(|n| n as i32), None),
                    Some(Value::String(s)) => {
                        let number = seq(container, "ports")
                            .find(|p| text(p, &["name"]) == Some(s))
                            .and_then(|p| p.get("containerPort")?.as_i64())
                            .map(|n| n as i32);
                        (number, Some(s.clone()))
                    }
                    _ => (None, None),
                };
                if let Some((service, port)) = service_for(&o.namespace, &labels, number, name.as_deref(), live) {
                    out.push(Served { object: o, container, service, port, probe_path: path.to_string() });
                }
                break;
            }
        }
    }
    out
}

/// The Service of the namespace that selects these pod labels and sends a port to the container
/// port (by number or name).
fn service_for(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    number: Option<i32>,
    name: Option<&str>,
    live: &Snapshot,
) -> Option<(String, i32)> {
    live.services.iter().filter(|s| s.namespace().as_deref() == Some(namespace)).find_map(|s| {
        let spec = s.spec.as_ref()?;
        let selector = spec.selector.as_ref().filter(|sel| !sel.is_empty())?;
        if !has_labels(labels, selector) {
            return None;
        }
        let port = spec.ports.iter().flatten().find(|p| match &p.target_port {
            Some(IntOrString::Int(t)) => Some(*t) == number,
            Some(IntOrString::String(t)) => Some(t.as_str()) == name,
            None => Some(p.port) == number,
        })?;
        Some((s.name_any(), port.port))
    })
}

fn keycloak(c: &mut Checks, objects: &[Object<'_>], live: &Snapshot, probes: &mut Vec<Probe>) {
    let servers = served(objects, live, &|_, path| path.ends_with(REALM_PROBE));
    if servers.is_empty() {
        c.skipped("keycloak", "Keycloak realms", "no container of the plan is probed at <base>/realms/master");
        return;
    }
    for s in servers {
        let base = s.probe_path.trim_end_matches(REALM_PROBE);
        let mut realms = BTreeSet::from(["master".to_string()]);
        realms.extend(defined_realms(objects, &s.object.namespace));
        for realm in realms {
            let wanted = realm.clone();
            probes.push(s.probe(
                "keycloak",
                format!("Keycloak realm {realm} ({})", s.object.id()),
                format!("{base}/realms/{realm}"),
                Box::new(move |a| {
                    let named = serde_json::from_slice::<serde_json::Value>(&a.body)
                        .ok()
                        .and_then(|v| v["realm"].as_str().map(str::to_string));
                    match (a.status, named) {
                        (200, Some(n)) if n != wanted => Err(format!("answered with realm {n}, not {wanted}")),
                        (200, _) => Ok(format!("realm {wanted} answers")),
                        (s, _) => Err(format!("answered {s}: {}", a.excerpt())),
                    }
                }),
            ));
        }
    }
}

/// The realms the plan's ConfigMaps in Keycloak's namespace define: a realm document (Keycloak's
/// export format, `realm: <name>`), or a map of realm name to its roles, clients or users (the
/// format realm-initialising jobs read).
fn defined_realms(objects: &[Object<'_>], namespace: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let configmaps = objects.iter().filter(|o| o.kind == "ConfigMap" && o.namespace == namespace);
    for data in configmaps.filter_map(|o| o.field(&["data"]).and_then(Value::as_mapping)) {
        for text in data.values().filter_map(Value::as_str) {
            let Ok(Value::Mapping(doc)) = serde_yaml_ng::from_str::<Value>(text) else { continue };
            if let Some(realm) = doc.get("realm").and_then(Value::as_str) {
                out.insert(realm.to_string());
                continue;
            }
            let realm_like = |v: &Value| ["roles", "clients", "users"].iter().any(|k| v.get(*k).is_some());
            if !doc.is_empty() && doc.values().all(realm_like) {
                out.extend(doc.keys().filter_map(Value::as_str).map(str::to_string));
            }
        }
    }
    out
}

fn config_servers(
    c: &mut Checks,
    objects: &[Object<'_>],
    live: &Snapshot,
    registry: &RegistryClient,
    carried: &Carried,
    work: &Path,
    probes: &mut Vec<Probe>,
) -> Result<()> {
    let servers =
        served(objects, live, &|container, _| seq(container, "env").chain(seq(container, "envFrom")).next().is_some());
    let servers: Vec<(Served<'_>, String)> = servers
        .into_iter()
        .filter_map(|s| live.env(&s.object.namespace, s.container, CONFIG_GIT_URI).map(|uri| (s, uri)))
        .collect();
    if servers.is_empty() {
        c.skipped("config", "Spring Cloud Config servers", format!("no container of the plan sets {CONFIG_GIT_URI}"));
        return Ok(());
    }
    for (s, uri) in servers {
        c.at(Some(s.object.step));
        let subject = format!("config server {}", s.object.id());
        // The site registry serves carried repositories at /git/<repository>.git.
        let repository = uri.split_once("/git/").map(|(_, r)| r.trim_end_matches(".git").to_lowercase());
        let carried_ref = repository
            .as_ref()
            .and_then(|r| carried.git.iter().find(|g| g.rsplit_once(':').is_some_and(|(repo, _)| repo == r)));
        let Some(carried_ref) = carried_ref else {
            c.failed("config", subject, format!("{CONFIG_GIT_URI} is {uri}, not a repository the bundle carries"));
            continue;
        };
        let label = live
            .env(&s.object.namespace, s.container, CONFIG_LABEL)
            .unwrap_or_else(|| carried_ref.rsplit_once(':').map(|(_, r)| r.to_string()).unwrap_or_default());
        let clone = work.join("verify-git").join(carried_ref.replace(['/', ':'], "_"));
        if !clone.exists() {
            registry.clone_git(carried_ref, &clone)?;
        }
        let mut files: Vec<_> = std::fs::read_dir(&clone)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "properties"))
            .collect();
        files.sort();
        if files.is_empty() {
            c.skipped("config", subject, format!("{carried_ref} has no .properties file to ask for"));
            continue;
        }
        // The probe asks the server's environment endpoint, `<context>/{application}/{profile}`.
        let context = s.probe_path.rsplitn(3, '/').nth(2).unwrap_or("").to_string();
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".properties");
            let profile = stem.rsplit_once('-').map_or("default", |(_, p)| p).to_string();
            let keys = property_keys(&std::fs::read_to_string(&file)?);
            probes.push(s.probe(
                "config",
                format!("{name} from config server {}", s.object.id()),
                format!("{context}/*/{profile}/{label}/{name}"),
                Box::new(move |a| {
                    if a.status != 200 {
                        return Err(format!("answered {}: {}", a.status, a.excerpt()));
                    }
                    let served = property_keys(&String::from_utf8_lossy(&a.body));
                    let missing: Vec<&String> = keys.difference(&served).collect();
                    match missing.as_slice() {
                        [] => Ok(format!("serves all {} properties of the carried file", keys.len())),
                        m => Err(format!(
                            "serves it without {} of its {} properties ({})",
                            m.len(),
                            keys.len(),
                            m.iter().take(5).map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                        )),
                    }
                }),
            ));
        }
    }
    c.at(None);
    Ok(())
}

/// The keys of a Java properties text: `key=value`, `key: value` or `key value`, comments and
/// continuation lines left out.
fn property_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut continued = false;
    for line in text.lines() {
        let line = line.trim_start();
        let was_continued = continued;
        continued = line.ends_with('\\') && !line.ends_with("\\\\");
        if was_continued || line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut key = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => key.extend(chars.next()),
                '=' | ':' => break,
                ch if ch.is_whitespace() => break,
                ch => key.push(ch),
            }
        }
        keys.insert(key);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_keys_read_as_java_reads_them() {
        let keys = property_keys("# c\n! c\na=1\nb : 2\nc 3\nd.e=x\\\n  continued=no\nf\\=g=1\n\n");
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d.e", "f=g"]);
    }
}
