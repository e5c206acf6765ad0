//! What counts as an image: the string value of any `image:` key at any depth (containers,
//! initContainers, ephemeralContainers, and custom resources such as Prometheus or Elastic that
//! use the same key), and `{registry?, repository, tag?, digest?}` maps under `image:` or under a
//! key ending in `Image` (the logging operator's Logging resource names fluentd's config reloader
//! `configReloaderImage: {repository, tag}`). Images named only inside environment variables,
//! arguments or config files are not seen.

use std::collections::BTreeSet;

use anyhow::Result;
use serde_yaml_ng::Value;

/// Adds every image `doc` names, by the rules above, to `found`.
pub fn images(doc: &Value, found: &mut BTreeSet<String>) {
    match doc {
        Value::Mapping(m) => {
            for (k, child) in m {
                match image_under(k, child) {
                    Some(image) => {
                        found.insert(image);
                    }
                    None => images(child, found),
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
                match image_under(k, child) {
                    Some(image) => {
                        let new = to(&image)?;
                        if child.is_string() {
                            *child = Value::String(new);
                        } else {
                            set_image_map(child, &new);
                        }
                    }
                    None => rewrite_images(child, to)?,
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

/// The image the value of key `k` names: any image under `image:`, a map under `<x>Image:`.
fn image_under(k: &Value, child: &Value) -> Option<String> {
    match k.as_str()? {
        "image" => image_at(child),
        key if key.ends_with("Image") && child.is_mapping() => image_at(child),
        _ => None,
    }
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

/// Writes `reference` into a map in the fields it has: a map without `registry` gets the registry
/// in `repository`, one without `digest` the digest after the tag (`tag: 1.0@sha256:…`), so that
/// what reads only `repository:tag` (a custom resource whose schema has no other field) pulls
/// the same.
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
    let Some(m) = map.as_mapping_mut() else { return };
    if m.contains_key("registry") {
        let (registry, repository) = name.split_once('/').unwrap_or(("", name));
        m.insert("registry".into(), registry.into());
        m.insert("repository".into(), repository.into());
    } else {
        m.insert("repository".into(), name.into());
    }
    let keeps_digest = m.contains_key("digest");
    let tag = match (tag, digest) {
        (Some(t), Some(d)) if !keeps_digest => Some(format!("{t}@{d}")),
        (t, _) => t.map(str::to_string),
    };
    match tag {
        Some(t) => m.insert("tag".into(), t.into()),
        None => m.remove("tag"),
    };
    match digest.filter(|_| keeps_digest || !m.contains_key("tag")) {
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

    /// rancher-logging's Logging resource, as the chart renders it: maps of repository and tag
    /// only, the config reloader's under `configReloaderImage`.
    const LOGGING: &str = "kind: Logging\nspec:\n  fluentd:\n    image: {repository: rancher/mirrored-banzaicloud-fluentd, tag: v1.14.6-alpine-5}\n    configReloaderImage: {repository: rancher/mirrored-jimmidyson-configmap-reload, tag: v0.4.0}\n    nodeSelectorImage: not-a-map\n";

    #[test]
    fn maps_under_image_keys_are_found_and_keep_their_fields() {
        let mut docs = parse_stream(LOGGING).unwrap();
        assert_eq!(
            all(&docs),
            [
                "rancher/mirrored-banzaicloud-fluentd:v1.14.6-alpine-5",
                "rancher/mirrored-jimmidyson-configmap-reload:v0.4.0"
            ]
        );
        rewrite_images(&mut docs[0], &mut |i| Ok(format!("reg.local:5000/docker.io/{i}@sha256:ab"))).unwrap();
        let reloader = &docs[0]["spec"]["fluentd"]["configReloaderImage"];
        assert_eq!(
            reloader["repository"],
            Value::from("reg.local:5000/docker.io/rancher/mirrored-jimmidyson-configmap-reload")
        );
        assert_eq!(reloader["tag"], Value::from("v0.4.0@sha256:ab"));
        assert!(reloader.get("registry").is_none() && reloader.get("digest").is_none(), "{reloader:?}");
        assert_eq!(docs[0]["spec"]["fluentd"]["nodeSelectorImage"], Value::from("not-a-map"));
    }
}
