//! Files a plan mounts into every container of a release (`helm.files`): a system gitconfig that
//! sends a clone to the site registry, where no chart value reaches the URL an image clones. The
//! files go into one ConfigMap in the release's namespace, applied before the release; the
//! post-renderer mounts each key at its path with `subPath`, so the rest of the folder stays the
//! image's own.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

const VOLUME: &str = "airgap-files";

/// Where a release's files are: its ConfigMap and, for each path, the key holding it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounts {
    /// The ConfigMap's name, in the release's namespace.
    pub configmap: String,
    /// Path in the container → key of the ConfigMap.
    pub files: BTreeMap<String, String>,
}

/// The plan's paths must be absolute, plain and name a file.
pub fn check(files: &BTreeMap<String, String>) -> Result<()> {
    for path in files.keys() {
        let plain = path.starts_with('/')
            && !path.ends_with('/')
            && path[1..].split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        if !plain {
            bail!("files: {path:?} is not an absolute path to a file");
        }
    }
    Ok(())
}

impl Mounts {
    /// The mounts of `release`'s files; None when it has none.
    pub fn of(release: &str, files: &BTreeMap<String, String>) -> Option<Mounts> {
        if files.is_empty() {
            return None;
        }
        let files = files.keys().map(|path| (path.clone(), key_of(path))).collect();
        Some(Mounts { configmap: format!("{release}-airgap-files"), files })
    }

    /// The ConfigMap holding `contents` (path → text, already substituted).
    pub fn configmap(&self, namespace: &str, contents: &BTreeMap<String, String>) -> Result<Value> {
        let mut data = BTreeMap::new();
        for (path, key) in &self.files {
            let text = contents.get(path).with_context(|| format!("files: no content for {path}"))?;
            data.insert(key.clone(), text.clone());
        }
        Ok(serde_yaml_ng::to_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.configmap, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "airgap"}},
            "data": data,
        }))?)
    }

    /// Mounts every file into every container of a pod spec; a second call changes nothing.
    pub fn mount(&self, pod_spec: &mut Value) -> Result<()> {
        let mounts = self
            .files
            .iter()
            .map(|(path, key)| {
                serde_yaml_ng::to_value(serde_json::json!({
                    "name": VOLUME, "mountPath": path, "subPath": key, "readOnly": true,
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::pod_volume::mount_configmap(pod_spec, VOLUME, &self.configmap, &mounts, |_| Ok(()))
    }
}

/// A ConfigMap key for a path: `/etc/gitconfig` → `etc_gitconfig` (keys allow `[-._a-zA-Z0-9]`).
fn key_of(path: &str) -> String {
    path.trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-.".contains(c) { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> BTreeMap<String, String> {
        BTreeMap::from([(
            "/etc/gitconfig".to_string(),
            "[url \"https://r/git/x.git\"]\n\tinsteadOf = https://x\n".into(),
        )])
    }

    #[test]
    fn each_file_is_mounted_by_sub_path_into_every_container_once() {
        let mounts = Mounts::of("masterdata-loader", &files()).unwrap();
        let mut spec: Value = serde_yaml_ng::from_str(
            "volumes: [{name: data, emptyDir: {}}]\ninitContainers: [{name: i}]\ncontainers: [{name: c, volumeMounts: [{name: data, mountPath: /data}]}]\n",
        )
        .unwrap();
        mounts.mount(&mut spec).unwrap();
        assert_eq!(spec["volumes"][1]["configMap"]["name"], "masterdata-loader-airgap-files");
        for c in [&spec["containers"][0], &spec["initContainers"][0]] {
            let m = c["volumeMounts"].as_sequence().unwrap().last().unwrap();
            assert_eq!(
                (m["mountPath"].as_str(), m["subPath"].as_str()),
                (Some("/etc/gitconfig"), Some("etc_gitconfig"))
            );
        }
        let once = spec.clone();
        mounts.mount(&mut spec).unwrap();
        assert_eq!(spec, once);
        let cm = mounts.configmap("masterdata-loader", &files()).unwrap();
        assert_eq!(cm["data"]["etc_gitconfig"].as_str(), files().values().next().map(String::as_str));
    }

    #[test]
    fn paths_must_be_absolute_and_plain() {
        assert!(check(&files()).is_ok());
        for bad in ["etc/gitconfig", "/etc/", "/etc/../x", "/etc//x"] {
            let err = check(&BTreeMap::from([(bad.to_string(), String::new())])).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(Mounts::of("r", &BTreeMap::new()).is_none());
    }
}
