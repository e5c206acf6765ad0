//! The ConfigMaps and Secrets that the plan's pods read, as they are now: a key deleted after the
//! install stops the next pod that starts (CreateContainerConfigError) long before anyone looks,
//! so each workload's references are checked against the live objects. `optional: true`
//! references are exempt, as the kubelet exempts them.

use serde_yaml_ng::Value;

use super::check::Checks;
use super::live::Snapshot;
use super::objects::Object;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConfigMap,
    Secret,
}

/// One reference of a pod spec: a whole object, or one key of it; `at` says where the pod names it.
#[derive(Debug)]
struct Reference {
    kind: Kind,
    name: String,
    key: Option<String>,
    at: String,
}

pub fn check(c: &mut Checks, objects: &[Object<'_>], live: &Snapshot) {
    for o in objects {
        let Some(spec) = o.pod_spec() else { continue };
        c.at(Some(o.step));
        let refs = references(spec);
        if refs.is_empty() {
            continue;
        }
        let problems: Vec<String> = refs.iter().filter_map(|r| missing(r, &o.namespace, live)).collect();
        let subject = format!("references of {}", o.id());
        match problems.is_empty() {
            true => c.ok("references", subject, format!("{} ConfigMap and Secret reference(s) resolve", refs.len())),
            false => c.failed("references", subject, problems.join("; ")),
        }
    }
    c.at(None);
}

fn missing(r: &Reference, namespace: &str, live: &Snapshot) -> Option<String> {
    let (kind, keys) = match r.kind {
        Kind::ConfigMap => ("ConfigMap", live.configmap_keys(namespace, &r.name)),
        Kind::Secret => ("Secret", live.secret_keys(namespace, &r.name)),
    };
    match (keys, &r.key) {
        (None, _) => Some(format!("{kind} {namespace}/{} does not exist ({})", r.name, r.at)),
        (Some(keys), Some(key)) if !keys.contains(key) => {
            Some(format!("{kind} {namespace}/{} has no key {key} ({})", r.name, r.at))
        }
        _ => None,
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

fn optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_sequence).into_iter().flatten()
}

/// Every ConfigMap and Secret a pod spec needs: its containers' env and envFrom, its volumes
/// (projected sources too, with their items' keys) and its image pull secrets.
fn references(spec: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut add = |kind, name: Option<&str>, key: Option<&str>, at: String| {
        if let Some(name) = name {
            out.push(Reference { kind, name: name.to_string(), key: key.map(str::to_string), at });
        }
    };
    for container in list(spec, "initContainers").chain(list(spec, "containers")) {
        let cname = text(container, &["name"]).unwrap_or("?");
        for env in list(container, "env") {
            let var = text(env, &["name"]).unwrap_or("?");
            for (field, kind) in [("configMapKeyRef", Kind::ConfigMap), ("secretKeyRef", Kind::Secret)] {
                if let Some(r) = env.get("valueFrom").and_then(|v| v.get(field)).filter(|r| !optional(r)) {
                    let at = format!("container {cname}, env {var}");
                    add(kind, text(r, &["name"]), text(r, &["key"]), at);
                }
            }
        }
        for from in list(container, "envFrom") {
            for (field, kind) in [("configMapRef", Kind::ConfigMap), ("secretRef", Kind::Secret)] {
                if let Some(r) = from.get(field).filter(|r| !optional(r)) {
                    add(kind, text(r, &["name"]), None, format!("container {cname}, envFrom"));
                }
            }
        }
    }
    for volume in list(spec, "volumes") {
        let vname = text(volume, &["name"]).unwrap_or("?");
        let sources =
            [(volume.get("configMap"), Kind::ConfigMap, "name"), (volume.get("secret"), Kind::Secret, "secretName")];
        let projected = list(volume.get("projected").unwrap_or(&Value::Null), "sources")
            .flat_map(|s| [(s.get("configMap"), Kind::ConfigMap, "name"), (s.get("secret"), Kind::Secret, "name")]);
        for (source, kind, name_field) in sources.into_iter().chain(projected) {
            let Some(source) = source.filter(|s| !optional(s)) else { continue };
            let name = text(source, &[name_field]);
            let items: Vec<&str> = list(source, "items").filter_map(|i| text(i, &["key"])).collect();
            let at = format!("volume {vname}");
            if items.is_empty() {
                add(kind, name, None, at);
            } else {
                for key in items {
                    add(kind, name, Some(key), at.clone());
                }
            }
        }
    }
    for secret in list(spec, "imagePullSecrets") {
        add(Kind::Secret, text(secret, &["name"]), None, "imagePullSecrets".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_reference_is_found_and_optional_ones_are_left_out() {
        let spec: Value = serde_yaml_ng::from_str(
            "containers:\n- name: app\n  env:\n  - {name: A, valueFrom: {secretKeyRef: {name: creds, key: password}}}\n  - {name: B, valueFrom: {configMapKeyRef: {name: settings, key: b, optional: true}}}\n  envFrom:\n  - configMapRef: {name: global}\nvolumes:\n- {name: certs, secret: {secretName: tls, items: [{key: tls.crt, path: c}]}}\n- {name: p, projected: {sources: [{configMap: {name: share}}]}}\nimagePullSecrets: [{name: pull}]\n",
        )
        .unwrap();
        let found: Vec<String> =
            references(&spec).iter().map(|r| format!("{:?} {} {:?} ({})", r.kind, r.name, r.key, r.at)).collect();
        assert_eq!(
            found,
            [
                "Secret creds Some(\"password\") (container app, env A)",
                "ConfigMap global None (container app, envFrom)",
                "Secret tls Some(\"tls.crt\") (volume certs)",
                "ConfigMap share None (volume p)",
                "Secret pull None (imagePullSecrets)",
            ]
        );
    }
}
