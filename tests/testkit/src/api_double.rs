//! A test double of the in-site HTTP APIs that the MOSIP plan's operating steps call through the
//! API server's service proxy (Elasticsearch's ILM and index templates, Kibana's saved-objects
//! import, Rancher's registration manifest, Keycloak's SAML IdP metadata), and the part Rancher's
//! controllers play beside them. None of these servers runs on this machine: Rancher and Kibana
//! need their upstream builds, Elasticsearch's ILM is an x-pack feature missing from the builds on
//! Maven Central, and Keycloak's client import runs inside a Job, which a kwok pod never runs
//! (installer/tests/saml.rs runs that import against a real Keycloak). The double records every
//! request, with the port it came in on, and answers as those APIs do, as far as the steps use
//! them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};

use crate::crds::{self, Crd};
use crate::KubeControlPlane;

/// The management cluster id Rancher's controllers give the registered cluster (the test plays
/// them: [`play_rancher_controllers`]).
pub const CLUSTER_ID: &str = "c-m-4x7kq2vb";
/// The registration token they make for it.
pub const TOKEN: &str = "r7tqk9v2l5xw8mzd4bcn6hjp3sgf";
/// Where Keycloak serves the master realm's SAML IdP metadata (the `saml` step reads it).
pub const IDP_METADATA_PATH: &str = "/auth/realms/master/protocol/saml/descriptor";
/// The shape of Keycloak 16's realm descriptor, cut short (installer/tests/saml.rs reads the real one).
pub const IDP_METADATA: &str = "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
     entityID=\"https://keycloak.site.test/auth/realms/master\"><md:IDPSSODescriptor \
     protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"/></md:EntityDescriptor>";

/// The kinds Rancher 2.6 makes when it starts (its chart carries no CRD) that the plan's steps
/// write: an imported cluster's registration, its token, and the SAML AuthConfig.
pub const RANCHER_CRDS: &[Crd] = &[
    Crd { group: "provisioning.cattle.io", kind: "Cluster", plural: "clusters", namespaced: true, versions: &["v1"] },
    Crd {
        group: "management.cattle.io",
        kind: "ClusterRegistrationToken",
        plural: "clusterregistrationtokens",
        namespaced: true,
        versions: &["v3"],
    },
    Crd {
        group: "management.cattle.io",
        kind: "AuthConfig",
        plural: "authconfigs",
        namespaced: false,
        versions: &["v3"],
    },
];

/// One request the double answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The port it came in on: which Service's endpoint was asked.
    pub port: u16,
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Recorded {
    /// `METHOD path`, as assertions compare requests.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// The ILM policy as Elasticsearch keeps it: the body's policy and its version.
    policy: Option<(Json, u64)>,
    /// The registration manifest names an image the bundle does not carry.
    leaky_manifest: bool,
    registry: String,
}

/// The double: one state, served on every address it is told to [`listen`](ApiDouble::listen) on.
pub struct ApiDouble {
    state: Arc<Mutex<State>>,
    /// Each address listened on, and its port.
    listening: Mutex<BTreeMap<String, u16>>,
}

impl ApiDouble {
    /// A double whose Rancher names the agent image under `registry` (the site registry's
    /// address, as Rancher's `systemDefaultRegistry` makes it do).
    pub fn new(registry: &str) -> ApiDouble {
        let state = Arc::new(Mutex::new(State { registry: registry.into(), ..State::default() }));
        ApiDouble { state, listening: Mutex::default() }
    }

    /// Serves on `address` (`IP:PORT`; port 0 for a free one) from now until the process ends;
    /// returns the port.
    pub fn listen(&self, address: &str) -> Result<u16> {
        let mut listening = self.listening.lock().unwrap();
        // Two Services may lead to one address and port: it is served once.
        if let Some(port) = listening.get(address) {
            return Ok(*port);
        }
        let listener =
            TcpListener::bind(address).with_context(|| format!("the API double cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        listening.insert(address.to_string(), port);
        let state = self.state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve_connection(stream, port, &state));
            }
        });
        Ok(port)
    }

    /// Serves Service `namespace/name`'s `port` through the API server's proxy: the Service's pods
    /// get this machine's address ([`KubeControlPlane::point_service_at`]) and the double listens
    /// there on the port their endpoint names. Returns that port.
    pub fn serve_service(&self, kube: &KubeControlPlane, namespace: &str, name: &str, port: u16) -> Result<u16> {
        let ip = crate::host_address()?;
        let ports = kube.point_service_at(namespace, name, &ip)?;
        let (_, target) = ports
            .into_iter()
            .find(|(p, _)| *p == port)
            .with_context(|| format!("Service {namespace}/{name} has no port {port}"))?;
        self.listen(&format!("{ip}:{target}"))
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// From now on the registration manifest names an image no bundle carries.
    pub fn leak_in_manifest(&self) {
        self.state.lock().unwrap().leaky_manifest = true;
    }
}

/// One connection, HTTP/1.1 with keep-alive as the API server's proxy speaks it.
fn serve_connection(stream: TcpStream, port: u16, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) =
            (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let Ok(body) = read_body(&mut reader, &headers) else { return };
        let request = Recorded { port, method, path, headers, body };
        let (status, content_type, answer) = {
            let mut state = state.lock().unwrap();
            let answered = answer(&request, &mut state);
            state.requests.push(request);
            answered
        };
        let head =
            format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", answer.len());
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(answer.as_bytes())).is_err() {
            return;
        }
    }
}

fn read_body(reader: &mut BufReader<TcpStream>, headers: &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        body.resize(len.parse().map_err(|_| std::io::ErrorKind::InvalidData)?, 0);
        reader.read_exact(&mut body)?;
    } else if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| std::io::ErrorKind::InvalidData)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(body)
}

/// The answers of the four APIs, as far as the plan's steps use them.
fn answer(r: &Recorded, state: &mut State) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/_ilm/policy/mosip-logs") => match &state.policy {
            // Elasticsearch adds its defaults and metadata to what it was given.
            Some((policy, version)) => {
                let mut policy = policy.clone();
                policy["phases"]["delete"]["actions"]["delete"]["delete_searchable_snapshot"] = json!(true);
                let held = json!({"mosip-logs": {"version": version, "modified_date": "2026-12-06T07:00:00.000Z", "policy": policy}});
                (200, JSON, held.to_string())
            }
            None => (404, JSON, json!({"error": {"type": "resource_not_found_exception"}, "status": 404}).to_string()),
        },
        ("PUT", "/_ilm/policy/mosip-logs") => match serde_json::from_slice::<Json>(&r.body) {
            Ok(body) => {
                let version = state.policy.as_ref().map_or(1, |(_, v)| v + 1);
                state.policy = Some((body["policy"].clone(), version));
                (200, JSON, json!({"acknowledged": true}).to_string())
            }
            Err(e) => (400, JSON, json!({"error": {"type": "parse_exception", "reason": e.to_string()}}).to_string()),
        },
        // A legacy index template: Elasticsearch replaces one of that name.
        ("PUT", "/_template/mosip-logs") => match serde_json::from_slice::<Json>(&r.body) {
            Ok(_) => (200, JSON, json!({"acknowledged": true}).to_string()),
            Err(e) => (400, JSON, json!({"error": {"type": "parse_exception", "reason": e.to_string()}}).to_string()),
        },
        ("POST", "/api/saved_objects/_import?overwrite=true") => {
            if !r.headers.contains_key("kbn-xsrf") {
                return (400, JSON, json!({"message": "Request must contain a kbn-xsrf header."}).to_string());
            }
            let objects = String::from_utf8_lossy(&r.body).matches("\"type\":").count();
            (200, JSON, json!({"success": true, "successCount": objects}).to_string())
        }
        ("GET", p) if p == format!("/v3/import/{TOKEN}_{CLUSTER_ID}.yaml") => {
            // Rancher names the agent image under its systemDefaultRegistry: the site registry.
            let image = match state.leaky_manifest {
                false => format!("{}/rancher/rancher-agent:v2.6.9", state.registry),
                true => "docker.io/rancher/not-carried:v1".to_string(),
            };
            (200, "text/plain", agent_manifest(&image))
        }
        ("GET", IDP_METADATA_PATH) => (200, "application/xml", IDP_METADATA.into()),
        _ => (404, "text/plain", "404 page not found".into()),
    }
}

/// The shape of Rancher's import manifest (`pkg/systemtemplate`), cut to what the tests read.
fn agent_manifest(image: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: cattle-system\n---\napiVersion: v1\nkind: Secret\n\
         metadata:\n  name: cattle-credentials-1a2b3c\n  namespace: cattle-system\ntype: Opaque\ndata:\n  \
         url: aHR0cHM6Ly9yYW5jaGVyLnh5ei5uZXQ=\n  token: cjd0cWs5djJsNXh3OG16ZDRiY242aGpwM3NnZg==\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: import-marker\n  namespace: cattle-system\ndata:\n  \
         image: \"{image}\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cattle-cluster-agent\n  \
         namespace: cattle-system\nspec:\n  selector:\n    matchLabels: {{app: cattle-cluster-agent}}\n  template:\n    \
         metadata:\n      labels: {{app: cattle-cluster-agent}}\n    spec:\n      containers:\n      - name: cluster-register\n        \
         image: {image}\n        env:\n        - {{name: CATTLE_SERVER, value: \"https://rancher.xyz.net\"}}\n"
    )
}

/// What Rancher makes when it starts and the plan's steps write into: [`RANCHER_CRDS`] served,
/// and the namespaces it registers clusters in (`fleet-default`) and keeps auth secrets in
/// (`cattle-global-data`).
pub fn serve_rancher_kinds(kube: &KubeControlPlane) -> Result<()> {
    kube.apply(&crds::yaml(RANCHER_CRDS))?;
    kube.kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"])?;
    kube.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: fleet-default}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: cattle-global-data}\n",
    )?;
    Ok(())
}

/// What Rancher's controllers do with an imported cluster once a plan registered it as
/// `provisioning.cattle.io` Cluster `name` in `fleet-default` (Rancher 2.6.9's
/// `pkg/controllers/provisioningv2/cluster` and `pkg/controllers/dashboard/clusterregistrationtoken`):
/// [`CLUSTER_ID`] in its status, a namespace of that name, and [`TOKEN`] in a
/// ClusterRegistrationToken there. Waits for the registration until `gave_up` says the run that
/// should make it is over; returns whether it came.
pub fn play_rancher_controllers(kube: &KubeControlPlane, name: &str, gave_up: impl Fn() -> bool) -> Result<bool> {
    while kube.kubectl(&["-n", "fleet-default", "get", "clusters.provisioning.cattle.io", name]).is_err() {
        if gave_up() {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = json!({"status": {"clusterName": CLUSTER_ID, "ready": false}}).to_string();
    kube.kubectl(&[
        "-n",
        "fleet-default",
        "patch",
        "clusters.provisioning.cattle.io",
        name,
        "--type=merge",
        "-p",
        &status,
    ])?;
    let token = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CLUSTER_ID}},
        {"apiVersion": "management.cattle.io/v3", "kind": "ClusterRegistrationToken",
            "metadata": {"name": "default-token", "namespace": CLUSTER_ID},
            "spec": {"clusterName": CLUSTER_ID}, "status": {"token": TOKEN}},
    ]});
    kube.apply(&token.to_string())?;
    Ok(true)
}
