//! The site file: what one data centre fills in (domains, registry, clusters, storage, TLS,
//! components). `manifests/mosip-1.2.0.1-B2/site.example.yaml` documents the MOSIP one.
//!
//! The file is kept as a YAML tree so that a plan may name any value (`${site.<path>}`), and each
//! part of the installer reads the sections it needs through its own typed view ([`Site::view`]),
//! so a new command adds its section without touching the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// A site file, read as a YAML tree: any value by path, or a section through a typed view.
#[derive(Debug, Clone)]
pub struct Site {
    path: PathBuf,
    tree: Value,
}

impl Site {
    /// Reads and parses the file; fails naming it when it cannot be read or is not a YAML mapping.
    pub fn load(path: &Path) -> Result<Site> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read site file {}", path.display()))?;
        Site::parse(path, &text)
    }

    /// `path` names the file in messages and anchors its relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Site> {
        let tree: Value = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => anyhow!("{}:{}:{}: {e}", path.display(), l.line(), l.column()),
            None => anyhow!("{}: {e}", path.display()),
        })?;
        if !tree.is_mapping() {
            bail!("{}: a site file is a YAML mapping", path.display());
        }
        Ok(Site { path: path.to_path_buf(), tree })
    }

    /// The file's path, as given: for messages, and the folder relative paths in it start from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path written in the site file, taken relative to the file's folder (`~/` is the home).
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        if let Some(rest) = written.strip_prefix("~/") {
            if let Some(home) = std::env::var_os("HOME") {
                return Path::new(&home).join(rest);
            }
        }
        self.path.parent().unwrap_or(Path::new(".")).join(written)
    }

    /// The site CA, `registry.ca_cert` (relative to the site file): its path, and its text as PEM.
    pub fn registry_ca(&self) -> Result<(PathBuf, String)> {
        let path = self.resolve_path(&self.lookup("registry.ca_cert")?);
        let pem = std::fs::read_to_string(&path).with_context(|| {
            format!("{}: registry.ca_cert names {}, which cannot be read", self.path().display(), path.display())
        })?;
        Ok((path, pem))
    }

    /// The value at a dotted path (`domains.rancher`, `registry.address`) as a string (null: empty);
    /// fails, naming the site file and the path, when there is none or it is a list or map. A domain entry is a map
    /// `{host, lb}`; naming the entry gives its `host`.
    pub fn lookup(&self, dotted: &str) -> Result<String> {
        let mut node = &self.tree;
        for key in dotted.split('.') {
            node = node.get(key).ok_or_else(|| anyhow!("{}: no value at {dotted}", self.path.display()))?;
        }
        if let Some(host) = node.get("host").filter(|_| node.is_mapping()) {
            node = host;
        }
        match node {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Ok(String::new()),
            _ => bail!("{}: {dotted} is not a single value", self.path.display()),
        }
    }

    /// Replaces every `${site.<path>}` in `text`; `${site.configmap.<key>}` takes `configmap[key]`
    /// (the plan's global configmap, itself already substituted).
    pub fn substitute(&self, text: &str, configmap: &BTreeMap<String, String>) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${site.") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "${site.".len()..];
            let end = after.find('}').ok_or_else(|| anyhow!("unterminated ${{site.…}} in {text:?}"))?;
            let key = &after[..end];
            let value = match key.strip_prefix("configmap.") {
                Some(k) => configmap.get(k).cloned().ok_or_else(|| anyhow!("the global configmap has no key {k}"))?,
                None => self.lookup(key)?,
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `lab.request_scale`: the factor every container's requests are scaled by on a lab
    /// machine too small for the platform (see `capacity`); absent for a real site.
    pub fn request_scale(&self) -> Result<Option<f64>> {
        self.lab_factor("request_scale")
    }

    /// `lab.probe_delay_scale`: the factor every probe's delay and period are scaled by where
    /// images start at once (see `probe_pace`); absent for a real site.
    pub fn probe_delay_scale(&self) -> Result<Option<f64>> {
        self.lab_factor("probe_delay_scale")
    }

    /// A factor under `lab`: above 0 and at most 1, since a lab only ever shrinks what a
    /// platform asks for.
    fn lab_factor(&self, key: &str) -> Result<Option<f64>> {
        let Some(v) = self.tree.get("lab").and_then(|l| l.get(key)) else { return Ok(None) };
        let path = self.path.display();
        match v.as_f64() {
            Some(f) if f > 0.0 && f <= 1.0 => Ok(Some(f)),
            _ => bail!("{path}: lab.{key} is {}: give a factor above 0 and at most 1", serde_json::json!(v)),
        }
    }

    /// Whether `components.<name>` is true (absent is false).
    pub fn component(&self, name: &str) -> bool {
        self.tree.get("components").and_then(|c| c.get(name)).and_then(Value::as_bool).unwrap_or(false)
    }

    /// A typed view of the sections a caller needs; unknown keys of the file are ignored, missing
    /// or mistyped ones are errors naming the file.
    pub fn view<T: DeserializeOwned>(&self) -> Result<T> {
        serde_yaml_ng::from_value(self.tree.clone()).map_err(|e| anyhow!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::parse(
            Path::new("/sites/a/site.yaml"),
            "registry: {address: 'reg.local:5000'}\ndomains:\n  api: {host: api.example.net, lb: internal}\ncomponents: {smtp: true}\nport: 8025\ncerts: certs/ca.pem\n",
        )
        .unwrap()
    }

    #[test]
    fn substitutes_paths_domains_and_configmap_keys() {
        let cm = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let s = site();
        assert_eq!(
            s.substitute("${site.registry.address}/x ${site.domains.api}:${site.port} ${site.configmap.k}", &cm)
                .unwrap(),
            "reg.local:5000/x api.example.net:8025 v"
        );
        assert!(s.substitute("${site.nope.x}", &cm).unwrap_err().to_string().contains("no value at nope.x"));
        assert!(s.substitute("${site.configmap.z}", &cm).unwrap_err().to_string().contains("no key z"));
        assert!(s.substitute("${site.domains", &cm).is_err());
        assert!(s.substitute("${site.domains}", &cm).unwrap_err().to_string().contains("not a single value"));
    }

    #[test]
    fn components_paths_and_views() {
        let s = site();
        assert!(s.component("smtp") && !s.component("reporting"));
        assert_eq!(s.resolve_path("certs/ca.pem"), Path::new("/sites/a/certs/ca.pem"));
        #[derive(serde::Deserialize)]
        struct Reg {
            registry: BTreeMap<String, String>,
        }
        assert_eq!(s.view::<Reg>().unwrap().registry["address"], "reg.local:5000");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Missing {
            wireguard: String,
        }
        assert!(s.view::<Missing>().unwrap_err().to_string().contains("/sites/a/site.yaml"));
        assert!(Site::parse(Path::new("x.yaml"), "- a\n").is_err());
    }

    #[test]
    fn lab_factors_are_above_zero_and_at_most_one() {
        let lab = |text: &str| Site::parse(Path::new("/s/site.yaml"), text).unwrap();
        let s = lab("lab: {request_scale: 0.05, probe_delay_scale: 1}\n");
        assert_eq!((s.request_scale().unwrap(), s.probe_delay_scale().unwrap()), (Some(0.05), Some(1.0)));
        assert_eq!(site().probe_delay_scale().unwrap(), None, "a real site has none");
        for bad in ["0", "-1", "1.5", "fast", ".nan"] {
            let err = lab(&format!("lab: {{probe_delay_scale: {bad}}}\n")).probe_delay_scale().unwrap_err().to_string();
            assert!(err.contains("/s/site.yaml: lab.probe_delay_scale is"), "{bad}: {err}");
        }
    }
}
