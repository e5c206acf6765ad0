//! What a finished install should hold: every object the plan's steps render for one cluster,
//! each with the namespace it was applied to. Hooks are left out: they ran, and their delete
//! policies removed them, when their step was applied (a step whose hook failed is not `done`).

use serde_yaml_ng::Value;

use crate::hooks;
use crate::render::{Action, Rendered};

pub struct Object<'a> {
    pub step: &'a str,
    pub doc: &'a Value,
    pub kind: &'a str,
    pub api_version: &'a str,
    /// Where a namespaced object went: its own, else the step's (the release's, or the
    /// manifest's default). Meaningless for cluster-wide kinds.
    pub namespace: String,
    pub name: &'a str,
}

impl Object<'_> {
    /// `Deployment hello/hello-hello`, as messages name objects.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// The pod spec of a kind that runs pods.
    pub fn pod_spec(&self) -> Option<&Value> {
        kubemanifests::pods::pod_spec(self.doc)
    }

    pub fn field(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self.doc, |v, k| v.get(*k))
    }
}

/// The objects of every step that runs on this site and that `done` says is done, in the plan's
/// order.
pub fn of_steps<'a>(rendered: &'a [Rendered<'a>], done: &dyn Fn(&str) -> bool) -> Vec<Object<'a>> {
    let mut out = Vec::new();
    for r in rendered.iter().filter(|r| r.skipped.is_none() && done(&r.step.id)) {
        let default_ns = match (&r.action, r.step.helm()) {
            (Action::Helm(_), Some(h)) => h.namespace.as_str(),
            (Action::Objects { namespace: Some(ns), .. }, _) => ns.as_str(),
            _ => "default",
        };
        for doc in r.docs.iter().filter(|d| !hooks::is_hook(d)) {
            let text = |path: &[&str]| path.iter().try_fold(doc, |v, k| v.get(*k)).and_then(Value::as_str);
            let (Some(kind), Some(api_version), Some(name)) =
                (text(&["kind"]), text(&["apiVersion"]), text(&["metadata", "name"]))
            else {
                continue;
            };
            let namespace = text(&["metadata", "namespace"]).unwrap_or(default_ns).to_string();
            out.push(Object { step: &r.step.id, doc, kind, api_version, namespace, name });
        }
    }
    out
}
