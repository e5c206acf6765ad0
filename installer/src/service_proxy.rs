//! Requests to a Service through the Kubernetes API server's service proxy: the API server
//! connects to a ready endpoint of the Service, so a request reaches the pod behind it with no
//! pod, image, port-forward or route of the installer's own. The `http` step and `install verify`
//! both send through here. Headers are passed through as given, `Host` included (the proxy keeps
//! the client's), so an ingress controller or gateway routes the request as it routes one from
//! the load balancer.

use anyhow::{Context, Result};
use kube::client::Body;
use kube::Client;

/// A port of a Service, reached over HTTP or HTTPS.
pub struct ServicePort<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// A port number or name of the Service.
    pub port: &'a str,
    pub https: bool,
}

impl ServicePort<'_> {
    /// `/api/v1/namespaces/<ns>/services/<scheme>:<name>:<port>/proxy`.
    pub fn base(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("/api/v1/namespaces/{}/services/{scheme}:{}:{}/proxy", self.namespace, self.name, self.port)
    }

    /// `request` addressed to this port through the proxy.
    pub fn request(&self, request: &Request<'_>) -> Result<http::Request<Body>> {
        let slash = if request.path.starts_with('/') { "" } else { "/" };
        let uri = format!("{}{slash}{}", self.base(), request.path);
        let mut builder = http::Request::builder().method(request.method).uri(&uri);
        for (k, v) in request.headers {
            builder = builder.header(k, v);
        }
        let body = match request.body {
            [] => Body::empty(),
            bytes => Body::from(bytes.to_vec()),
        };
        builder.body(body).with_context(|| format!("building the request {uri}"))
    }
}

/// One request to a Service: the path (and query) on it, a leading `/` added when missing.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first line of the body, shortened, for messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let short: String = line.chars().take(120).collect();
        if short.is_empty() {
            "an empty body".into()
        } else {
            format!("{short:?}")
        }
    }

    /// The API server's message when it answered for itself, with a v1 Status, because it
    /// could not reach a pod of the Service.
    pub fn refusal(&self) -> Option<String> {
        if self.status < 500 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        (v["kind"] == "Status" && v["apiVersion"] == "v1").then(|| v["message"].as_str().unwrap_or("").to_string())
    }
}

/// Sends `request` to `service` and reads the whole answer, whoever gave it: the pod, or the
/// API server refusing for it (see [`Answer::refusal`]).
pub async fn send(client: &Client, service: &ServicePort<'_>, request: &Request<'_>) -> Result<Answer> {
    exchange(client, service.request(request)?).await
}

/// Sends a request built by [`ServicePort::request`].
pub async fn exchange(client: &Client, request: http::Request<Body>) -> Result<Answer> {
    let response = client.send(request).await.context("the API server did not proxy it")?;
    let status = response.status().as_u16();
    let body = response.into_body().collect_bytes().await.context("reading the answer")?;
    Ok(Answer { status, body: body.to_vec() })
}
