//! Image discovery: render a chart with the real `helm template` and collect every image its
//! manifests name. What counts as an image: the string value of any `image:` key at any depth
//! (containers, initContainers, ephemeralContainers, and CRDs such as Prometheus or Elastic that
//! use the same key), and `image: {registry?, repository, tag?, digest?}` maps. Images named only
//! inside environment variables, arguments or config files are not seen.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::de::{DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml_ng::Value;

use crate::spec::ChartEntry;

/// `--helm`/`AIRGAP_HELM`, else the spec's `helm:`, else `helm` on PATH, else the copy that
/// `tests/tools/install.sh` builds into `.cache/tools/bin`.
pub fn helm_binary(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("AIRGAP_HELM") {
        return PathBuf::from(p);
    }
    let on_path =
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join("helm")).find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(d) = dir {
        for name in ["helm-v3.8.2", "helm-3.8.2", "helm"] {
            let candidate = d.join(".cache/tools/bin").join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    PathBuf::from("helm")
}

/// Renders the chart archive `tgz` with the entry's values and returns the images found.
pub fn chart_images(helm: &Path, tgz: &Path, entry: &ChartEntry) -> Result<BTreeSet<String>> {
    let mut cmd = Command::new(helm);
    // Test hooks run only under `helm test`, which a site does not: their images are not needed.
    cmd.args(["template", "airgap-discovery", "--skip-tests", "--include-crds"]).arg(tgz);
    for v in &entry.values {
        cmd.arg("--values").arg(v);
    }
    for (k, v) in &entry.set {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out =
        cmd.output().with_context(|| format!("cannot run {} (set helm: in the spec or --helm)", helm.display()))?;
    if !out.status.success() {
        bail!("helm template {} {}: {}", entry.name, entry.version, String::from_utf8_lossy(&out.stderr).trim());
    }
    images_in_manifests(&String::from_utf8_lossy(&out.stdout))
}

pub fn images_in_manifests(yaml: &str) -> Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        Collector(&mut found).deserialize(doc).context("helm template output is not YAML")?;
    }
    Ok(found)
}

/// Walks a document as it is parsed rather than building a map: rendered charts do carry
/// duplicate keys (Kubernetes keeps the last), which a `Mapping` refuses.
struct Collector<'a>(&'a mut BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Collector<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collector<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes manifest")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collector(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Value>()? {
            if key.as_str() == Some("image") {
                let v: Value = map.next_value()?;
                match image_value(&v) {
                    Some(image) => {
                        self.0.insert(image);
                    }
                    None => collect(&v, self.0),
                }
            } else {
                map.next_value_seed(Collector(&mut *self.0))?;
            }
        }
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (_, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant_seed(self)
    }
}

fn collect(v: &Value, found: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                match (k.as_str(), image_value(child)) {
                    (Some("image"), Some(image)) => {
                        found.insert(image);
                    }
                    _ => collect(child, found),
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| collect(c, found)),
        Value::Tagged(t) => collect(&t.value, found),
        _ => {}
    }
}

fn image_value(v: &Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        let s = s.trim();
        return (!s.is_empty()).then(|| s.to_string());
    }
    let repository = v.get("repository")?.as_str()?;
    let mut out = match v.get("registry").and_then(Value::as_str) {
        Some(r) if !r.is_empty() => format!("{r}/{repository}"),
        _ => repository.to_string(),
    };
    if let Some(t) = v.get("tag").and_then(scalar) {
        out += &format!(":{t}");
    }
    if let Some(d) = v.get("digest").and_then(Value::as_str).filter(|d| !d.is_empty()) {
        out += &format!("@{d}");
    }
    Some(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_container_and_crd_images() {
        let yaml = "kind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: busybox:1.36\n      containers:\n      - name: a\n        image: docker.io/mosipid/x:1.2\n---\nkind: Prometheus\nspec:\n  image: quay.io/prometheus/prometheus:v2\n---\nkind: Thing\nspec:\n  image:\n    registry: ghcr.io\n    repository: o/r\n    tag: 3\n";
        let found: Vec<String> = images_in_manifests(yaml).unwrap().into_iter().collect();
        assert_eq!(
            found,
            ["busybox:1.36", "docker.io/mosipid/x:1.2", "ghcr.io/o/r:3", "quay.io/prometheus/prometheus:v2"]
        );
        let dup = "kind: ConfigMap\ndata:\n  a: 1\n  a: 2\n---\nspec:\n  containers:\n  - image: x:1\n";
        assert_eq!(images_in_manifests(dup).unwrap().into_iter().collect::<Vec<_>>(), ["x:1"]);
    }
}
