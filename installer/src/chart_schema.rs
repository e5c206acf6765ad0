//! Helm validates values against a chart's `values.schema.json`, and helm 3.8 fetches every
//! remote `$ref` in it over the network: offline, the install fails. Such references are
//! replaced by the empty schema (anything validates), keeping the rest of the schema in force.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

/// Rewrites `tgz` into `out` when one of its schemas names a remote `$ref`; returns the
/// references removed (empty: the chart is used as it is and `out` is not written).
pub fn make_offline(tgz: &Path, out: &Path) -> Result<Vec<String>> {
    let what = || tgz.display().to_string();
    let mut entries = Vec::new();
    let mut removed = Vec::new();
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(tgz).with_context(what)?));
    for entry in archive.entries().with_context(what)? {
        let mut entry = entry.with_context(what)?;
        let header = entry.header().clone();
        let path: PathBuf = entry.path().with_context(what)?.into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).with_context(what)?;
        if path.file_name().is_some_and(|n| n == "values.schema.json") {
            if let Ok(mut schema) = serde_json::from_slice::<Value>(&data) {
                let before = removed.len();
                drop_remote_refs(&mut schema, &mut removed);
                if removed.len() > before {
                    data = serde_json::to_vec_pretty(&schema)?;
                }
            }
        }
        entries.push((header, path, data));
    }
    if removed.is_empty() {
        return Ok(removed);
    }
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (mut header, path, data) in entries {
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, &path, &data[..])?;
    }
    std::fs::write(out, builder.into_inner()?.finish()?).with_context(|| out.display().to_string())?;
    Ok(removed)
}

fn drop_remote_refs(v: &mut Value, removed: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let remote = map
                .get("$ref")
                .and_then(Value::as_str)
                .filter(|r| r.starts_with("http://") || r.starts_with("https://"));
            if let Some(r) = remote {
                removed.push(r.to_string());
                map.clear();
                return;
            }
            map.values_mut().for_each(|c| drop_remote_refs(c, removed));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| drop_remote_refs(c, removed)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_refs_become_empty_schemas_and_local_rules_stay() {
        let mut schema = serde_json::json!({
            "$schema": "http://json-schema.org/schema#",
            "properties": {
                "a": {"$ref": "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json#/definitions/x"},
                "b": {"type": "integer"},
                "c": {"$ref": "#/definitions/local"},
            },
        });
        let mut removed = Vec::new();
        drop_remote_refs(&mut schema, &mut removed);
        assert_eq!(removed, ["https://kubernetesjsonschema.dev/v1.18.0/_definitions.json#/definitions/x"]);
        assert_eq!(schema["properties"]["a"], serde_json::json!({}));
        assert_eq!(schema["properties"]["b"]["type"], "integer");
        assert_eq!(schema["properties"]["c"]["$ref"], "#/definitions/local");
        assert_eq!(schema["$schema"], "http://json-schema.org/schema#", "$schema names a draft, it is not fetched");
    }
}
