//! Which objects a plan makes, step by step: rendered objects (a release's pre-install hooks apart,
//! which run before the rest of it), the copies a step makes before its action, and what a step
//! declares it provides. Answers what a reference made at some step and phase can see.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::refs::Id;

/// When, inside its step, an object appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The step's `copy` entries, done before its action.
    Copy,
    /// A release's pre-install hooks: helm runs them before it creates the release's objects.
    PreInstall,
    /// Everything else of the step (and what it provides).
    Main,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub step: usize,
    pub phase: Phase,
    /// The keys of its data (ConfigMap, Secret); None when unknown (any key is taken).
    pub keys: Option<BTreeSet<String>>,
    /// Marked as its kind's default class.
    pub default_class: bool,
}

#[derive(Default)]
pub struct Inventory {
    defs: BTreeMap<Id, Vec<Definition>>,
    /// (namespace, labels) of every pod template of the plan.
    templates: Vec<(String, BTreeMap<String, String>)>,
}

/// The keys of a ConfigMap's or Secret's data as written.
pub fn data_keys(doc: &Value) -> BTreeSet<String> {
    ["data", "binaryData", "stringData"]
        .iter()
        .filter_map(|f| doc.get(*f).and_then(Value::as_mapping))
        .flatten()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect()
}

impl Inventory {
    pub fn add(&mut self, id: Id, def: Definition) {
        self.defs.entry(id).or_default().push(def);
    }

    pub fn add_template(&mut self, namespace: &str, labels: BTreeMap<String, String>) {
        self.templates.push((namespace.to_string(), labels));
    }

    /// The latest definition of `id` a reference made at `step` in `phase` sees.
    pub fn visible(&self, id: &Id, step: usize, phase: Phase) -> Option<&Definition> {
        self.defs.get(id)?.iter().rfind(|d| d.step < step || (d.step == step && d.phase <= phase))
    }

    /// The first step after `step` (or the same step, too late in it) that makes `id`.
    pub fn later(&self, id: &Id, step: usize, phase: Phase) -> Option<usize> {
        self.defs.get(id)?.iter().filter(|d| d.step > step || (d.step == step && d.phase > phase)).map(|d| d.step).min()
    }

    pub fn default_class(&self, group: &str, kind: &str, step: usize, phase: Phase) -> bool {
        self.defs.iter().any(|(id, defs)| {
            id.group == group
                && id.kind == kind
                && defs.iter().any(|d| d.default_class && (d.step < step || (d.step == step && d.phase <= phase)))
        })
    }

    pub fn pods_match(&self, namespace: &str, selector: &BTreeMap<String, String>) -> bool {
        self.templates
            .iter()
            .any(|(ns, labels)| ns == namespace && selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}
