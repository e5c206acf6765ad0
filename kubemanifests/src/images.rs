//! What counts as an image: the string value of any `image:` key at any depth (containers,
//! initContainers, ephemeralContainers, and custom resources such as Prometheus or Elastic that
//! use the same key), and `image: {registry?, repository, tag?, digest?}` maps. Images named only
//! inside environment variables, arguments or config files are not seen.

use std::collections::BTreeSet;

use anyhow::Result;
use serde_yaml_ng::Value;

pub fn images(doc: &Value, found: &mut BTreeSet<String>) {
    match doc {
        Value::Mapping(m) => {
            for (k, child) in m {
                match (k.as_str(), image_at(child)) {
                    (Some("image"), Some(image)) => {
                        found.insert(image);
                    }
                    _ => images(child, found),
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|c| images(c, found)),
        Value::Tagged(t) => images(&t.value, found),
        _ => {}
    }
}

/// Replaces every image of `doc` with what `to` returns for it, keeping the form (a string stays
/// a string; a map gets its registry, repository, tag and digest from the new reference).
pub fn rewrite_images(doc: &mut Value, to: &mut dyn FnMut(&str) -> Result<String>) -> Result<()> {
    match doc {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                match (k.as_str(), image_at(child)) {
                    (Some("image"), Some(image)) => {
                        let new = to(&image)?;
                        if child.is_string() {
                            *child = Value::String(new);
                        } else {
                            set_image_map(child, &new);
                        }
                    }
                    _ => rewrite_images(child, to)?,
                }
            }
        }
        Value::Sequence(s) => {
            for c in s {
                rewrite_images(c, to)?;
            }
        }
        Value::Tagged(t) => rewrite_images(&mut t.value, to)?,
        _ => {}
    }
    Ok(())
}

/// The image a value of an `image:` key names, if it names one.
pub fn image_at(v: &Value) -> Option<String> {
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

fn set_image_map(map: &mut Value, reference: &str) {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let (registry, repository) = name.split_once('/').unwrap_or(("", name));
    let Some(m) = map.as_mapping_mut() else { return };
    m.insert("registry".into(), registry.into());
    m.insert("repository".into(), repository.into());
    match tag {
        Some(t) => m.insert("tag".into(), t.into()),
        None => m.remove("tag"),
    };
    match digest {
        Some(d) => m.insert("digest".into(), d.into()),
        None => m.remove("digest"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_stream;

    const YAML: &str = "kind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n      - image: busybox:1.36\n      containers:\n      - name: a\n        image: docker.io/mosipid/x:1.2\n---\nkind: Prometheus\nspec:\n  image: quay.io/prometheus/prometheus:v2\n---\nkind: Thing\nspec:\n  image:\n    registry: ghcr.io\n    repository: o/r\n    tag: 3\n";

    fn all(docs: &[Value]) -> Vec<String> {
        let mut found = BTreeSet::new();
        docs.iter().for_each(|d| images(d, &mut found));
        found.into_iter().collect()
    }

    #[test]
    fn finds_container_and_custom_resource_images() {
        let docs = parse_stream(YAML).unwrap();
        assert_eq!(
            all(&docs),
            ["busybox:1.36", "docker.io/mosipid/x:1.2", "ghcr.io/o/r:3", "quay.io/prometheus/prometheus:v2"]
        );
    }

    #[test]
    fn rewrites_every_image_keeping_its_form() {
        let mut docs = parse_stream(YAML).unwrap();
        for d in &mut docs {
            rewrite_images(d, &mut |i| Ok(format!("reg.local:5000/{i}@sha256:ab"))).unwrap();
        }
        assert_eq!(
            all(&docs),
            [
                "reg.local:5000/busybox:1.36@sha256:ab",
                "reg.local:5000/docker.io/mosipid/x:1.2@sha256:ab",
                "reg.local:5000/ghcr.io/o/r:3@sha256:ab",
                "reg.local:5000/quay.io/prometheus/prometheus:v2@sha256:ab",
            ]
        );
        assert_eq!(docs[2]["spec"]["image"]["registry"], Value::from("reg.local:5000"));
        let mut doc = parse_stream("image: x:1\n").unwrap().remove(0);
        let err = rewrite_images(&mut doc, &mut |i| anyhow::bail!("{i} is not carried")).unwrap_err();
        assert_eq!(err.to_string(), "x:1 is not carried");
    }
}
