//! HTTP requests from inside the cluster, through the API server's service proxy: the API server
//! connects to a ready endpoint of the Service, so a request tests the Service, its endpoints and
//! the pod behind them, and needs no pod, image or port of our own. The `Host` header is passed
//! through untouched (the proxy keeps the client's), so an ingress controller or gateway routes
//! the request as it routes one from the load balancer.

use std::time::Duration;

use kube::client::Body;
use kube::Client;

use super::check::Checks;

const TIMEOUT: Duration = Duration::from_secs(20);

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
}

/// Where a request goes: `scheme:service:port` in a namespace, and the path on it.
pub struct Target {
    pub namespace: String,
    pub service: String,
    /// A port number or name of the Service.
    pub port: String,
    pub https: bool,
    pub path: String,
    /// The Host header; the API server's own name when None.
    pub host: Option<String>,
}

impl Target {
    pub fn describe(&self) -> String {
        let via = format!("Service {}/{}:{}", self.namespace, self.service, self.port);
        match &self.host {
            Some(h) => format!("{h}{} via {via}", self.path),
            None => format!("{} on {via}", self.path),
        }
    }
}

/// Whether an answer is what the check wanted: Ok with what to report, or Err with the reason.
pub type Judge = Box<dyn Fn(&Answer) -> Result<String, String> + Send + Sync>;

/// Answered at all, with a status below 400 (a redirect counts: it is the route's own answer).
pub fn answered() -> Judge {
    Box::new(|a| match a.status {
        s if s < 400 => Ok(format!("answered {s}")),
        s => Err(format!("answered {s}: {}", a.excerpt())),
    })
}

/// One request that makes one check.
pub struct Probe {
    pub step: Option<String>,
    pub kind: &'static str,
    pub subject: String,
    pub target: Target,
    pub judge: Judge,
}

/// Runs the probes a few at a time and adds their checks in the order given.
pub async fn run_all(client: &Client, probes: Vec<Probe>, c: &mut Checks) {
    use futures_util::StreamExt;
    let results: Vec<Result<String, String>> = futures_util::stream::iter(&probes)
        .map(|p| async move {
            let answer = get(client, &p.target).await?;
            (p.judge)(&answer).map(|ok| format!("{ok} for {}", p.target.describe()))
        })
        .buffered(8)
        .collect()
        .await;
    for (p, result) in probes.iter().zip(results) {
        c.at(p.step.as_deref());
        c.outcome(p.kind, p.subject.clone(), result.map_err(|e| format!("{}: {e}", p.target.describe())));
    }
    c.at(None);
}

/// GET through the service proxy. Err when the request never reached the pod: the API server's
/// own refusal (no endpoint, connection refused) or no answer in time.
pub async fn get(client: &Client, t: &Target) -> Result<Answer, String> {
    let scheme = if t.https { "https" } else { "http" };
    let path = if t.path.starts_with('/') { t.path.clone() } else { format!("/{}", t.path) };
    let uri = format!("/api/v1/namespaces/{}/services/{scheme}:{}:{}/proxy{path}", t.namespace, t.service, t.port);
    let mut request = http::Request::get(&uri);
    if let Some(host) = &t.host {
        request = request.header(http::header::HOST, host);
    }
    let request = request.body(Body::empty()).map_err(|e| format!("{uri}: {e}"))?;
    let exchange = async {
        let response = client.send(request).await.map_err(|e| format!("the API server did not proxy it: {e}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect_bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
        Ok::<_, String>(Answer { status, body: body.to_vec() })
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
    match refusal(&answer) {
        Some(message) => Err(format!("the API server could not reach it: {message}")),
        None => Ok(answer),
    }
}

/// The API server answers for itself, with a v1 Status, when it cannot reach a pod.
fn refusal(a: &Answer) -> Option<String> {
    if a.status < 500 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
    (v["kind"] == "Status" && v["apiVersion"] == "v1").then(|| v["message"].as_str().unwrap_or("").to_string())
}
