//! An `http` step run: values read from the source cluster and waited for, each request sent
//! through the API server's service proxy (tried again while the service does not answer), a
//! `compare` request skipped when the API already holds its body, every answer checked, and a
//! manifest answer applied to the step's cluster after the leak check.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value as Json;
use tokio::time::Instant;

use super::json_match::holds;
use super::{with_values, Idempotent, ObjectField, Prepared, PreparedRequest, Scheme};
use crate::cluster::Cluster;
use crate::render::Renderer;
use crate::service_proxy::{self, ServicePort};

/// Between two tries of a value or a request.
const POLL: Duration = Duration::from_secs(2);
/// What the proxy answers while a service has no ready endpoint or its pod does not answer.
const NOT_ANSWERING: [u16; 3] = [502, 503, 504];

/// Runs a prepared step on `cluster` (the step's own), reading values and sending requests
/// through the cluster the step names.
pub async fn apply(cluster: &Cluster, renderer: &Renderer<'_>, step: &str, p: &Prepared) -> Result<()> {
    let other;
    let source = match &p.cluster {
        Some(name) if *name != cluster.name => {
            other = Cluster::connect(name, &crate::run::kubeconfig(renderer.site, name)?).await?;
            &other
        }
        _ => cluster,
    };
    let deadline = Instant::now() + Duration::from_secs(p.timeout);
    if !p.objects.is_empty() {
        apply_when_served(source, &p.objects, deadline).await?;
    }
    let mut values = BTreeMap::new();
    for field in &p.values {
        let value = wait_for_value(source, field, &values, deadline)
            .await
            .with_context(|| format!("value {} (cluster {})", field.value, source.name))?;
        values.insert(field.value.clone(), value);
    }
    for r in &p.requests {
        let path = with_values(&r.path, &values)?;
        let what = format!("{} {path}", r.method);
        send_one(cluster, source, renderer, step, p, r, &path, &values, deadline).await.with_context(|| what)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn send_one(
    cluster: &Cluster,
    source: &Cluster,
    renderer: &Renderer<'_>,
    step: &str,
    p: &Prepared,
    r: &PreparedRequest,
    path: &str,
    values: &BTreeMap<String, String>,
    deadline: Instant,
) -> Result<()> {
    let headers =
        r.headers.iter().map(|(k, v)| Ok((k.clone(), with_values(v, values)?))).collect::<Result<Vec<_>>>()?;
    let port = p.service.port.to_string();
    let service = ServicePort {
        namespace: &p.service.namespace,
        name: &p.service.name,
        port: &port,
        https: p.service.scheme == Scheme::Https,
    };
    let proxy = Proxy { cluster: source, service, headers: &headers, deadline };
    if let Some(Idempotent::Compare(c)) = &r.idempotent {
        let get = with_values(c.get.as_deref().unwrap_or(path), values)?;
        let (status, answer) = proxy.send("GET", &get, &[], None).await?;
        let body: Json = serde_json::from_slice(&r.body).context("the body is not JSON")?;
        let wanted = body.pointer(&c.body_at).ok_or_else(|| anyhow!("the body has nothing at {:?}", c.body_at))?;
        let held =
            serde_json::from_slice::<Json>(&answer).ok().and_then(|a| a.pointer(&c.at).map(|a| holds(a, wanted)));
        if status == 200 && held == Some(true) {
            eprintln!("{step}: {} {path}: GET {get} already holds it", r.method);
            return Ok(());
        }
    }
    let (status, answer) = proxy.send(&r.method, path, &r.body, r.content_type.as_deref()).await?;
    let shown = || String::from_utf8_lossy(&answer).chars().take(600).collect::<String>();
    let status_ok = match r.expect.status.is_empty() {
        true => (200..300).contains(&status),
        false => r.expect.status.contains(&status),
    };
    if !status_ok {
        bail!("answered {status}: {}", shown());
    }
    if let Some(wanted) = &r.expect.json {
        let answer_json: Json =
            serde_json::from_slice(&answer).with_context(|| format!("the answer is not JSON: {}", shown()))?;
        if !holds(&answer_json, wanted) {
            bail!("the answer does not hold {wanted}: {}", shown());
        }
    }
    if r.apply {
        let text = String::from_utf8(answer.clone()).context("the manifest is not UTF-8")?;
        let rendered = crate::postrender::post_render(&text, &renderer.post, renderer.registry)
            .await
            .context("the manifest it answered")?;
        cluster.apply(&rendered.docs, None).await.context("applying the manifest it answered")?;
        eprintln!(
            "{step}: applied {} object(s) to cluster {}, images {}",
            rendered.docs.len(),
            cluster.name,
            rendered.images.values().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

struct Proxy<'a> {
    cluster: &'a Cluster,
    service: ServicePort<'a>,
    headers: &'a [(String, String)],
    deadline: Instant,
}

impl Proxy<'_> {
    /// The status and body of the service's answer; tried again until the deadline while the
    /// service does not answer.
    async fn send(&self, method: &str, path: &str, body: &[u8], content_type: Option<&str>) -> Result<(u16, Vec<u8>)> {
        let mut headers = self.headers.to_vec();
        if let Some(t) = content_type {
            headers.push((http::header::CONTENT_TYPE.to_string(), t.to_string()));
        }
        let mut said = Instant::now() - Duration::from_secs(3600);
        loop {
            let request = self.service.request(&service_proxy::Request { method, path, headers: &headers, body })?;
            let problem = match service_proxy::exchange(&self.cluster.client, request).await {
                Ok(answer) if !NOT_ANSWERING.contains(&answer.status) => return Ok((answer.status, answer.body)),
                Ok(answer) => format!(
                    "{} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body).chars().take(300).collect::<String>()
                ),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > self.deadline {
                bail!("service {} does not answer (cluster {}): {problem}", self.service.base(), self.cluster.name);
            }
            if said.elapsed() > Duration::from_secs(15) {
                eprintln!("waiting for {}{path} to answer: {problem}", self.service.base());
                said = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Server-side apply of `objects` to `cluster`, tried again until the deadline while the
/// cluster does not serve their API yet.
async fn apply_when_served(cluster: &Cluster, objects: &[serde_yaml_ng::Value], deadline: Instant) -> Result<()> {
    let mut said = Instant::now();
    loop {
        let problem = match cluster.apply(objects, None).await {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("cluster {}: {problem}", cluster.name);
        }
        if said.elapsed() > Duration::from_secs(15) {
            eprintln!("waiting for cluster {} to take the step's objects: {problem}", cluster.name);
            said = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A field's value once it is there and not empty.
async fn wait_for_value(
    cluster: &Cluster,
    field: &ObjectField,
    values: &BTreeMap<String, String>,
    deadline: Instant,
) -> Result<String> {
    let namespace = field.namespace.as_deref().map(|n| with_values(n, values)).transpose()?;
    let name = with_values(&field.name, values)?;
    let what = format!(
        "{} {}{name} {}",
        field.kind,
        namespace.as_ref().map(|n| format!("{n}/")).unwrap_or_default(),
        field.field
    );
    let mut said = Instant::now();
    loop {
        let problem = match read_field(cluster, field, namespace.as_deref(), &name).await {
            Ok(Some(v)) if !v.is_empty() => return Ok(v),
            Ok(_) => "not there yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{what}: {problem}");
        }
        if said.elapsed() > Duration::from_secs(15) {
            eprintln!("waiting for {what}: {problem}");
            said = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn read_field(
    cluster: &Cluster,
    field: &ObjectField,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<String>> {
    let (group, version) = field.api_version.rsplit_once('/').unwrap_or(("", &field.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &field.kind);
    // A kind whose CRD a controller has not made yet is not served yet: waited for like the rest.
    let (resource, caps) = kube::discovery::pinned_kind(&cluster.client, &gvk)
        .await
        .with_context(|| format!("the cluster does not serve {} {}", field.api_version, field.kind))?;
    let api: Api<DynamicObject> = match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(cluster.client.clone(), ns, &resource),
        (Scope::Namespaced, None) => bail!("{} is namespaced: give the namespace", field.kind),
        (Scope::Cluster, _) => Api::all_with(cluster.client.clone(), &resource),
    };
    let Some(object) = api.get_opt(name).await? else { return Ok(None) };
    let json = serde_json::to_value(object)?;
    let found = field.field.split('.').try_fold(&json, |v, k| v.get(k));
    Ok(match found {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(Json::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}
