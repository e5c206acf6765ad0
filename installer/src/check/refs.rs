//! What one rendered object needs to exist before it can start: the ConfigMaps, Secrets (and
//! their keys), claims, classes, accounts, roles, gateways and services it names. Each reference
//! keeps the field it comes from, relative to the pod spec for pod templates (`volumes[2].secret`)
//! and to the object otherwise (`spec.storageClassName`). References marked `optional: true` are
//! left out: the pod starts without them.

use std::collections::BTreeMap;
use std::fmt;

use serde_yaml_ng::Value;

/// An object by group, kind, namespace (None when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Id {
    pub fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Id {
        Id { group: group.into(), kind: kind.into(), namespace: namespace.map(str::to_string), name: name.into() }
    }
}

/// `Kind/namespace/name`, or `Kind/name` when cluster-scoped.
impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// An object, and the key of its data the reference reads, if any.
    Object { id: Id, key: Option<String> },
    /// No class is named, so the cluster's default one of this kind must exist.
    DefaultClass { group: &'static str, kind: &'static str },
    /// Pods whose labels include these (what a Service selects).
    Pods { namespace: String, selector: BTreeMap<String, String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub field: String,
    pub need: Need,
    /// Wanting it does not stop the object from starting (a pull secret, a Service without
    /// endpoints), but something will not work.
    pub warning: bool,
}

const CORE: &str = "";
const STORAGE: &str = "storage.k8s.io";
const NETWORKING: &str = "networking.k8s.io";
const RBAC: &str = "rbac.authorization.k8s.io";
pub const ISTIO: &str = "networking.istio.io";

/// Objects every cluster has from the start.
pub fn built_in(id: &Id) -> bool {
    match (id.group.as_str(), id.kind.as_str()) {
        (CORE, "ServiceAccount") => id.name == "default",
        ("scheduling.k8s.io", "PriorityClass") => {
            ["system-cluster-critical", "system-node-critical"].contains(&id.name.as_str())
        }
        (CORE, "Namespace") => ["default", "kube-system", "kube-public", "kube-node-lease"].contains(&id.name.as_str()),
        _ => false,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
    v.get(key).and_then(Value::as_sequence).into_iter().flatten().enumerate()
}

/// Where each kind that runs pods keeps its pod template, and the template's labels.
pub fn pod_template<'a>(doc: &'a Value, kind: &str) -> Option<(&'a Value, Option<&'a Value>)> {
    let path = kubemanifests::pods::pod_spec_path(kind)?;
    let spec = path.iter().try_fold(doc, |v, k| v.get(*k))?;
    let meta = path[..path.len() - 1].iter().try_fold(doc, |v, k| v.get(*k))?.get("metadata");
    Some((spec, meta.and_then(|m| m.get("labels"))))
}

/// Every reference `doc` makes; `namespace` is where it lands (None when cluster-scoped).
pub fn of(doc: &Value, kind: &str, namespace: Option<&str>) -> Vec<Ref> {
    let mut out = Refs { namespace: namespace.unwrap_or_default(), out: Vec::new() };
    if let Some((spec, _)) = pod_template(doc, kind) {
        out.pod_spec(spec);
    }
    let spec = doc.get("spec").unwrap_or(&Value::Null);
    match kind {
        "StatefulSet" => {
            for (i, claim) in items(spec, "volumeClaimTemplates") {
                out.storage_class(claim, &format!("volumeClaimTemplates[{i}].spec.storageClassName"));
            }
        }
        "PersistentVolumeClaim" => out.storage_class(doc, "spec.storageClassName"),
        "Ingress" => out.ingress_class(doc),
        "VirtualService" => {
            for (i, g) in items(spec, "gateways") {
                let Some(g) = g.as_str().filter(|g| *g != "mesh") else { continue };
                let (ns, name) = g.split_once('/').unwrap_or((out.namespace, g));
                out.object(&format!("spec.gateways[{i}]"), Id::new(ISTIO, "Gateway", Some(ns), name), None);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let role = doc.get("roleRef").unwrap_or(&Value::Null);
            if let (Some(role_kind @ ("Role" | "ClusterRole")), Some(name)) = (text(role, "kind"), text(role, "name")) {
                let ns = (role_kind == "Role").then_some(out.namespace);
                // A binding to a missing role is made, and grants nothing: the pods start.
                out.push("roleRef", Id::new(RBAC, role_kind, ns, name), None, true);
            }
        }
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            for (i, hook) in items(doc, "webhooks") {
                let service = hook.get("clientConfig").and_then(|c| c.get("service")).unwrap_or(&Value::Null);
                if let (Some(ns), Some(name)) = (text(service, "namespace"), text(service, "name")) {
                    out.object(
                        &format!("webhooks[{i}].clientConfig.service"),
                        Id::new(CORE, "Service", Some(ns), name),
                        None,
                    );
                }
            }
        }
        "Service" => {
            let selector: BTreeMap<String, String> = spec
                .get("selector")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect();
            if !selector.is_empty() && text(spec, "type") != Some("ExternalName") {
                let need = Need::Pods { namespace: out.namespace.to_string(), selector };
                out.out.push(Ref { field: "spec.selector".into(), need, warning: true });
            }
        }
        _ => {}
    }
    out.out
}

struct Refs<'a> {
    namespace: &'a str,
    out: Vec<Ref>,
}

impl Refs<'_> {
    fn object(&mut self, field: &str, id: Id, key: Option<&str>) {
        self.push(field, id, key, false);
    }

    fn push(&mut self, field: &str, id: Id, key: Option<&str>, warning: bool) {
        let need = Need::Object { id, key: key.map(str::to_string) };
        self.out.push(Ref { field: field.into(), need, warning });
    }

    fn here(&self, kind: &str, name: &str) -> Id {
        Id::new(CORE, kind, Some(self.namespace), name)
    }

    fn pod_spec(&mut self, spec: &Value) {
        for field in ["serviceAccountName", "serviceAccount"] {
            if let Some(sa) = text(spec, field) {
                self.object(field, self.here("ServiceAccount", sa), None);
                break;
            }
        }
        if let Some(p) = text(spec, "priorityClassName") {
            self.object("priorityClassName", Id::new("scheduling.k8s.io", "PriorityClass", None, p), None);
        }
        if let Some(r) = text(spec, "runtimeClassName") {
            self.object("runtimeClassName", Id::new("node.k8s.io", "RuntimeClass", None, r), None);
        }
        for (i, s) in items(spec, "imagePullSecrets") {
            if let Some(name) = text(s, "name") {
                self.push(&format!("imagePullSecrets[{i}]"), self.here("Secret", name), None, true);
            }
        }
        for (i, v) in items(spec, "volumes") {
            let at = format!("volumes[{i}]");
            self.data_volume(v.get("configMap"), "ConfigMap", "name", &format!("{at}.configMap"));
            self.data_volume(v.get("secret"), "Secret", "secretName", &format!("{at}.secret"));
            for (j, source) in items(v.get("projected").unwrap_or(&Value::Null), "sources") {
                let at = format!("{at}.projected.sources[{j}]");
                self.data_volume(source.get("configMap"), "ConfigMap", "name", &format!("{at}.configMap"));
                self.data_volume(source.get("secret"), "Secret", "name", &format!("{at}.secret"));
            }
            if let Some(claim) = v.get("persistentVolumeClaim").and_then(|c| text(c, "claimName")) {
                self.object(&format!("{at}.persistentVolumeClaim"), self.here("PersistentVolumeClaim", claim), None);
            }
        }
        for (list, i, c) in kubemanifests::pods::containers(spec) {
            self.container(c, &format!("{list}[{i}]"));
        }
    }

    /// A configMap or secret volume (or projected source): the object, and each key of `items`.
    fn data_volume(&mut self, source: Option<&Value>, kind: &str, name_field: &str, at: &str) {
        let Some(source) = source.filter(|s| !optional(s)) else { return };
        let Some(name) = text(source, name_field) else { return };
        self.object(at, self.here(kind, name), None);
        for (k, item) in items(source, "items") {
            if let Some(key) = text(item, "key") {
                self.object(&format!("{at}.items[{k}]"), self.here(kind, name), Some(key));
            }
        }
    }

    fn container(&mut self, c: &Value, at: &str) {
        for (i, from) in items(c, "envFrom") {
            for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                let Some(r) = from.get(field).filter(|r| !optional(r)) else { continue };
                if let Some(name) = text(r, "name") {
                    self.object(&format!("{at}.envFrom[{i}].{field}"), self.here(kind, name), None);
                }
            }
        }
        for (i, var) in items(c, "env") {
            let Some(from) = var.get("valueFrom") else { continue };
            for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
                let Some(r) = from.get(field).filter(|r| !optional(r)) else { continue };
                if let Some(name) = text(r, "name") {
                    self.object(&format!("{at}.env[{i}].valueFrom.{field}"), self.here(kind, name), text(r, "key"));
                }
            }
        }
    }

    /// A claim's class: named (`""` asks for none), or the cluster default.
    fn storage_class(&mut self, claim: &Value, field: &str) {
        let spec = claim.get("spec").unwrap_or(&Value::Null);
        let annotation = claim
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| text(a, "volume.beta.kubernetes.io/storage-class"));
        match spec.get("storageClassName").and_then(Value::as_str).or(annotation) {
            Some("") => {}
            Some(class) => self.object(field, Id::new(STORAGE, "StorageClass", None, class), None),
            None => self.out.push(Ref {
                field: field.into(),
                need: Need::DefaultClass { group: STORAGE, kind: "StorageClass" },
                warning: false,
            }),
        }
    }

    /// An Ingress's class: named, picked by the older annotation (which a controller matches by
    /// its own flag, so no object is needed), or the cluster default.
    fn ingress_class(&mut self, doc: &Value) {
        let spec = doc.get("spec").unwrap_or(&Value::Null);
        let annotated =
            doc.get("metadata").and_then(|m| m.get("annotations")).and_then(|a| text(a, "kubernetes.io/ingress.class"));
        match text(spec, "ingressClassName") {
            Some(class) => self.object("spec.ingressClassName", Id::new(NETWORKING, "IngressClass", None, class), None),
            None if annotated.is_some() => {}
            None => self.out.push(Ref {
                field: "spec.ingressClassName".into(),
                need: Need::DefaultClass { group: NETWORKING, kind: "IngressClass" },
                warning: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    fn fields(doc: &Value, kind: &str) -> Vec<String> {
        of(doc, kind, Some("ns"))
            .iter()
            .map(|r| match &r.need {
                Need::Object { id, key } => {
                    format!("{} {id}{}", r.field, key.as_ref().map(|k| format!(" [{k}]")).unwrap_or_default())
                }
                Need::DefaultClass { kind, .. } => format!("{} default {kind}", r.field),
                Need::Pods { selector, .. } => format!("{} pods {selector:?}", r.field),
            })
            .collect()
    }

    #[test]
    fn a_pod_template_names_its_data_claims_classes_and_account() {
        let d = yaml(
            r#"
spec:
  template:
    spec:
      serviceAccountName: sa
      priorityClassName: high
      runtimeClassName: gvisor
      imagePullSecrets: [{name: pull}]
      volumes:
        - {name: a, configMap: {name: cm, items: [{key: k1, path: p}]}}
        - {name: b, secret: {secretName: s, optional: true}}
        - name: c
          projected: {sources: [{configMap: {name: pc}}, {secret: {name: ps, items: [{key: k2, path: q}]}}, {serviceAccountToken: {path: t}}]}
        - {name: d, persistentVolumeClaim: {claimName: data}}
      initContainers: [{name: i, envFrom: [{secretRef: {name: init-env}}]}]
      containers:
        - name: c
          envFrom: [{configMapRef: {name: env, optional: true}}, {configMapRef: {name: env2}}]
          env:
            - {name: A, value: x}
            - {name: B, valueFrom: {secretKeyRef: {name: db, key: password}}}
            - {name: C, valueFrom: {configMapKeyRef: {name: db-cm, key: host, optional: true}}}
            - {name: D, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
"#,
        );
        assert_eq!(
            fields(&d, "Deployment"),
            [
                "serviceAccountName ServiceAccount/ns/sa",
                "priorityClassName PriorityClass/high",
                "runtimeClassName RuntimeClass/gvisor",
                "imagePullSecrets[0] Secret/ns/pull",
                "volumes[0].configMap ConfigMap/ns/cm",
                "volumes[0].configMap.items[0] ConfigMap/ns/cm [k1]",
                "volumes[2].projected.sources[0].configMap ConfigMap/ns/pc",
                "volumes[2].projected.sources[1].secret Secret/ns/ps",
                "volumes[2].projected.sources[1].secret.items[0] Secret/ns/ps [k2]",
                "volumes[3].persistentVolumeClaim PersistentVolumeClaim/ns/data",
                "initContainers[0].envFrom[0].secretRef Secret/ns/init-env",
                "containers[0].envFrom[1].configMapRef ConfigMap/ns/env2",
                "containers[0].env[1].valueFrom.secretKeyRef Secret/ns/db [password]",
            ]
        );
        let pull = of(&d, "Deployment", Some("ns")).into_iter().find(|r| r.field.starts_with("imagePull")).unwrap();
        assert!(pull.warning, "a missing pull secret does not stop the pod");
    }

    #[test]
    fn other_kinds_name_classes_gateways_roles_and_services() {
        let sts = yaml("spec:\n  template: {spec: {containers: []}}\n  volumeClaimTemplates:\n    - {spec: {storageClassName: fast}}\n    - {spec: {}}\n    - {spec: {storageClassName: ''}}\n");
        assert_eq!(
            fields(&sts, "StatefulSet"),
            [
                "volumeClaimTemplates[0].spec.storageClassName StorageClass/fast",
                "volumeClaimTemplates[1].spec.storageClassName default StorageClass"
            ]
        );
        assert_eq!(
            fields(&yaml("spec: {ingressClassName: nginx}"), "Ingress"),
            ["spec.ingressClassName IngressClass/nginx"]
        );
        assert_eq!(fields(&yaml("spec: {}"), "Ingress"), ["spec.ingressClassName default IngressClass"]);
        let annotated = yaml("metadata: {annotations: {kubernetes.io/ingress.class: nginx}}\nspec: {}");
        assert!(fields(&annotated, "Ingress").is_empty());
        assert_eq!(
            fields(&yaml("spec: {gateways: [mesh, public, istio-system/internal]}"), "VirtualService"),
            ["spec.gateways[1] Gateway/ns/public", "spec.gateways[2] Gateway/istio-system/internal"]
        );
        assert_eq!(fields(&yaml("roleRef: {kind: Role, name: r}"), "RoleBinding"), ["roleRef Role/ns/r"]);
        assert_eq!(
            fields(&yaml("roleRef: {kind: ClusterRole, name: r}"), "ClusterRoleBinding"),
            ["roleRef ClusterRole/r"]
        );
        assert_eq!(
            fields(&yaml("webhooks: [{clientConfig: {service: {namespace: w, name: hook}}}, {clientConfig: {url: 'https://x'}}]"), "ValidatingWebhookConfiguration"),
            ["webhooks[0].clientConfig.service Service/w/hook"]
        );
        assert_eq!(fields(&yaml("spec: {selector: {app: a}}"), "Service"), ["spec.selector pods {\"app\": \"a\"}"]);
        assert!(fields(&yaml("spec: {type: ExternalName, selector: {app: a}}"), "Service").is_empty());
        assert!(fields(&yaml("spec: {}"), "Service").is_empty());
    }
}
