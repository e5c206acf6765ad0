//! A stand-in internet for the MOSIP bundle spec (`manifests/mosip-1.2.0.1-B2/bundle.yaml`), so
//! that `airgap bundle create` of it runs offline. Real peers on 127.0.0.1 serve:
//!
//! - every image of the spec: one CNCF distribution per upstream registry host, each image a
//!   generated stand-in under its real name and tag (a config and one small layer naming it);
//! - the charts: the mosip repository from `shared/fixtures` as it is, and for every other
//!   repository a classic repository of the real charts of `shared/fixtures/upstream-charts-2026-12`
//!   (its README gives each one's source): the published archives byte for byte, the others as
//!   packed from their tagged sources, with the image digests a chart's values pin emptied, since
//!   no stand-in image can have the real one's digest ([`UPSTREAM_CHARTS`]);
//! - the files: stand-in bytes at the spec's URL paths (a generated `.tar.gz` holding the
//!   `extract` members where the spec extracts), except the raw k8s-infra files, served as the
//!   verbatim upstream copies kept in `shared/reference`;
//! - the git repositories: mosip-config from the fixture's git bundle, k8s-infra and mosip-infra
//!   holding the upstream files kept in `shared/reference` at the paths the plan reads, and a
//!   stand-in for any other.
//!
//! The real content cannot be fetched here, so the checksums and digests the spec pins cannot
//! match: [`MosipUpstream::spec`] is the spec rewritten for this upstream (see [`rewrite`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::images::{push_plain, write_layout, ImageSpec};
use crate::{run, shared_fixtures, tool, workspace_root, Distribution, DistributionOpts, FileServer, HelmRepo};

/// The spec this upstream stands in for, in the checkout.
pub fn mosip_spec() -> PathBuf {
    workspace_root().join("manifests/mosip-1.2.0.1-B2/bundle.yaml")
}

/// The mosip-config repository at label 1.2.0.1-v3, as a git bundle in `shared/fixtures/git`.
const MOSIP_CONFIG_FIXTURE: &str = "git/mosip-config-1.2.0.1-v3.bundle";

/// Repositories whose upstream files are kept in `shared/reference`: (repository, reference
/// directory, where that directory sits in the repository). mosip-infra's copy is its
/// `deployment/v3` folder.
const REFERENCE_CHECKOUTS: &[(&str, &str, &str)] = &[
    ("github.com/mosip/k8s-infra", "k8s-infra-v1.2.0.1-B1", ""),
    ("github.com/mosip/mosip-infra", "mosip-infra-v1.2.0.1-B2", "deployment/v3"),
];

/// The local Istio charts of those repositories, whose templates the reference copies lack. Each
/// stand-in makes the Gateways the real one makes (same names and ingress gateway, the host from
/// the same value) and, where the real one has one, a VirtualService through the first of them;
/// Keycloak's also makes the `keycloak-host` ConfigMap the MOSIP modules copy (upstream
/// `external/iam/chart/istio-addons/templates/host_configmap.yaml`: same name and keys).
struct LocalIstioChart {
    repo: &'static str,
    chart: &'static str,
    /// (name, the `istio:` label of the ingress gateway it binds, the value naming its host).
    gateways: &'static [(&'static str, &'static str, &'static str)],
    virtual_service: bool,
    extra: &'static str,
}

const LOCAL_ISTIO_CHARTS: &[LocalIstioChart] = &[
    LocalIstioChart {
        repo: "github.com/mosip/k8s-infra",
        chart: "mosip/aws/istio/chart/istio-addons",
        gateways: &[("internal", "ingressgateway-internal", "internalHost"), ("public", "ingressgateway", "publicHost")],
        virtual_service: false,
        extra: "",
    },
    LocalIstioChart {
        repo: "github.com/mosip/k8s-infra",
        chart: "logging/chart/istio-addons",
        gateways: &[("kibana", "ingressgateway-internal", "kibanaHost")],
        virtual_service: true,
        extra: "",
    },
    LocalIstioChart {
        repo: "github.com/mosip/mosip-infra",
        chart: "deployment/v3/external/postgres/chart/istio-addons",
        gateways: &[("postgres", "ingressgateway-internal", "postgresHost")],
        virtual_service: true,
        extra: "",
    },
    LocalIstioChart {
        repo: "github.com/mosip/mosip-infra",
        chart: "deployment/v3/external/object-store/minio/chart/istio-addons",
        gateways: &[("minio", "ingressgateway-internal", "externalHost")],
        virtual_service: true,
        extra: "",
    },
    LocalIstioChart {
        repo: "github.com/mosip/mosip-infra",
        chart: "deployment/v3/external/kafka/chart/istio-addons",
        gateways: &[("kafka-ui", "ingressgateway-internal", "kafkaUiHost")],
        virtual_service: true,
        extra: "",
    },
    LocalIstioChart {
        repo: "github.com/mosip/mosip-infra",
        chart: "deployment/v3/external/iam/chart/istio-addons",
        gateways: &[("keycloak", "ingressgateway-internal", "keycloakExternalHost")],
        virtual_service: true,
        extra: "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keycloak-host\ndata:\n  keycloak-internal-host: {{ .Values.keycloakInternalHost }}\n  keycloak-internal-url: http://{{ .Values.keycloakInternalHost }}\n  keycloak-external-host: {{ .Values.keycloakExternalHost }}\n  keycloak-external-url: https://{{ .Values.keycloakExternalHost }}\n",
    },
];

/// The non-mosip charts, under `shared/fixtures`: `published/<name>-<version>.tgz` (byte for
/// byte) or `from-source/<name>-<version>.tgz`.
const UPSTREAM_CHARTS: &str = "upstream-charts-2026-12";

/// The upstream peers and the spec rewritten to reach them. Everything stops when dropped.
pub struct MosipUpstream {
    spec: PathBuf,
    _registries: Vec<Distribution>,
    _charts: HelmRepo,
    _web: FileServer,
    _dir: TempDir,
}

impl MosipUpstream {
    /// Starts the peers for the spec at `spec` (normally [`mosip_spec`]); see the module docs.
    pub fn start(spec: &Path) -> Result<MosipUpstream> {
        let text = fs::read_to_string(spec).with_context(|| format!("cannot read the spec {}", spec.display()))?;
        let mut doc: Value = serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not YAML", spec.display()))?;
        let dir = tempfile::Builder::new().prefix("testkit-mosip-upstream-").tempdir()?;
        let www = dir.path().join("www");
        fs::create_dir_all(&www)?;
        let charts = HelmRepo::start()?;

        let mut images = unpin_images(&mut doc)?;
        let mut web_hosts = BTreeSet::new();
        web_hosts.extend(upstream_charts(&www, &doc, charts.upstream_url())?);
        web_hosts.extend(stand_in_files(&www, &mut doc)?);
        web_hosts.extend(stand_in_git(&www, &dir.path().join("git-work"), &doc)?);
        let (list_hosts, listed) = stand_in_image_lists(&www, &doc)?;
        web_hosts.extend(list_hosts);
        images.extend(listed);
        absolute_values(&mut doc, spec.parent().unwrap_or(Path::new(".")))?;

        let web = FileServer::start(&www)?;
        let registries = push_images(&images, &dir.path().join("layout"))?;
        let mut mirrors = Mapping::new();
        for (host, registry) in &registries {
            mirrors.insert(host.as_str().into(), registry.url().into());
        }
        for host in web_hosts {
            mirrors.insert(host.as_str().into(), format!("{}/{host}", web.url()).into());
        }
        mirrors.insert(charts.upstream_host().into(), format!("http://127.0.0.1:{}", charts.server().port()).into());
        doc["mirrors"] = Value::Mapping(mirrors);

        let rewritten = dir.path().join("bundle.yaml");
        fs::write(&rewritten, serde_yaml_ng::to_string(&doc)?)?;
        Ok(MosipUpstream {
            spec: rewritten,
            _registries: registries.into_values().collect(),
            _charts: charts,
            _web: web,
            _dir: dir,
        })
    }

    /// The spec rewritten for this upstream: `mirrors` for every host it names, each file's
    /// sha256 set to what the stand-in serves (`sha256_from` kept: the checksums file it names
    /// is served), pinned image digests dropped, values files by absolute path. Everything else
    /// is the spec's own.
    pub fn spec(&self) -> &Path {
        &self.spec
    }

    /// What this upstream serves at `url` (a file of the spec, or a checksums file it names).
    pub fn served(&self, url: &str) -> Result<Vec<u8>> {
        let (host, path) = host_and_path(url)?;
        let file = self._dir.path().join("www").join(host).join(path);
        fs::read(&file).with_context(|| format!("{url}: not served ({})", file.display()))
    }
}

/// Starts the upstream for the MOSIP spec and runs `airgap bundle create` of it into `out` with
/// helm 3.8.2 for image discovery. The upstream is returned so that its spec can be read.
pub fn create_bundle(airgap_bin: &Path, out: &Path) -> Result<MosipUpstream> {
    let upstream = MosipUpstream::start(&mosip_spec())?;
    let cache = tempfile::Builder::new().prefix("testkit-mosip-cache-").tempdir()?;
    run(Command::new(airgap_bin)
        .args(["bundle", "create"])
        .arg(upstream.spec())
        .arg("-o")
        .arg(out)
        .arg("--cache")
        .arg(cache.path())
        .arg("--helm")
        .arg(tool("helm-3.8.2")))
    .context("airgap bundle create of the MOSIP spec against its stand-in upstream")?;
    Ok(upstream)
}

/// `host/path:tag` with Docker's rules, as a bundle names an image: `nginx` is
/// `docker.io/library/nginx:latest`.
pub fn canonical_image(reference: &str) -> String {
    let (host, path, tag) = split_image(reference);
    format!("{host}/{path}:{tag}")
}

/// (registry host, repository path, tag) with Docker's rules: no host means docker.io, and a
/// one-part docker.io path means `library/`.
fn split_image(reference: &str) -> (String, String, String) {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (reference, "latest"),
    };
    let (host, path) = match name.split_once('/') {
        Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, p.to_string()),
        _ => ("docker.io", name.to_string()),
    };
    let path = if host == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
    (host.to_string(), path, tag.to_string())
}

/// The spec's image references, with any `@sha256:` pin dropped from the spec and the list: a
/// stand-in cannot have the real image's digest, so the test carries the tag instead.
fn unpin_images(doc: &mut Value) -> Result<Vec<String>> {
    let mut refs = Vec::new();
    for entry in doc.get_mut("images").and_then(Value::as_sequence_mut).into_iter().flatten() {
        let slot = match entry {
            Value::Mapping(m) => {
                let shown = format!("{m:?}");
                m.get_mut("ref").ok_or_else(|| anyhow!("images: an entry has no ref: {shown}"))?
            }
            other => other,
        };
        let reference = slot.as_str().ok_or_else(|| anyhow!("images: {slot:?} is not a reference"))?;
        let unpinned = reference.split_once("@sha256:").map_or(reference, |(name, _)| name).to_string();
        *slot = Value::String(unpinned.clone());
        refs.push(unpinned);
    }
    Ok(refs)
}

/// One plain-HTTP distribution per registry host, holding a stand-in of each image under its
/// real path and tag, pushed by skopeo.
fn push_images(images: &[String], layout: &Path) -> Result<BTreeMap<String, Distribution>> {
    let unique: BTreeSet<&String> = images.iter().collect();
    let specs: Vec<ImageSpec> = unique
        .iter()
        .map(|r| ImageSpec { reference: r.as_str(), platforms: &["linux/amd64"], shared_layers: &[] })
        .collect();
    write_layout(layout, &specs);
    let mut registries = BTreeMap::new();
    for r in &unique {
        let (host, _, _) = split_image(r);
        if let std::collections::btree_map::Entry::Vacant(slot) = registries.entry(host) {
            slot.insert(Distribution::start(DistributionOpts { tls: false, auth: false })?);
        }
    }
    let jobs: Vec<(String, String)> = unique
        .iter()
        .map(|r| {
            let (host, path, tag) = split_image(r);
            (r.to_string(), format!("{}/{path}:{tag}", registries[&host].host_port()))
        })
        .collect();
    // Four skopeo processes at a time: each image is tiny, so start-up dominates.
    let chunks: Vec<&[(String, String)]> = jobs.chunks(jobs.len().div_ceil(4).max(1)).collect();
    thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || -> Result<()> {
                    for (reference, dest) in chunk {
                        push_plain(layout, reference, dest)
                            .with_context(|| format!("pushing the stand-in of {reference}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow!("a skopeo pusher panicked"))?)
    })?;
    Ok(registries)
}

/// `scheme://host/path` → (host, path without leading slash).
fn host_and_path(url: &str) -> Result<(String, String)> {
    let rest = url.split_once("://").map(|(_, r)| r).ok_or_else(|| anyhow!("{url}: not an http(s) URL"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((host.to_string(), path.trim_end_matches('/').to_string()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(path.parent().expect("a file path has a parent"))?;
    fs::write(path, bytes).with_context(|| path.display().to_string())
}

/// A gzip'd tar of (path, content), every member 0755 with mtime 0.
fn tar_gz(members: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(0);
        tar.append_data(&mut header, name, &data[..])?;
    }
    Ok(tar.into_inner()?.finish()?)
}

fn str_field<'a>(entry: &'a Value, key: &str, what: &str) -> Result<&'a str> {
    entry.get(key).and_then(Value::as_str).ok_or_else(|| anyhow!("{what}: an entry has no `{key}`: {entry:?}"))
}

/// Writes a classic repository for every chart repository of the spec but the fixture's, holding
/// the real charts of [`UPSTREAM_CHARTS`], and returns their hosts.
fn upstream_charts(www: &Path, doc: &Value, fixture_repo: &str) -> Result<BTreeSet<String>> {
    let mut repos: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for entry in doc.get("charts").and_then(Value::as_sequence).into_iter().flatten() {
        let repo = str_field(entry, "repo", "charts")?.trim_end_matches('/');
        if repo == fixture_repo {
            continue;
        }
        if repo.starts_with("oci://") {
            bail!("charts: {repo}: the stand-in upstream serves classic repositories only");
        }
        let (name, version) = (str_field(entry, "name", "charts")?, str_field(entry, "version", "charts")?);
        repos.entry(repo.to_string()).or_default().push((name.to_string(), version.to_string()));
    }
    let mut hosts = BTreeSet::new();
    for (repo, charts) in repos {
        let (host, path) = host_and_path(&repo)?;
        let dir = www.join(&host).join(&path);
        let mut entries: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (name, version) in charts {
            let tgz = unpin_chart_images(&upstream_chart(&name, &version)?)
                .with_context(|| format!("chart {name} {version}"))?;
            let meta = chart_metadata(&tgz, &name).with_context(|| format!("chart {name} {version}"))?;
            let file = format!("{name}-{version}.tgz");
            write_file(&dir.join(&file), &tgz)?;
            let mut entry = meta;
            entry["urls"] = json!([format!("{repo}/{file}")]);
            entry["digest"] = json!(hex::encode(Sha256::digest(&tgz)));
            entries.entry(name.clone()).or_default().push(entry);
        }
        let index = json!({"apiVersion": "v1", "entries": entries});
        write_file(&dir.join("index.yaml"), serde_yaml_ng::to_string(&index)?.as_bytes())?;
        hosts.insert(host);
    }
    Ok(hosts)
}

/// The archive of `name` `version` in [`UPSTREAM_CHARTS`].
fn upstream_chart(name: &str, version: &str) -> Result<Vec<u8>> {
    let dir = shared_fixtures().join(UPSTREAM_CHARTS);
    for kind in ["published", "from-source"] {
        let file = dir.join(kind).join(format!("{name}-{version}.tgz"));
        if file.is_file() {
            return fs::read(&file).with_context(|| file.display().to_string());
        }
    }
    bail!("charts: {name} {version} is not in {} (published/ or from-source/)", dir.display())
}

/// The archive's members in order, as (path, mode, content).
fn tgz_members(tgz: &[u8]) -> Result<Vec<(String, u32, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut members = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let mode = entry.header().mode()?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data)?;
        members.push((path, mode, data));
    }
    Ok(members)
}

/// The chart as it is, unless its `values.yaml` pins image digests (`digest: sha256:…`): then
/// repacked with each of those emptied, so that it renders the tag, which the stand-in
/// registries serve. The digests stay in the spec's images, which the test unpins the same way.
fn unpin_chart_images(tgz: &[u8]) -> Result<Vec<u8>> {
    let mut members = tgz_members(tgz)?;
    let mut changed = false;
    for (path, _, data) in &mut members {
        if !path.ends_with("/values.yaml") {
            continue;
        }
        let text = String::from_utf8(data.clone()).with_context(|| format!("{path} is not UTF-8"))?;
        let unpinned: Vec<String> = text
            .lines()
            .map(|l| match l.trim_start().strip_prefix("digest: sha256:") {
                Some(_) => format!("{}digest: \"\"", &l[..l.len() - l.trim_start().len()]),
                None => l.to_string(),
            })
            .collect();
        let unpinned = unpinned.join("\n") + if text.ends_with('\n') { "\n" } else { "" };
        if unpinned != text {
            *data = unpinned.into_bytes();
            changed = true;
        }
    }
    if !changed {
        return Ok(tgz.to_vec());
    }
    tar_gz(&members.into_iter().map(|(p, _, d)| (p, d)).collect::<Vec<_>>())
}

/// The index entry fields a repository takes from a chart's Chart.yaml, as `helm repo index`
/// writes them.
fn chart_metadata(tgz: &[u8], name: &str) -> Result<serde_json::Value> {
    let chart_yaml = tgz_members(tgz)?
        .into_iter()
        .find(|(p, _, _)| p == &format!("{name}/Chart.yaml"))
        .ok_or_else(|| anyhow!("no {name}/Chart.yaml"))?
        .2;
    let chart: serde_json::Value = serde_yaml_ng::from_slice(&chart_yaml).context("Chart.yaml")?;
    let mut entry = serde_json::Map::new();
    for key in ["apiVersion", "name", "version", "appVersion", "kubeVersion", "description", "annotations"] {
        if let Some(v) = chart.get(key) {
            entry.insert(key.to_string(), v.clone());
        }
    }
    Ok(serde_json::Value::Object(entry))
}

/// The verbatim upstream copy of a raw.githubusercontent.com file of a repository kept in
/// `shared/reference`, if there is one.
fn reference_copy(host: &str, path: &str) -> Option<Vec<u8>> {
    if host != "raw.githubusercontent.com" {
        return None;
    }
    let mut parts = path.splitn(4, '/');
    let (owner, repo, _commit, file) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (_, dir, under) = REFERENCE_CHECKOUTS.iter().find(|(r, _, _)| *r == format!("github.com/{owner}/{repo}"))?;
    let file = file.strip_prefix(under).unwrap_or(file).trim_start_matches('/');
    fs::read(reference_dir().join(dir).join(file)).ok()
}

fn reference_dir() -> PathBuf {
    shared_fixtures().parent().map_or_else(|| PathBuf::from("../shared/reference"), |s| s.join("reference"))
}

/// Serves something at each file URL of the spec and sets each entry's sha256 to it, or, for an
/// entry with `sha256_from`, serves a checksums file there listing the stand-in's SHA-256 under
/// the last segment of its URL (`<hex>  <name>` lines, as goreleaser and Istio write them);
/// returns the hosts.
fn stand_in_files(www: &Path, doc: &mut Value) -> Result<BTreeSet<String>> {
    let Some(files) = doc.get_mut("files").and_then(Value::as_sequence_mut) else { return Ok(BTreeSet::new()) };
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in files.iter() {
        let url = str_field(entry, "url", "files")?;
        let list = members.entry(url.to_string()).or_default();
        if let Some(m) = entry.get("extract").and_then(Value::as_str) {
            list.push(m.to_string());
        }
    }
    let mut served = BTreeMap::new();
    let mut hosts = BTreeSet::new();
    for (url, extract) in members {
        let (host, path) = host_and_path(&url)?;
        let bytes = match reference_copy(&host, &path) {
            Some(real) if extract.is_empty() => real,
            _ if extract.is_empty() => format!("airgap test stand-in for {url}\n").into_bytes(),
            _ => tar_gz(
                &extract
                    .iter()
                    .map(|m| (m.clone(), format!("stand-in {m} of {url}\n").into_bytes()))
                    .collect::<Vec<_>>(),
            )?,
        };
        write_file(&www.join(&host).join(&path), &bytes)?;
        served.insert(url, hex::encode(Sha256::digest(&bytes)));
        hosts.insert(host);
    }
    let mut checksums_files: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in files.iter_mut() {
        let url = str_field(entry, "url", "files")?;
        let sha = served[url].clone();
        match entry.get("sha256_from").and_then(Value::as_str) {
            Some(from) => {
                let name = url.rsplit('/').next().unwrap_or_default().to_string();
                checksums_files.entry(from.to_string()).or_default().insert(name, sha);
            }
            None => entry["sha256"] = Value::String(sha),
        }
    }
    for (from, lines) in checksums_files {
        let (host, path) = host_and_path(&from)?;
        let text: String = lines.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect();
        write_file(&www.join(&host).join(&path), text.as_bytes())?;
        hosts.insert(host);
    }
    Ok(hosts)
}

/// What a stand-in image list names: Rancher's real rancher-images.txt (some hundreds of lines)
/// cannot be read here, so the stand-in names a few system images under Rancher's names (tags
/// made up), then one image under each prefix the spec's entry excludes, which must not be
/// carried. A comment and a blank line show that both are skipped.
const STAND_IN_LIST_IMAGES: &[&str] = &["rancher/shell:v0.0.0-stand-in", "rancher/fleet-agent:v0.0.0-stand-in"];

/// Serves a stand-in for each of the spec's `image_lists` (see [`STAND_IN_LIST_IMAGES`]); returns
/// the hosts served and the images the registries must hold, the excluded ones too (so that
/// carrying one would not fail for want of it).
fn stand_in_image_lists(www: &Path, doc: &Value) -> Result<(BTreeSet<String>, Vec<String>)> {
    let (mut hosts, mut images) = (BTreeSet::new(), Vec::new());
    for entry in doc.get("image_lists").and_then(Value::as_sequence).into_iter().flatten() {
        let url = str_field(entry, "url", "image_lists")?;
        let excluded =
            entry.get("exclude").and_then(Value::as_sequence).into_iter().flatten().filter_map(Value::as_str);
        let lines: Vec<String> = STAND_IN_LIST_IMAGES
            .iter()
            .map(|i| i.to_string())
            .chain(
                excluded.map(|prefix| format!("{prefix}{}stand-in:v0", if prefix.ends_with('-') { "" } else { "-" })),
            )
            .collect();
        let text = format!("# airgap test stand-in for {url}\n\n{}\n", lines.join("\n"));
        let (host, path) = host_and_path(url)?;
        write_file(&www.join(&host).join(&path), text.as_bytes())?;
        hosts.insert(host);
        images.extend(lines);
    }
    Ok((hosts, images))
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    run(Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "airgap tests")
        .env("GIT_AUTHOR_EMAIL", "tests@airgap.invalid")
        .env("GIT_AUTHOR_DATE", "2023-01-08T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "airgap tests")
        .env("GIT_COMMITTER_EMAIL", "tests@airgap.invalid")
        .env("GIT_COMMITTER_DATE", "2023-01-08T00:00:00Z"))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| target.display().to_string())?;
        }
    }
    Ok(())
}

/// A bare repository for every git entry of the spec, ready for git's dumb HTTP protocol at
/// `www/<host>/<path>`; returns the hosts.
fn stand_in_git(www: &Path, work: &Path, doc: &Value) -> Result<BTreeSet<String>> {
    let mut hosts = BTreeSet::new();
    for entry in doc.get("git").and_then(Value::as_sequence).into_iter().flatten() {
        let (url, git_ref) = (str_field(entry, "url", "git")?, str_field(entry, "ref", "git")?);
        let (host, path) = host_and_path(url)?;
        let bare = www.join(&host).join(&path);
        let repo = format!("{host}/{}", path.trim_end_matches(".git"));
        fs::create_dir_all(bare.parent().expect("under www"))?;
        let bare_arg = bare.to_str().context("temporary paths are UTF-8")?;
        if repo == "github.com/mosip/mosip-config" {
            let fixture = shared_fixtures().join(MOSIP_CONFIG_FIXTURE);
            let heads = git(www, &["bundle", "list-heads", fixture.to_str().context("UTF-8 path")?])?;
            if !heads.lines().any(|l| l.ends_with(&format!("/{git_ref}"))) {
                bail!("{}: has no ref {git_ref} (heads: {heads})", fixture.display());
            }
            git(www, &["clone", "--quiet", "--bare", fixture.to_str().context("UTF-8 path")?, bare_arg])?;
        } else {
            let tree = work.join(&repo);
            match REFERENCE_CHECKOUTS.iter().find(|(r, _, _)| *r == repo) {
                Some((_, dir, under)) => {
                    copy_tree(&reference_dir().join(dir), &tree.join(under))?;
                    stand_in_istio_templates(&tree, &repo)?;
                }
                None => write_file(&tree.join("README.md"), format!("airgap test stand-in for {url}\n").as_bytes())?,
            }
            git(&tree, &["init", "--quiet", "-b", "main"])?;
            git(&tree, &["add", "--all"])?;
            git(&tree, &["commit", "--quiet", "-m", &format!("airgap test stand-in for {url} {git_ref}")])?;
            git(&tree, &["tag", git_ref])?;
            git(www, &["clone", "--quiet", "--bare", tree.to_str().context("UTF-8 path")?, bare_arg])?;
        }
        git(&bare, &["update-server-info"])?;
        hosts.insert(host);
    }
    Ok(hosts)
}

/// Templates for the local Istio charts of `repo` that have none ([`LOCAL_ISTIO_CHARTS`]).
fn stand_in_istio_templates(tree: &Path, repo: &str) -> Result<()> {
    for c in LOCAL_ISTIO_CHARTS.iter().filter(|c| c.repo == repo) {
        let templates = tree.join(c.chart).join("templates");
        if templates.exists() {
            continue;
        }
        let mut yaml = String::new();
        for (name, gateway, host) in c.gateways {
            yaml += &format!(
                "---\napiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata:\n  name: {name}\nspec:\n  selector: {{istio: {gateway}}}\n  servers:\n    - port: {{number: 80, name: http, protocol: HTTP}}\n      hosts: [{{{{ .Values.{host} | quote }}}}]\n"
            );
        }
        if let (true, Some((name, _, host))) = (c.virtual_service, c.gateways.first()) {
            yaml += &format!(
                "---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts: [{{{{ .Values.{host} | quote }}}}]\n  gateways: [{name}]\n  http:\n    - route:\n        - destination: {{host: {{{{ .Release.Name }}}}}}\n"
            );
        }
        write_file(&templates.join("stand-in.yaml"), format!("{yaml}{}", c.extra).as_bytes())?;
    }
    Ok(())
}

/// Values files named relative to the original spec, made absolute so that the rewritten spec
/// (in a temporary directory) still finds them.
fn absolute_values(doc: &mut Value, spec_dir: &Path) -> Result<()> {
    for entry in doc.get_mut("charts").and_then(Value::as_sequence_mut).into_iter().flatten() {
        for v in entry.get_mut("values").and_then(Value::as_sequence_mut).into_iter().flatten() {
            let relative = v.as_str().ok_or_else(|| anyhow!("charts: a values entry is not a path: {v:?}"))?;
            let absolute = spec_dir.join(relative);
            if !absolute.is_file() {
                bail!("charts: values file {} is missing", absolute.display());
            }
            *v = Value::String(absolute.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_are_normalised() {
        let s = |r: &str| split_image(r);
        assert_eq!(s("nginx"), ("docker.io".into(), "library/nginx".into(), "latest".into()));
        assert_eq!(s("docker.io/mosipid/x:1.2"), ("docker.io".into(), "mosipid/x".into(), "1.2".into()));
        assert_eq!(s("127.0.0.1:5000/a/b"), ("127.0.0.1:5000".into(), "a/b".into(), "latest".into()));
        assert_eq!(s("ghcr.io/linuxserver/wireguard:latest").0, "ghcr.io");
    }

    #[test]
    fn pinned_digests_are_dropped() {
        let mut doc: Value = serde_yaml_ng::from_str(
            "images:\n - docker.io/a/b:1@sha256:0000000000000000000000000000000000000000000000000000000000000000\n - ref: quay.io/c/d:2\n",
        )
        .unwrap();
        assert_eq!(unpin_images(&mut doc).unwrap(), ["docker.io/a/b:1", "quay.io/c/d:2"]);
        assert_eq!(doc["images"][0].as_str(), Some("docker.io/a/b:1"));
    }
}
