//! The network edge, from inside the cluster. Every route of the plan's Istio VirtualServices and
//! Ingresses (as they are live now) is requested through the gateway or ingress controller that
//! serves it, with the host a client would send; each route's backend is asked for its health
//! endpoint (the path its pods' HTTP probe uses, when it falls under the route); and the
//! certificate served for each host of the site file is checked. Nothing here knows a platform:
//! hosts, paths and backends all come from the rendered objects, the live cluster and the site
//! file.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::Value;

use super::certs;
use super::check::Checks;
use super::live::{find, has_labels, show_labels, Snapshot};
use super::objects::Object;
use super::proxy::{self, Judge, Probe, Target};
use crate::site::Site;
use crate::site_ca::SiteCa;

/// A route of a VirtualService or an Ingress: requests for `hosts` whose path starts with
/// `prefix`, sent on to a backend.
struct Route {
    step: String,
    /// `VirtualService kernel/authmanager`.
    source: String,
    hosts: Vec<String>,
    entry: Entry,
    prefix: String,
    /// The path the backend sees in place of `prefix` (an Istio rewrite).
    rewrite: Option<String>,
    backend: Backend,
}

enum Entry {
    /// Istio Gateways, `namespace/name`.
    Gateways(Vec<String>),
    /// The Ingress's own controller, found from its status.
    Ingress { namespace: String, name: String },
}

enum Backend {
    Service {
        namespace: String,
        name: String,
        port: Option<Port>,
    },
    /// A destination outside the cluster's Services (a ServiceEntry host).
    Outside(String),
    None,
}

#[derive(Clone)]
enum Port {
    Number(i32),
    Name(String),
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Name(n) => write!(f, "{n}"),
        }
    }
}

/// An Istio Gateway as live: the pods it configures (by selector) and what each server listens for.
struct Gateway {
    namespace: String,
    name: String,
    selector: BTreeMap<String, String>,
    servers: Vec<Server>,
}

struct Server {
    port: i32,
    https: bool,
    hosts: Vec<String>,
    credential: Option<String>,
}

/// The site file's hosts, and which cluster's load balancer and certificate each one has.
#[derive(Deserialize, Default)]
struct SiteEdge {
    #[serde(default)]
    domains: BTreeMap<String, Domain>,
    #[serde(default)]
    load_balancers: BTreeMap<String, LoadBalancer>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Domain {
    Entry { host: String, lb: Option<String> },
    Host(String),
}

#[derive(Deserialize)]
struct LoadBalancer {
    cluster: Option<String>,
    /// Where the load balancer listens for TLS (`host:port`), when not at its domains' port 443.
    address: Option<String>,
    /// The certificate it serves, a PEM file relative to the site file.
    cert: Option<String>,
}

/// Where a certificate was read, and its PEM (or why it could not be).
type Presented = (String, Result<Vec<u8>, String>);

/// How long a load balancer has to answer TLS.
const LB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn check(
    c: &mut Checks,
    client: &Client,
    cluster: &str,
    objects: &[Object<'_>],
    live: &Snapshot,
    site: &Site,
) -> Result<()> {
    let mut routes = Vec::new();
    let mut gateways: BTreeMap<String, Option<Gateway>> = BTreeMap::new();
    for o in objects {
        match (o.api_version.split('/').next(), o.kind) {
            (Some("networking.istio.io"), "VirtualService") => {
                c.at(Some(o.step));
                match live_object(client, o).await? {
                    Some(vs) => routes.extend(virtual_service_routes(o, &vs)),
                    None => c.failed("route", o.id(), "does not exist in the cluster"),
                }
            }
            (Some("networking.istio.io"), "Gateway") => {
                let gw = live_object(client, o).await?.map(|g| gateway(&o.namespace, o.name, &g));
                gateways.insert(format!("{}/{}", o.namespace, o.name), gw);
            }
            (Some("networking.k8s.io"), "Ingress") => match find(&live.ingresses, &o.namespace, o.name) {
                Some(i) => routes.extend(ingress_routes(o.step, i)),
                None => {
                    c.at(Some(o.step));
                    c.failed("route", o.id(), "does not exist in the cluster")
                }
            },
            _ => {}
        }
    }
    c.at(None);
    // Gateways the routes name that no step renders (made by hand, or by another tool).
    for r in &routes {
        if let Entry::Gateways(names) = &r.entry {
            for name in names {
                if !gateways.contains_key(name) {
                    gateways.insert(name.clone(), live_gateway(client, name).await?);
                }
            }
        }
    }
    let site_edge: SiteEdge = site.view()?;
    if routes.is_empty() {
        c.skipped("route", "the network edge", "the plan renders no VirtualService or Ingress for this cluster");
    }
    let mut probes = Vec::new();
    let mut health = BTreeSet::new();
    for r in &routes {
        route_probes(c, r, &gateways, objects, live, &mut probes);
        if let Some(p) = health_probe(r, live) {
            if health.insert((p.target.namespace.clone(), p.target.service.clone(), p.target.path.clone())) {
                probes.push(p);
            }
        }
    }
    proxy::run_all(client, probes, c).await;
    let served = Served { cluster, routes: &routes, gateways: &gateways, live, site, edge: &site_edge };
    served.certificates(c);
    Ok(())
}

/// The live object a rendered one names (its kind found by discovery), as JSON.
async fn live_object(client: &Client, o: &Object<'_>) -> Result<Option<Value>> {
    let (group, version) = o.api_version.rsplit_once('/').unwrap_or(("", o.api_version));
    get_dynamic(client, &GroupVersionKind::gvk(group, version, o.kind), &o.namespace, o.name).await
}

async fn get_dynamic(client: &Client, gvk: &GroupVersionKind, namespace: &str, name: &str) -> Result<Option<Value>> {
    let Some((resource, _)) = super::present::resource(client, &gvk.group, &gvk.version, &gvk.kind).await else {
        // The API itself is gone (its CRD deleted): the object is too.
        return Ok(None);
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    Ok(api.get_opt(name).await?.map(|o| serde_json::to_value(o).unwrap_or_default()))
}

async fn live_gateway(client: &Client, name: &str) -> Result<Option<Gateway>> {
    let (namespace, name) = name.split_once('/').unwrap_or(("default", name));
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", "Gateway");
    Ok(get_dynamic(client, &gvk, namespace, name).await?.map(|g| gateway(namespace, name, &g)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

fn gateway(namespace: &str, name: &str, g: &Value) -> Gateway {
    let spec = &g["spec"];
    let selector = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let servers = spec["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let protocol = s["port"]["protocol"].as_str().unwrap_or("HTTP").to_ascii_uppercase();
            Server {
                port: s["port"]["number"].as_i64().unwrap_or(80) as i32,
                https: protocol == "HTTPS" || protocol == "TLS",
                // A Gateway host may be scoped to a namespace: `ns/host`.
                hosts: strings(&s["hosts"]).iter().map(|h| h.rsplit('/').next().unwrap_or(h).to_string()).collect(),
                credential: s["tls"]["credentialName"].as_str().map(str::to_string),
            }
        })
        .collect();
    Gateway { namespace: namespace.to_string(), name: name.to_string(), selector, servers }
}

/// The HTTP routes of a VirtualService bound to gateways (routes only for the mesh are not at
/// the edge).
fn virtual_service_routes(o: &Object<'_>, vs: &Value) -> Vec<Route> {
    let spec = &vs["spec"];
    let gateways: Vec<String> = strings(&spec["gateways"])
        .into_iter()
        .filter(|g| g != "mesh")
        .map(|g| if g.contains('/') { g } else { format!("{}/{g}", o.namespace) })
        .collect();
    if gateways.is_empty() {
        return Vec::new();
    }
    let hosts = strings(&spec["hosts"]);
    let mut out = Vec::new();
    for http in spec["http"].as_array().into_iter().flatten() {
        let uri = http["match"].as_array().and_then(|m| m.first()).map(|m| &m["uri"]);
        let prefix = uri.and_then(|u| u["prefix"].as_str().or(u["exact"].as_str())).unwrap_or("/").to_string();
        let destination = http["route"].as_array().and_then(|r| r.first()).map(|r| &r["destination"]);
        let backend = match destination.and_then(|d| d["host"].as_str()) {
            Some(host) => {
                let port = destination.and_then(|d| d["port"]["number"].as_i64()).map(|n| Port::Number(n as i32));
                service_of_host(host, &o.namespace, port)
            }
            None => Backend::None,
        };
        out.push(Route {
            step: o.step.to_string(),
            source: o.id(),
            hosts: hosts.clone(),
            entry: Entry::Gateways(gateways.clone()),
            prefix,
            rewrite: http["rewrite"]["uri"].as_str().map(str::to_string),
            backend,
        });
    }
    out
}

/// `svc`, `svc.ns`, `svc.ns.svc` or `svc.ns.svc.cluster.local` is a Service; anything else is
/// outside the cluster's Services.
fn service_of_host(host: &str, namespace: &str, port: Option<Port>) -> Backend {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => Backend::Service { namespace: namespace.into(), name: name.to_string(), port },
        [name, ns] | [name, ns, "svc", ..] => {
            Backend::Service { namespace: ns.to_string(), name: name.to_string(), port }
        }
        _ => Backend::Outside(host.to_string()),
    }
}

fn ingress_routes(step: &str, i: &Ingress) -> Vec<Route> {
    let (namespace, name) = (i.namespace().unwrap_or_default(), i.name_any());
    let mut out = Vec::new();
    for rule in i.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let backend = match &path.backend.service {
                Some(s) => {
                    let port = s.port.as_ref().and_then(|p| match (p.number, &p.name) {
                        (Some(n), _) => Some(Port::Number(n)),
                        (None, Some(n)) => Some(Port::Name(n.clone())),
                        _ => None,
                    });
                    Backend::Service { namespace: namespace.clone(), name: s.name.clone(), port }
                }
                None => Backend::None,
            };
            out.push(Route {
                step: step.to_string(),
                source: format!("Ingress {namespace}/{name}"),
                hosts: rule.host.iter().cloned().collect(),
                entry: Entry::Ingress { namespace: namespace.clone(), name: name.clone() },
                prefix: path.path.clone().unwrap_or_else(|| "/".into()),
                rewrite: None,
                backend,
            });
        }
    }
    out
}

fn host_matches(pattern: &str, host: &str) -> bool {
    pattern == "*" || pattern == host || pattern.strip_prefix('*').is_some_and(|suffix| host.ends_with(suffix))
}

fn concrete(host: &str) -> bool {
    !host.contains('*')
}

/// The Service and port of a backend as live, and the pods behind it.
struct Live<'a> {
    service: &'a Service,
    port: i32,
    target: Option<Port>,
    pods: Vec<&'a Pod>,
}

fn backend_live<'a>(namespace: &str, name: &str, port: Option<&Port>, live: &'a Snapshot) -> Result<Live<'a>, String> {
    let service =
        live.service(namespace, name).ok_or_else(|| format!("Service {namespace}/{name}, which does not exist"))?;
    let spec = service.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref()).map(Vec::as_slice).unwrap_or_default();
    let found = match port {
        Some(Port::Number(n)) => ports.iter().find(|p| p.port == *n),
        Some(Port::Name(n)) => ports.iter().find(|p| p.name.as_ref() == Some(n)),
        None if ports.len() == 1 => ports.first(),
        None => None,
    };
    let found = found.ok_or_else(|| {
        let want = port.map(|p| format!("port {p}")).unwrap_or_else(|| "a port (it has several)".into());
        format!("Service {namespace}/{name}, which has no {want}")
    })?;
    let target = found.target_port.as_ref().map(|t| match t {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => Port::Number(*n),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => Port::Name(s.clone()),
    });
    let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
    let pods = if selector.is_empty() { Vec::new() } else { live.pods_with_labels(namespace, &selector) };
    Ok(Live { service, port: found.port, target, pods })
}

/// The path of the HTTP probe that the backend's pods answer on the Service's target port.
fn probe_path(b: &Live<'_>) -> Option<String> {
    let target = b.target.clone().unwrap_or(Port::Number(b.port));
    let spec = b.pods.first()?.spec.as_ref()?;
    for container in &spec.containers {
        let listens = container.ports.iter().flatten().any(|p| match &target {
            Port::Number(n) => p.container_port == *n,
            Port::Name(n) => p.name.as_ref() == Some(n),
        });
        let probes = [&container.readiness_probe, &container.liveness_probe, &container.startup_probe];
        for probe in probes.into_iter().flatten() {
            let Some(get) = &probe.http_get else { continue };
            let same_port = match (&get.port, &target) {
                (k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p), Port::Number(n)) => p == n,
                (k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(p), Port::Name(n)) => p == n,
                // A probe naming the port another way still probes this container's port.
                _ => listens,
            };
            if same_port {
                return get.path.clone();
            }
        }
    }
    None
}

/// The path a client sends for the backend to see `inner`, through the route's rewrite; None when
/// the route does not lead there.
fn outer_path(r: &Route, inner: &str) -> Option<String> {
    match &r.rewrite {
        Some(rewrite) => {
            let rest = inner.strip_prefix(rewrite.as_str())?;
            Some(format!(
                "{}{}",
                r.prefix.trim_end_matches('/'),
                if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") }
            ))
        }
        None => inner.starts_with(r.prefix.as_str()).then(|| inner.to_string()),
    }
}

/// Whether the backend's pods run httpbin (an image named `httpbin`, as kennethreitz/httpbin and
/// its forks are), which echoes a request to `/get` as JSON.
fn runs_httpbin(b: &Live<'_>) -> bool {
    b.pods.iter().flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter())).any(|c| {
        let image = c.image.as_deref().unwrap_or_default();
        let path = image.split(['@']).next().unwrap_or_default();
        let repository = path.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(path, |(r, _)| r);
        repository.rsplit('/').next() == Some("httpbin")
    })
}

/// httpbin's answer to `/get`: 200 and its JSON echo of the request (`headers`, `url`).
fn httpbin_echo() -> Judge {
    Box::new(|a| {
        let echo: Option<Value> = serde_json::from_slice(&a.body).ok();
        match echo {
            Some(e) if a.status == 200 && e["headers"].is_object() && e["url"].is_string() => {
                Ok(format!("answered 200 with httpbin's echo of the request (url {})", e["url"].as_str().unwrap_or("")))
            }
            _ => Err(format!("answered {}, not httpbin's JSON echo (headers, url): {}", a.status, a.excerpt())),
        }
    })
}

/// The backend's health endpoint, asked directly on its Service.
fn health_probe(r: &Route, live: &Snapshot) -> Option<Probe> {
    let Backend::Service { namespace, name, port } = &r.backend else { return None };
    let b = backend_live(namespace, name, port.as_ref(), live).ok()?;
    let path = probe_path(&b)?;
    Some(Probe {
        step: Some(r.step.clone()),
        kind: "health",
        subject: format!("health of Service {namespace}/{name} (from {})", r.source),
        target: Target {
            namespace: namespace.clone(),
            service: b.service.name_any(),
            port: b.port.to_string(),
            https: false,
            path,
            host: None,
        },
        judge: proxy::answered(),
    })
}

/// One request per route and gateway, through the gateway's Service, with the route's host.
fn route_probes(
    c: &mut Checks,
    r: &Route,
    gateways: &BTreeMap<String, Option<Gateway>>,
    objects: &[Object<'_>],
    live: &Snapshot,
    probes: &mut Vec<Probe>,
) {
    c.at(Some(&r.step));
    let subject = |via: &str| {
        format!("{}{} ({} via {via})", r.hosts.first().map(String::as_str).unwrap_or("*"), r.prefix, r.source)
    };
    let vias: Vec<String> = match &r.entry {
        Entry::Gateways(names) => names.iter().map(|n| format!("Gateway {n}")).collect(),
        Entry::Ingress { .. } => vec!["its ingress controller".to_string()],
    };
    // What to ask for: httpbin's `/get` under the route where the backend is httpbin (the guide's
    // check of each gateway), else the backend's health endpoint when it lies under the route,
    // else the route's own prefix.
    let mut httpbin = false;
    let path = match &r.backend {
        Backend::Service { namespace, name, port } => match backend_live(namespace, name, port.as_ref(), live) {
            Ok(b) if runs_httpbin(&b) => {
                httpbin = true;
                Ok(outer_path(r, "/get").unwrap_or_else(|| format!("{}/get", r.prefix.trim_end_matches('/'))))
            }
            Ok(b) => Ok(probe_path(&b).and_then(|p| outer_path(r, &p)).unwrap_or_else(|| r.prefix.clone())),
            Err(why) => Err(format!("routes {} to {why}", r.prefix)),
        },
        Backend::Outside(host) => {
            for via in &vias {
                c.skipped("route", subject(via), format!("routes to {host}, outside the cluster's Services"));
            }
            c.at(None);
            return;
        }
        Backend::None => Ok(r.prefix.clone()),
    };
    let path = match path {
        Ok(path) => path,
        Err(why) => {
            for via in &vias {
                c.failed("route", subject(via), why.clone());
            }
            c.at(None);
            return;
        }
    };
    let probe = |via: &str, target: Target| Probe {
        step: Some(r.step.clone()),
        kind: "route",
        subject: subject(via),
        target: Target { path: path.clone(), ..target },
        judge: if httpbin { httpbin_echo() } else { proxy::answered() },
    };
    match &r.entry {
        Entry::Gateways(names) => {
            for (name, via) in names.iter().zip(&vias) {
                match gateways.get(name).and_then(Option::as_ref) {
                    None => c.failed("route", subject(via), format!("Gateway {name} does not exist in the cluster")),
                    Some(g) => match gateway_target(g, r, objects, live) {
                        Ok(target) => probes.push(probe(via, target)),
                        Err(Unserved::Skip(why)) => c.skipped("route", subject(via), why),
                        Err(Unserved::Fail(why)) => c.failed("route", subject(via), why),
                    },
                }
            }
        }
        Entry::Ingress { namespace, name } => match ingress_target(namespace, name, r, live) {
            Ok(target) => probes.push(probe(&vias[0], target)),
            Err(why) => c.failed("route", subject(&vias[0]), why),
        },
    }
    c.at(None);
}

enum Unserved {
    /// No workload of the plan is meant to serve it (a gateway the site turned off).
    Skip(String),
    Fail(String),
}

/// The gateway's Service and port for a route, and the host to send.
fn gateway_target(g: &Gateway, r: &Route, objects: &[Object<'_>], live: &Snapshot) -> Result<Target, Unserved> {
    let name = format!("{}/{}", g.namespace, g.name);
    let selector = show_labels(&g.selector);
    let pods: Vec<&Pod> = live.pods.iter().filter(|p| has_labels(p.labels(), &g.selector)).collect();
    let Some(pod) = pods.first() else {
        let planned = objects
            .iter()
            .filter_map(|o| o.pod_spec().and(o.field(&["spec", "template", "metadata", "labels"])))
            .any(|labels| {
                let labels: BTreeMap<String, String> = serde_yaml_ng::from_value(labels.clone()).unwrap_or_default();
                has_labels(&labels, &g.selector)
            });
        let why = format!("no pod serves Gateway {name} (selector {selector})");
        return Err(if planned {
            Unserved::Fail(why)
        } else {
            Unserved::Skip(format!("{why}, and no workload of the plan would"))
        });
    };
    // A plain HTTP server first: the API server's proxy sends no SNI.
    let mut servers: Vec<&Server> = g
        .servers
        .iter()
        .filter(|s| r.hosts.iter().any(|h| s.hosts.iter().any(|p| host_matches(p, h) || host_matches(h, p))))
        .collect();
    servers.sort_by_key(|s| s.https);
    let server = servers
        .first()
        .ok_or_else(|| Unserved::Fail(format!("Gateway {name} has no server for {}", r.hosts.join(", "))))?;
    let namespace = pod.namespace().unwrap_or_default();
    let service = live
        .services
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .find(|s| {
            let spec = s.spec.as_ref();
            let selector = spec.and_then(|s| s.selector.clone()).unwrap_or_default();
            !selector.is_empty()
                && has_labels(pod.labels(), &selector)
                && spec.and_then(|s| s.ports.as_ref()).into_iter().flatten().any(|p| p.port == server.port)
        })
        .ok_or_else(|| {
            Unserved::Fail(format!("no Service in {namespace} exposes port {} of Gateway {name}", server.port))
        })?;
    let host = r.hosts.iter().find(|h| concrete(h)).or_else(|| server.hosts.iter().find(|h| concrete(h))).cloned();
    Ok(Target {
        namespace,
        service: service.name_any(),
        port: server.port.to_string(),
        https: server.https,
        path: String::new(),
        host,
    })
}

/// The ingress controller's Service: the one whose address the controller wrote into the
/// Ingress's status.
fn ingress_target(namespace: &str, name: &str, r: &Route, live: &Snapshot) -> Result<Target, String> {
    let ingress =
        find(&live.ingresses, namespace, name).ok_or_else(|| format!("Ingress {namespace}/{name} does not exist"))?;
    let addresses: Vec<String> = ingress
        .status
        .iter()
        .flat_map(|s| s.load_balancer.iter().flat_map(|l| l.ingress.iter().flatten()))
        .flat_map(|a| a.ip.iter().chain(a.hostname.iter()).cloned())
        .collect();
    if addresses.is_empty() {
        return Err(format!("Ingress {namespace}/{name} has no address: no ingress controller has admitted it"));
    }
    let service = live
        .services
        .iter()
        .find(|s| {
            let spec = s.spec.as_ref();
            let mut own = spec
                .and_then(|s| s.cluster_ip.clone())
                .into_iter()
                .chain(spec.and_then(|s| s.external_ips.clone()).into_iter().flatten());
            let balanced =
                s.status.iter().flat_map(|st| st.load_balancer.iter().flat_map(|l| l.ingress.iter().flatten()));
            let mut lb = balanced.flat_map(|a| a.ip.iter().chain(a.hostname.iter()).cloned());
            own.any(|a| addresses.contains(&a)) || lb.any(|a| addresses.contains(&a))
        })
        .ok_or_else(|| {
            format!("no Service has the address {} that Ingress {namespace}/{name} was given", addresses.join(", "))
        })?;
    let tls = ingress
        .spec
        .iter()
        .flat_map(|s| s.tls.iter().flatten())
        .any(|t| t.hosts.iter().flatten().any(|h| r.hosts.contains(h)));
    let port = if tls { 443 } else { 80 };
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    if !ports.into_iter().flatten().any(|p| p.port == port) {
        return Err(format!("the ingress controller's Service {} has no port {port}", service.name_any()));
    }
    Ok(Target {
        namespace: service.namespace().unwrap_or_default(),
        service: service.name_any(),
        port: port.to_string(),
        https: tls,
        path: String::new(),
        host: r.hosts.first().cloned(),
    })
}

/// What the cluster serves at its edge, for the certificate checks.
struct Served<'a> {
    cluster: &'a str,
    routes: &'a [Route],
    gateways: &'a BTreeMap<String, Option<Gateway>>,
    live: &'a Snapshot,
    site: &'a Site,
    edge: &'a SiteEdge,
}

impl Served<'_> {
    /// The certificate served for each host of the site file that this cluster routes: from the
    /// Secret its Ingress or Gateway names where TLS ends in the cluster; where it ends at a load
    /// balancer, the certificate file the site file names for it, else what the load balancer
    /// presents at its address (the site file's, else the host's port 443), asked from here.
    fn certificates(&self, c: &mut Checks) {
        let cluster = self.cluster;
        let routed: BTreeSet<&str> = self
            .routes
            .iter()
            .flat_map(|r| r.hosts.iter())
            .chain(self.gateways.values().flatten().flat_map(|g| g.servers.iter().flat_map(|s| s.hosts.iter())))
            .map(String::as_str)
            .collect();
        // The CAs the site names: the registry's, and the domains' when another CA issued theirs.
        let ca = SiteCa::from_site(self.site).map(|ca| ca.pem).map_err(|e| format!("the site CA: {e:#}"));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut found = Vec::new();
        for domain in self.edge.domains.values() {
            let (host, lb) = match domain {
                Domain::Entry { host, lb } => (host, lb.as_deref()),
                Domain::Host(host) => (host, None),
            };
            let balancer = lb.and_then(|lb| self.edge.load_balancers.get(lb).map(|b| (lb, b)));
            let lb_cluster = balancer.and_then(|(_, b)| b.cluster.as_deref());
            if lb_cluster.is_some_and(|lc| lc != cluster) || !routed.iter().any(|p| host_matches(p, host)) {
                continue;
            }
            found.push((host, self.certificate_of(host).ok_or(balancer)));
        }
        // The load balancers are asked all at once: one that does not answer costs its timeout once.
        let served: Vec<Option<Presented>> = std::thread::scope(|scope| {
            let asked: Vec<_> = found
                .iter()
                .map(|(host, source)| {
                    let balancer = match source {
                        Err(Some((name, b))) if b.cert.is_none() => Some((*name, *b)),
                        _ => None,
                    };
                    scope.spawn(move || {
                        let (name, b) = balancer?;
                        let address = b.address.clone().unwrap_or_else(|| format!("{host}:443"));
                        let chain = certs::served(&address, host, LB_TIMEOUT);
                        Some((format!("served at {address} (load balancer {name})"), chain))
                    })
                })
                .collect();
            asked.into_iter().map(|h| h.join().unwrap_or(None)).collect()
        });
        for ((host, source), served) in found.into_iter().zip(served) {
            let subject = format!("certificate of {host}");
            let (source, pem) = match (source, served) {
                (Ok(in_cluster), _) => in_cluster,
                (Err(Some((name, b))), _) if b.cert.is_some() => {
                    let written = b.cert.as_deref().unwrap_or_default();
                    let path = self.site.resolve_path(written);
                    let pem = std::fs::read(&path).map_err(|e| format!("{} cannot be read: {e}", path.display()));
                    (format!("load_balancers.{name}.cert {written}"), pem)
                }
                (Err(Some((name, _))), Some((_, Err(e)))) => {
                    let why = format!(
                        "its TLS ends at load balancer {name}, which did not answer TLS from here ({e}), and the site file names no load_balancers.{name}.cert"
                    );
                    c.skipped("certificate", subject, why);
                    continue;
                }
                (_, Some(answered)) => answered,
                (Err(_), None) => {
                    let why = format!("no Ingress tls or Gateway credentialName of cluster {cluster} names {host}: its TLS ends outside the cluster (a load balancer the site file does not name)");
                    c.skipped("certificate", subject, why);
                    continue;
                }
            };
            let result = match (&pem, &ca) {
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
                (Ok(pem), Ok(ca)) => certs::check(pem, host, ca.as_bytes(), now),
            };
            c.outcome(
                "certificate",
                subject,
                result.map(|ok| format!("{source}: {ok}")).map_err(|e| format!("{source}: {e}")),
            );
        }
    }

    /// The Secret that holds the certificate the cluster serves for `host`, and its PEM.
    fn certificate_of(&self, host: &str) -> Option<Presented> {
        let live = self.live;
        let secret = |namespace: &str, name: &str| {
            let s = find(&live.secrets, namespace, name);
            let crt = s.and_then(|s| s.data.as_ref()).and_then(|d| d.get("tls.crt")).map(|b| b.0.clone());
            (
                format!("Secret {namespace}/{name}"),
                crt.ok_or_else(|| format!("Secret {namespace}/{name} has no tls.crt")),
            )
        };
        for r in self.routes {
            if let Entry::Ingress { namespace, name } = &r.entry {
                let Some(ingress) = find(&live.ingresses, namespace, name) else { continue };
                for t in ingress.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
                    if let (true, Some(secret_name)) =
                        (t.hosts.iter().flatten().any(|h| host_matches(h, host)), &t.secret_name)
                    {
                        return Some(secret(namespace, secret_name));
                    }
                }
            }
        }
        for g in self.gateways.values().flatten() {
            for s in &g.servers {
                if let (true, Some(credential)) = (s.hosts.iter().any(|h| host_matches(h, host)), &s.credential) {
                    // Istio reads a credential from the namespace of the gateway's pods.
                    let pod_ns =
                        live.pods.iter().find(|p| has_labels(p.labels(), &g.selector)).and_then(|p| p.namespace());
                    return Some(secret(pod_ns.as_deref().unwrap_or(&g.namespace), credential));
                }
            }
        }
        None
    }
}
