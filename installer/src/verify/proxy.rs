//! Checks made by HTTP requests from inside the cluster, through the API server's service proxy
//! ([`crate::service_proxy`]): a request tests the Service, its endpoints and the pod behind them.

use std::time::Duration;

use kube::Client;

use super::check::Checks;
use crate::service_proxy::{self, Answer, ServicePort};

const TIMEOUT: Duration = Duration::from_secs(20);

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
    let service = ServicePort { namespace: &t.namespace, name: &t.service, port: &t.port, https: t.https };
    let headers: Vec<_> = t.host.iter().map(|h| (http::header::HOST.to_string(), h.clone())).collect();
    let request = service_proxy::Request { method: "GET", path: &t.path, headers: &headers, body: &[] };
    let answer = tokio::time::timeout(TIMEOUT, service_proxy::send(client, &service, &request))
        .await
        .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("{e:#}"))?;
    match answer.refusal() {
        Some(message) => Err(format!("the API server could not reach it: {message}")),
        None => Ok(answer),
    }
}
