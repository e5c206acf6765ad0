//! A ConfigMap volume the post-renderer adds to a rendered pod spec, mounted into every container:
//! what the site CA and a release's `files` both do. Adding it again replaces what an earlier pass
//! added under the same volume name, so a second pass changes nothing.

use anyhow::{bail, Context, Result};
use serde_yaml_ng::{Mapping, Value};

/// Adds volume `volume` of ConfigMap `configmap` to `pod_spec` and gives every container (init
/// containers too) `mounts` of it, then calls `each` with the container.
pub fn mount_configmap(
    pod_spec: &mut Value,
    volume: &str,
    configmap: &str,
    mounts: &[Value],
    mut each: impl FnMut(&mut Mapping) -> Result<()>,
) -> Result<()> {
    let Some(spec) = pod_spec.as_mapping_mut() else { bail!("a pod spec that is not a mapping") };
    let entry = serde_yaml_ng::to_value(serde_json::json!({"name": volume, "configMap": {"name": configmap}}))?;
    let volumes = sequence(spec, "volumes")?;
    volumes.retain(|v| v.get("name").and_then(Value::as_str) != Some(volume));
    volumes.push(entry);
    for c in kubemanifests::pods::containers_mut(pod_spec) {
        let listed = sequence(c, "volumeMounts")?;
        listed.retain(|m| m.get("name").and_then(Value::as_str) != Some(volume));
        listed.extend(mounts.iter().cloned());
        each(c)?;
    }
    Ok(())
}

/// The list under `key`, made when absent.
pub fn sequence<'a>(map: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>> {
    let entry = map.entry(key.into()).or_insert(Value::Sequence(Vec::new()));
    if entry.is_null() {
        *entry = Value::Sequence(Vec::new());
    }
    entry.as_sequence_mut().with_context(|| format!("{key} is not a list"))
}
