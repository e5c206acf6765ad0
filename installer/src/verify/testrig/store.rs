//! The object store a test rig reports to, read from inside the cluster. Its S3 endpoint is a
//! Service of the cluster (`http://minio.minio:9000`), so each request goes through the API
//! server's service proxy. S3 wants each request signed, and the API server drops the
//! `Authorization` header once it has authenticated the caller (kubernetes#38775), so every
//! request is a presigned URL (the signature in its query), sent with the `Host` it was signed
//! for (the proxy keeps the client's).

use std::time::Duration;

use kube::Client;
use reqwest::Url;
use rusty_s3::actions::list_objects_v2::ListObjectsContent;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::super::proxy::{self, Target};

/// How long a presigned request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);

pub struct Store {
    bucket: Bucket,
    credentials: Credentials,
    endpoint: String,
    namespace: String,
    service: String,
    port: String,
    https: bool,
}

/// Where to find a bucket and how to sign for it, as the rig's settings give them.
pub struct Settings<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub secret: &'a str,
}

impl Store {
    /// The store at `endpoint`, whose host must name a Service of the cluster
    /// (`svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`).
    pub fn new(s: &Settings<'_>) -> Result<Store, String> {
        let url = Url::parse(s.endpoint).map_err(|e| format!("s3-host {}: {e}", s.endpoint))?;
        let host = url.host_str().unwrap_or_default();
        let (service, namespace) = match host.split('.').collect::<Vec<_>>().as_slice() {
            [name, ns] | [name, ns, "svc", ..] => (name.to_string(), ns.to_string()),
            _ => return Err(format!("s3-host {} is not a Service of the cluster (name.namespace)", s.endpoint)),
        };
        let https = url.scheme() == "https";
        let port = url.port_or_known_default().unwrap_or(80).to_string();
        let bucket = Bucket::new(url.clone(), UrlStyle::Path, s.bucket.to_string(), s.region.to_string())
            .map_err(|e| format!("bucket {} at {}: {e}", s.bucket, s.endpoint))?;
        Ok(Store {
            bucket,
            credentials: Credentials::new(s.key, s.secret),
            endpoint: s.endpoint.to_string(),
            namespace,
            service,
            port,
            https,
        })
    }

    /// `bucket automation at http://minio.minio:9000`, for messages.
    pub fn describe(&self) -> String {
        format!("bucket {} at {}", self.bucket.name(), self.endpoint)
    }

    /// Every object of the bucket.
    pub async fn list(&self, client: &Client) -> Result<Vec<ListObjectsContent>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let body = self.send(client, action.sign(SIGNED_FOR), "listing").await?;
            let page = ListObjectsV2::parse_response(&String::from_utf8_lossy(&body))
                .map_err(|e| format!("listing {}: not S3's answer: {e}", self.describe()))?;
            out.extend(page.contents);
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub async fn get(&self, client: &Client, key: &str) -> Result<Vec<u8>, String> {
        let action = self.bucket.get_object(Some(&self.credentials), key);
        self.send(client, action.sign(SIGNED_FOR), &format!("reading {key} of")).await
    }

    /// A presigned request through the service proxy; its URL (which holds the signature) is
    /// never put in a message.
    async fn send(&self, client: &Client, signed: Url, what: &str) -> Result<Vec<u8>, String> {
        let path = match signed.query() {
            Some(q) => format!("{}?{q}", signed.path()),
            None => signed.path().to_string(),
        };
        let host = match signed.port() {
            Some(p) => format!("{}:{p}", signed.host_str().unwrap_or_default()),
            None => signed.host_str().unwrap_or_default().to_string(),
        };
        let target = Target {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            port: self.port.clone(),
            https: self.https,
            path,
            host: Some(host),
        };
        let failed =
            |why: String| format!("{what} {} (Service {}/{}): {why}", self.describe(), self.namespace, self.service);
        let answer = proxy::get(client, &target).await.map_err(failed)?;
        match answer.status {
            200 => Ok(answer.body),
            s => Err(failed(format!("answered {s}: {}", s3_error(&answer.body)))),
        }
    }
}

/// S3's error code and message from its XML answer, else the answer's start.
fn s3_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        Some(text[start..].split('<').next()?.to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => text.chars().take(120).collect(),
    }
}
