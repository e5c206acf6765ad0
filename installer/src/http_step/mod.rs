//! The `http` step: requests to an HTTP API inside the site (Elasticsearch, Kibana, Rancher…),
//! sent to a Service through the Kubernetes API server's service proxy, so the installer needs no
//! route to the pods and no address of its own in the site. A request's body comes from a file
//! the bundle carries or is written in the plan with `${site.<path>}` values; every request that
//! changes something says how a re-run stays idempotent (the API's own upsert, or a GET first
//! whose answer is compared with the body); the answers are checked. Values read from objects of
//! a cluster (`values:`) are waited for, so a step may wait on what a controller makes, on this
//! cluster or on another one (`cluster:`), and a response may be a manifest that is leak-checked,
//! post-rendered and applied to the step's own cluster (Rancher's registration manifest). Objects
//! the step applies to its source cluster first (`objects:`) are waited for until that cluster
//! serves their API, as Rancher serves its own CRDs only once it runs.
//!
//! The API server drops the `Authorization` header of every request it authenticated
//! (kubernetes#38775), so an API that wants credentials cannot be reached this way; `check`
//! refuses such a header.
//!
//! Rendering (`prepare`) reads the carried files and substitutes the site's values, and touches
//! no cluster; `send::apply` does the rest when the step runs.

mod json_match;
mod send;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

pub use send::apply;

use crate::plan::Carried;
use crate::render::Renderer;

/// Default of `timeout`, in seconds.
const DEFAULT_TIMEOUT: u64 = 300;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "PATCH", "DELETE"];
/// Written where a value read from a cluster goes: `${value.<name>}`.
const VALUE_PREFIX: &str = "${value.";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// The plan cluster whose API server proxies the requests and holds the `values` objects;
    /// absent, the step's own cluster.
    pub cluster: Option<String>,
    pub service: Service,
    /// Seconds to wait for the values and for the service to answer (a 502, 503 or 504 from the
    /// proxy, or no connection, is tried again until then).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Objects applied to `cluster` first, once its API serves them: a registration that a
    /// controller answers (Rancher's `provisioning.cattle.io` Cluster, whose CRD Rancher makes
    /// when it starts). `${site.<path>}` is replaced in their strings.
    #[serde(default)]
    pub objects: Vec<serde_yaml_ng::Value>,
    /// Values read from objects of `cluster`, in order (a later one may use an earlier one as
    /// `${value.<name>}` in its namespace or name), for `${value.<name>}` in the requests.
    #[serde(default)]
    pub values: Vec<ObjectField>,
    pub requests: Vec<Request>,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    #[serde(default)]
    pub scheme: Scheme,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

/// A field of an object, `status.token`; the value is waited for until it is there and not empty.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectField {
    /// The value's name, for `${value.<name>}`.
    #[serde(rename = "as")]
    pub value: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Dotted path in the object: `spec.clusterName`.
    pub field: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: String,
    /// Path and query on the service, `/api/saved_objects/_import?overwrite=true`.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<Body>,
    /// Send the body as `multipart/form-data`, the file under this form field (Kibana's import).
    pub form_field: Option<String>,
    /// How a re-run stays idempotent; required for every method but GET.
    pub idempotent: Option<Idempotent>,
    #[serde(default)]
    pub expect: Expect,
    /// The response is a manifest: leak-checked, post-rendered and applied to the step's cluster.
    #[serde(default)]
    pub apply: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// A file of the bundle, `files.airgap.local/<name>:<version>`, sent as it is.
    pub file: Option<String>,
    /// JSON written in the plan (as YAML); `${site.<path>}` is replaced in its strings.
    pub json: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum Idempotent {
    /// The API replaces what is there (a PUT of a whole document, an import with overwrite).
    Upsert,
    /// A GET first: when it answers 200 and its JSON holds the body, the request is not sent.
    Compare(Compare),
}

impl TryFrom<serde_yaml_ng::Value> for Idempotent {
    type Error = String;

    fn try_from(v: serde_yaml_ng::Value) -> std::result::Result<Idempotent, String> {
        const FORM: &str = "write `idempotent: upsert` or `idempotent: {compare: {get, at, body_at}}`";
        match v.as_str() {
            Some("upsert") => return Ok(Idempotent::Upsert),
            Some(other) => return Err(format!("{other:?}: {FORM}")),
            None => {}
        }
        match v.as_mapping().filter(|m| m.len() == 1).and_then(|m| m.get("compare")) {
            Some(c) => {
                serde_yaml_ng::from_value(c.clone()).map(Idempotent::Compare).map_err(|e| format!("compare: {e}"))
            }
            None => Err(FORM.to_string()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// What to GET; default the request's path.
    pub get: Option<String>,
    /// JSON pointer into the GET's answer (`/mosip-logs/policy`); default the whole answer.
    #[serde(default)]
    pub at: String,
    /// JSON pointer into the body (`/policy`); default the whole body.
    #[serde(default)]
    pub body_at: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Accepted status codes; default any 2xx.
    #[serde(default)]
    pub status: Vec<u16>,
    /// JSON the answer must hold (extra keys of the answer are fine).
    pub json: Option<Json>,
}

impl Http {
    /// What can be checked when the plan loads: methods, paths, one body source, carried files,
    /// an idempotence rule for every change, values named before they are used.
    pub fn check(&self, carried: &Carried) -> Result<()> {
        if self.requests.is_empty() {
            bail!("http: give at least one request");
        }
        let mut known: Vec<&str> = Vec::new();
        for v in &self.values {
            let name = v.value.as_str();
            if known.contains(&name) {
                bail!("values: {name} is read twice");
            }
            for text in [v.namespace.as_deref().unwrap_or_default(), &v.name] {
                check_value_refs(text, &known).with_context(|| format!("value {name}"))?;
            }
            if v.field.is_empty() {
                bail!("value {name}: give the field to read");
            }
            known.push(name);
        }
        for (n, r) in self.requests.iter().enumerate() {
            r.check(carried, &known).with_context(|| format!("http.requests[{n}] ({} {})", r.method, r.path))?;
        }
        Ok(())
    }

    /// The plan clusters this step's `cluster` may name.
    pub fn check_cluster<'a>(&self, mut clusters: impl Iterator<Item = &'a String>) -> Result<()> {
        match &self.cluster {
            Some(c) if !clusters.any(|k| k == c) => bail!("http.cluster: the plan has no cluster {c}"),
            _ => Ok(()),
        }
    }
}

impl Request {
    fn check(&self, carried: &Carried, values: &[&str]) -> Result<()> {
        if !METHODS.contains(&self.method.as_str()) {
            bail!("method {}: one of {}", self.method, METHODS.join(", "));
        }
        if !self.path.starts_with('/') {
            bail!("the path starts with /");
        }
        check_value_refs(&self.path, values)?;
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("authorization") {
                bail!(
                    "header {name}: the API server's service proxy drops it (kubernetes#38775), so an API that \
                     needs credentials cannot be reached by an http step"
                );
            }
            check_value_refs(value, values)?;
        }
        let json = self.body.as_ref().and_then(|b| b.json.as_ref()).map(serde_yaml_ng::to_string).transpose()?;
        let mut texts = self.headers.values().chain([&self.path]).chain(json.as_ref());
        if let Some(t) = texts.find(|t| crate::cluster_values::takes_values(t)) {
            bail!("{t}: an http step reads cluster values with `values:`, as ${{value.<name>}}");
        }
        match &self.body {
            Some(Body { file: Some(f), json: None }) if !carried.files.contains(f) => {
                bail!("body: file {f} is not in the bundle spec")
            }
            Some(Body { file: Some(_), json: None }) | Some(Body { file: None, json: Some(_) }) | None => {}
            Some(_) => bail!("body: give one of file and json"),
        }
        if self.form_field.is_some() && self.body.as_ref().and_then(|b| b.file.as_ref()).is_none() {
            bail!("form_field sends a file: give body.file");
        }
        match (&self.idempotent, self.method.as_str()) {
            (None, "GET") => {}
            (None, _) => {
                bail!("say how a re-run stays idempotent: idempotent: upsert, or idempotent: {{compare: ...}}")
            }
            (Some(Idempotent::Compare(_)), _) if self.body.as_ref().and_then(|b| b.json.as_ref()).is_none() => {
                bail!("idempotent: compare needs a json body to compare with")
            }
            (Some(Idempotent::Compare(c)), _)
                if [&c.at, &c.body_at].iter().any(|p| !p.is_empty() && !p.starts_with('/')) =>
            {
                bail!("idempotent: compare: `at` and `body_at` are JSON pointers (/a/b), or empty for the whole")
            }
            (Some(_), _) => {}
        }
        Ok(())
    }
}

/// Every `${value.<name>}` of `text` names one of `known`.
fn check_value_refs(text: &str, known: &[&str]) -> Result<()> {
    for name in value_refs(text)? {
        if !known.contains(&name) {
            bail!("{text}: ${{value.{name}}} is not one of the values read before it");
        }
    }
    Ok(())
}

fn value_refs(text: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(VALUE_PREFIX) {
        let after = &rest[start + VALUE_PREFIX.len()..];
        let end = after.find('}').ok_or_else(|| anyhow!("unterminated ${{value.…}} in {text:?}"))?;
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `text` with every `${value.<name>}` replaced.
fn with_values(text: &str, values: &BTreeMap<String, String>) -> Result<String> {
    let mut out = text.to_string();
    for name in value_refs(text)? {
        let v = values.get(name).ok_or_else(|| anyhow!("no value {name}"))?;
        out = out.replace(&format!("{VALUE_PREFIX}{name}}}"), v);
    }
    Ok(out)
}

/// A step rendered for a site: every string substituted, every body read. What `apply` sends.
#[derive(Debug, Serialize)]
pub struct Prepared {
    pub cluster: Option<String>,
    pub service: Service,
    pub timeout: u64,
    pub objects: Vec<serde_yaml_ng::Value>,
    pub values: Vec<ObjectField>,
    pub requests: Vec<PreparedRequest>,
}

#[derive(Debug, Serialize)]
pub struct PreparedRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    #[serde(serialize_with = "digest_of")]
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub idempotent: Option<Idempotent>,
    pub expect: Expect,
    pub apply: bool,
}

/// Bodies enter the hash by their digest: a changed file or value runs the step again.
fn digest_of<S: serde::Serializer>(body: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(Sha256::digest(body)))
}

impl Prepared {
    /// One line: `PUT /_ilm/policy/x, POST /api/… on service ns/name:port of cluster c`.
    pub fn summary(&self) -> String {
        let mut requests: Vec<String> =
            self.objects.iter().filter_map(crate::postrender::object_ref).map(|o| format!("apply {o}")).collect();
        requests.extend(self.requests.iter().map(|r| format!("{} {}", r.method, r.path)));
        let Service { namespace, name, port, .. } = &self.service;
        let cluster = self.cluster.as_ref().map(|c| format!(" of cluster {c}")).unwrap_or_default();
        format!("http {} on service {namespace}/{name}:{port}{cluster}", requests.join(", "))
    }

    /// What the step's state hash covers.
    pub fn hash_input(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

/// The step made concrete for the site: `${site.…}` replaced by `sub`, carried files fetched.
pub async fn prepare(http: &Http, renderer: &Renderer<'_>, sub: &dyn Fn(&str) -> Result<String>) -> Result<Prepared> {
    let values = http
        .values
        .iter()
        .map(|v| {
            Ok(ObjectField {
                namespace: v.namespace.as_deref().map(sub).transpose()?,
                name: sub(&v.name)?,
                ..v.clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut requests = Vec::new();
    for r in &http.requests {
        let headers = r.headers.iter().map(|(k, v)| Ok((k.clone(), sub(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
        let (body, content_type) = match &r.body {
            None => (Vec::new(), None),
            Some(Body { json: Some(j), .. }) => {
                let json: Json = serde_json::to_value(crate::render::substitute_strings(j, sub)?)?;
                (serde_json::to_vec(&json)?, Some("application/json".to_string()))
            }
            Some(Body { file: Some(f), .. }) => {
                let (name, bytes) = renderer.carried_file(f).await?;
                match &r.form_field {
                    Some(field) => {
                        let (body, content_type) = multipart(field, &name, &bytes);
                        (body, Some(content_type))
                    }
                    None => (bytes, None),
                }
            }
            Some(_) => bail!("body: give one of file and json"),
        };
        requests.push(PreparedRequest {
            method: r.method.clone(),
            path: sub(&r.path)?,
            headers,
            body,
            content_type,
            idempotent: r.idempotent.clone(),
            expect: r.expect.clone(),
            apply: r.apply,
        });
    }
    let objects = http.objects.iter().map(|o| crate::render::substitute_strings(o, sub)).collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        cluster: http.cluster.clone(),
        service: http.service.clone(),
        timeout: http.timeout,
        objects,
        values,
        requests,
    })
}

/// A `multipart/form-data` body holding one file, and its content type. The boundary is derived
/// from the content (it cannot occur in it), so the same file gives the same body and hash.
fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (Vec<u8>, String) {
    let boundary = format!("airgap-{}", hex::encode(Sha256::digest(bytes)));
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(yaml: &str) -> Http {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn check(yaml: &str) -> String {
        let carried = Carried { files: ["files.airgap.local/a.ndjson:1".to_string()].into(), ..Carried::default() };
        http(yaml).check(&carried).map_or_else(|e| format!("{e:#}"), |_| "ok".into())
    }

    const SERVICE: &str = "service: {namespace: n, name: s, port: 80}\n";

    #[test]
    fn changes_say_how_they_stay_idempotent_and_values_come_before_use() {
        assert_eq!(check(&format!("{SERVICE}requests: [{{method: GET, path: /x}}]")), "ok");
        let put = check(&format!("{SERVICE}requests: [{{method: PUT, path: /x, body: {{json: {{a: 1}}}}}}]"));
        assert!(put.contains("idempotent"), "{put}");
        let compare_file = check(&format!(
            "{SERVICE}requests: [{{method: POST, path: /x, body: {{file: 'files.airgap.local/a.ndjson:1'}}, idempotent: {{compare: {{}}}}}}]"
        ));
        assert!(compare_file.contains("json body"), "{compare_file}");
        let upsert = format!(
            "{SERVICE}requests: [{{method: POST, path: /x, body: {{file: 'files.airgap.local/a.ndjson:1'}}, form_field: file, idempotent: upsert}}]"
        );
        assert_eq!(check(&upsert), "ok");
        let missing =
            check(&format!("{SERVICE}requests: [{{method: GET, path: /x, body: {{file: 'files.airgap.local/b:1'}}}}]"));
        assert!(missing.contains("not in the bundle spec"), "{missing}");
        let unknown = check(&format!("{SERVICE}requests: [{{method: GET, path: '/v3/${{value.token}}'}}]"));
        assert!(unknown.contains("value.token"), "{unknown}");
        let chained = format!(
            "{SERVICE}values:\n- {{as: a, apiVersion: v1, kind: ConfigMap, namespace: x, name: y, field: data.a}}\n\
             - {{as: b, apiVersion: v1, kind: ConfigMap, namespace: '${{value.a}}', name: y, field: data.b}}\n\
             requests: [{{method: GET, path: '/v3/${{value.a}}_${{value.b}}.yaml', apply: true}}]"
        );
        assert_eq!(check(&chained), "ok");
        let secret = check(&format!(
            "{SERVICE}requests: [{{method: PUT, path: /x, body: {{json: {{a: '${{secret:n/s/k}}'}}}}, idempotent: upsert}}]"
        ));
        assert!(secret.contains("values:"), "{secret}");
        let pointer = check(&format!(
            "{SERVICE}requests: [{{method: PUT, path: /x, body: {{json: {{a: 1}}}}, idempotent: {{compare: {{at: a}}}}}}]"
        ));
        assert!(pointer.contains("JSON pointers"), "{pointer}");
        let auth =
            check(&format!("{SERVICE}requests: [{{method: GET, path: /x, headers: {{Authorization: 'Basic x'}}}}]"));
        assert!(auth.contains("kubernetes#38775"), "{auth}");
        assert!(serde_yaml_ng::from_str::<Http>(&format!("{SERVICE}requests: []\nbogus: 1")).is_err());
    }

    #[test]
    fn values_are_substituted_and_multipart_bodies_are_stable() {
        let values = BTreeMap::from([("t".to_string(), "abc".to_string()), ("c".to_string(), "c-m-1".to_string())]);
        assert_eq!(with_values("/v3/import/${value.t}_${value.c}.yaml", &values).unwrap(), "/v3/import/abc_c-m-1.yaml");
        assert!(with_values("${value.nope}", &values).is_err());
        let (a, type_a) = multipart("file", "x.ndjson", b"{}\n");
        let (b, _) = multipart("file", "x.ndjson", b"{}\n");
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let boundary = type_a.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")) && text.ends_with(&format!("--{boundary}--\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"x.ndjson\"\r\n") && text.contains("\r\n\r\n{}\n\r\n"));
    }
}
