//! The references of the plan's objects, as the cluster holds them now: a ConfigMap, Secret (or
//! one of its keys), account, claim or class removed after the install stops the next pod that
//! starts (CreateContainerConfigError), long before anyone looks. Which references an object
//! makes is `install plan`'s own reading (`check::refs`); here each is looked up live.

use anyhow::Result;
use kube::Client;

use super::check::Checks;
use super::objects::Object;
use crate::check::refs::{self, Need};
use crate::check::Live;

pub async fn check(c: &mut Checks, client: &Client, objects: &[Object<'_>]) -> Result<()> {
    let live = Live::new(client.clone()).await?;
    for o in objects {
        // What may be missing without stopping anything (a pull secret, a Service's pods) is
        // left to the checks of what it affects.
        let needed: Vec<_> = refs::of(o.doc, o.kind, Some(&o.namespace)).into_iter().filter(|r| !r.warning).collect();
        let objects_needed: Vec<_> = needed
            .iter()
            .filter_map(|r| match &r.need {
                Need::Object { id, key } => Some((r, id, key)),
                _ => None,
            })
            .collect();
        if objects_needed.is_empty() {
            continue;
        }
        c.at(Some(o.step));
        let mut problems = Vec::new();
        for (r, id, key) in &objects_needed {
            let what = match &id.namespace {
                Some(ns) => format!("{} {ns}/{}", id.kind, id.name),
                None => format!("{} {}", id.kind, id.name),
            };
            match (live.get(id).await?, key) {
                (None, _) if !refs::built_in(id) => problems.push(format!("{what} does not exist ({})", r.field)),
                (Some(found), Some(key)) if !found.keys.contains(key) => {
                    problems.push(format!("{what} has no key {key} ({})", r.field))
                }
                _ => {}
            }
        }
        let subject = format!("references of {}", o.id());
        match problems.is_empty() {
            true => c.ok("references", subject, format!("{} reference(s) resolve", objects_needed.len())),
            false => c.failed("references", subject, problems.join("; ")),
        }
    }
    c.at(None);
    Ok(())
}
