//! `registry push`: copies every artifact of one or more bundles into an existing registry
//! (Harbor, Artifactory, Quay, distribution) through the distribution API.
//!
//! Each artifact goes to `<prefix>/<original name with its host first>`: `docker.io/mosipid/x:1.2`
//! pushed to `reg.site/mirror` lands at `reg.site/mirror/docker.io/mosipid/x:1.2`; a host with
//! a port (`localhost:5000`) becomes `localhost-5000`, since names cannot hold a colon. Blobs
//! are uploaded whole (POST, then PUT with the content), skipped when a HEAD finds them, and
//! manifests are put after everything they point at.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use bundles::artifact::{Reference, ANNOTATION_REF};
use bundles::digest::{blob_path, parse_sha256, Digest};
use bundles::Bundle;
use clientcore::{basic_authorization, bearer_authorization, parse_challenge, Challenge};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::Value;

use crate::names::valid_name;

/// How to reach and log in to the target registry.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// User and password, offered to a registry that asks (basic, or for a bearer token).
    pub credentials: Option<(String, String)>,
    /// Speak plain HTTP (a registry on a trusted loopback or lab network).
    pub plain_http: bool,
    /// A CA (PEM) to trust besides the system's, e.g. the site CA the registry generated.
    pub ca_file: Option<PathBuf>,
}

/// What a push did, for the line people read at the end.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Artifacts (index entries) pushed.
    pub artifacts: usize,
    /// Blobs sent.
    pub blobs_uploaded: usize,
    /// Blobs the target already held, found by a HEAD and not sent again.
    pub blobs_skipped: usize,
    /// Manifests and indexes put.
    pub manifests: usize,
}

/// Pushes every artifact of the bundles (a delta after its base) to `target`, `HOST[:PORT][/PREFIX]`.
pub fn push_bundle(bundle_dirs: &[PathBuf], target: &str, opts: &PushOptions) -> anyhow::Result<PushReport> {
    // No repository name or host holds an `@`: one here means credentials, which every message
    // below would repeat. Only what follows the last `@` is named.
    if let Some((_, after)) = target.rsplit_once('@') {
        bail!(
            "push target '…@{after}' carries credentials: give the user with --username and the password in \
             the environment variable that --password-env names"
        );
    }
    let (host, prefix) = match target.split_once('/') {
        Some((h, p)) => (h, p.trim_matches('/')),
        None => (target, ""),
    };
    if host.is_empty() || (!prefix.is_empty() && !valid_name(prefix)) {
        bail!("push target '{target}' is not HOST[:PORT][/PREFIX]");
    }
    let bundles = bundle_dirs
        .iter()
        .map(|d| Bundle::open(d).with_context(|| format!("cannot open bundle {}", d.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scheme = if opts.plain_http { "http" } else { "https" };
    let mut pusher = Pusher {
        base: format!("{scheme}://{host}"),
        client: crate::tls::https_client(opts.ca_file.as_deref())?,
        credentials: opts.credentials.clone(),
        token: None,
        bundles,
        done: HashSet::new(),
        report: PushReport::default(),
    };
    pusher.reach(host, opts.plain_http)?;
    for (i, dir) in bundle_dirs.iter().enumerate() {
        let index = pusher.bundles[i].index().with_context(|| format!("bundle {}", dir.display()))?;
        for desc in index.manifests() {
            let Some(text) = desc.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF)) else { continue };
            let r = Reference::parse(text)?;
            let name = format!("{}/{}", r.registry.replace(':', "-"), r.repository);
            let repo = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if !valid_name(&repo) {
                bail!("{text} would be pushed as '{repo}', which is not a valid repository name");
            }
            let digest = parse_sha256(desc.digest().as_ref())?;
            pusher
                .manifest(&repo, &digest, desc.media_type().as_ref(), r.tag.as_deref())
                .with_context(|| format!("pushing {text} to {host}/{repo}"))?;
            pusher.report.artifacts += 1;
        }
    }
    Ok(pusher.report)
}

struct Pusher {
    base: String,
    client: Client,
    credentials: Option<(String, String)>,
    /// The `Authorization` value that last worked: Basic, or a Bearer token from the realm.
    token: Option<String>,
    bundles: Vec<Bundle>,
    /// (repository, digest) already in the target.
    done: HashSet<(String, String)>,
    report: PushReport,
}

impl Pusher {
    /// A first `GET /v2/`, so that a registry speaking plain HTTP to this HTTPS client is named
    /// as such, not by the TLS library's "received corrupt message of type InvalidContentType".
    fn reach(&self, host: &str, plain_http: bool) -> anyhow::Result<()> {
        let url = format!("{}/v2/", self.base);
        match self.client.get(&url).send() {
            Ok(_) => Ok(()),
            Err(_) if !plain_http && self.client.get(format!("http://{host}/v2/")).send().is_ok() => bail!(
                "{host} answers plain HTTP, not HTTPS: add --plain-http to push to it (its traffic is then unencrypted)"
            ),
            Err(e) => Err(e).with_context(|| format!("cannot reach the registry at {url}")),
        }
    }

    fn bundle_with(&self, d: &Digest) -> Option<&Bundle> {
        self.bundles.iter().find(|b| b.has_blob(d))
    }

    fn manifest(&mut self, repo: &str, d: &Digest, media_type: &str, tag: Option<&str>) -> anyhow::Result<()> {
        let key = (repo.to_string(), d.to_string());
        if self.done.contains(&key) && tag.is_none() {
            return Ok(());
        }
        let bytes = self
            .bundle_with(d)
            .ok_or_else(|| anyhow!("manifest {d} is in none of the bundles (push the base bundle too)"))?
            .read_member(&blob_path(d))?;
        let manifest: Value = serde_json::from_slice(&bytes).with_context(|| format!("manifest {d}"))?;
        let media_type = manifest.get("mediaType").and_then(Value::as_str).unwrap_or(media_type).to_string();
        for child in manifest.get("manifests").and_then(Value::as_array).into_iter().flatten() {
            let cd = parse_sha256(child["digest"].as_str().unwrap_or_default())?;
            // Platforms the bundle chose not to carry are absent; the index still names them.
            if self.bundle_with(&cd).is_some() {
                self.manifest(repo, &cd, child["mediaType"].as_str().unwrap_or_default(), None)?;
            }
        }
        let blobs = manifest
            .get("config")
            .into_iter()
            .chain(manifest.get("layers").and_then(Value::as_array).into_iter().flatten());
        for desc in blobs.collect::<Vec<_>>() {
            let bd = parse_sha256(desc["digest"].as_str().unwrap_or_default())?;
            self.blob(repo, &bd)?;
        }
        let reference = tag.map_or_else(|| d.to_string(), str::to_string);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self.send(repo, |c| c.put(&url).header("Content-Type", &media_type).body(bytes.clone()))?;
        expect(resp, &[StatusCode::CREATED, StatusCode::OK], &format!("PUT manifest {reference}"))?;
        self.report.manifests += 1;
        self.done.insert(key);
        Ok(())
    }

    fn blob(&mut self, repo: &str, d: &Digest) -> anyhow::Result<()> {
        let key = (repo.to_string(), d.to_string());
        if self.done.contains(&key) {
            return Ok(());
        }
        let url = format!("{}/v2/{repo}/blobs/{d}", self.base);
        if self.send(repo, |c| c.head(&url))?.status() == StatusCode::OK {
            self.report.blobs_skipped += 1;
            self.done.insert(key);
            return Ok(());
        }
        let bundle = self
            .bundle_with(d)
            .ok_or_else(|| anyhow!("blob {d} is in none of the bundles (push the base bundle too)"))?
            .clone();
        let start = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = expect(
            self.send(repo, |c| c.post(&start).header("Content-Length", "0"))?,
            &[StatusCode::ACCEPTED],
            "start upload",
        )?;
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("upload started without a Location"))?;
        let location =
            if location.starts_with('/') { format!("{}{location}", self.base) } else { location.to_string() };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={d}");
        let auth = self.token.clone();
        let reader = bundle.open_member(&blob_path(d))?;
        let len = reader.len();
        let mut req = self
            .client
            .put(&put)
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::sized(Box::new(reader) as Box<dyn Read + Send>, len));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        expect(req.send()?, &[StatusCode::CREATED], &format!("upload blob {d}"))?;
        self.report.blobs_uploaded += 1;
        self.done.insert(key);
        Ok(())
    }

    /// Sends a request without a streaming body, answering one authentication challenge.
    fn send(&mut self, repo: &str, build: impl Fn(&Client) -> RequestBuilder) -> anyhow::Result<Response> {
        let with_auth = |token: &Option<String>| match token {
            Some(t) => build(&self.client).header("Authorization", t),
            None => build(&self.client),
        };
        let resp = with_auth(&self.token).send()?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp.headers().get("WWW-Authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let token = self.answer(&challenge, repo)?;
        self.token = Some(token);
        Ok(with_auth(&self.token).send()?)
    }

    fn answer(&self, challenge: &str, repo: &str) -> anyhow::Result<String> {
        let basic = |(u, p): &(String, String)| basic_authorization(u, p);
        match parse_challenge(challenge) {
            Some(Challenge::Basic) => {
                let creds = self
                    .credentials
                    .as_ref()
                    .ok_or_else(|| anyhow!("{} wants credentials and none were given", self.base))?;
                Ok(basic(creds))
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("scope", &format!("repository:{repo}:pull,push"));
                if let Some(service) = service {
                    query.append_pair("service", &service);
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let mut req = self.client.get(format!("{realm}{sep}{}", query.finish()));
                if let Some(c) = &self.credentials {
                    req = req.header("Authorization", basic(c));
                }
                let answer = expect(req.send()?, &[StatusCode::OK], "token request")?.bytes()?;
                bearer_authorization(&answer).ok_or_else(|| anyhow!("token response from {realm} has no token"))
            }
            None => bail!("unsupported authentication challenge '{challenge}'"),
        }
    }
}

fn expect(resp: Response, ok: &[StatusCode], what: &str) -> anyhow::Result<Response> {
    if ok.contains(&resp.status()) {
        return Ok(resp);
    }
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp.text().unwrap_or_default();
    bail!("{what}: {url} answered {status}: {}", body.chars().take(500).collect::<String>())
}
