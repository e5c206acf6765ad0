//! One run: spec (and lock) → everything resolved, fetched into the cache and staged as an OCI
//! layout that `bundles` can lock or pack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{
    list_artifacts, Artifact, Kind, ANNOTATION_KIND, ANNOTATION_PLATFORMS, ANNOTATION_REF, ANNOTATION_SOURCE,
};
use bundles::digest::Digest;
use bundles::layout::{BlobStore, LayoutDir, Walk};
use bundles::layout_writer::LayoutWriter;
use bundles::lock::{Lock, LockedBlob};
use futures_util::{stream, FutureExt, StreamExt, TryStreamExt};

use crate::auth::CredentialStore;
use crate::cache::{Cache, Staging};
use crate::charts::{self, ResolvedChart};
use crate::discover;
use crate::files;
use crate::gitrepo;
use crate::http::{self, Mirrors};
use crate::image_lists;
use crate::images::{self, BlobSource, ResolvedImage};
use crate::oci::Client;
use crate::progress::Progress;
use crate::spec::{Discover, FileEntry, GitEntry, Spec, DEFAULT_PLATFORM};

/// What a run of `lock` or `create` fetches, and where it keeps it.
pub struct Options {
    /// The bundle spec.
    pub spec: PathBuf,
    /// The download cache, shared between runs.
    pub cache: PathBuf,
    /// Downloads at a time.
    pub jobs: usize,
    /// Overrides the spec's platforms when not empty.
    pub platforms: Vec<String>,
    /// The helm that renders charts for discovery, over the spec's.
    pub helm: Option<PathBuf>,
    /// Fetch exactly what this lock names.
    pub lock: Option<Lock>,
    /// Download the layers too (`create`); `lock` needs only manifests and configs.
    pub fetch_layers: bool,
}

/// An image that rendering a chart found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The reference of the chart that was rendered.
    pub chart: String,
    /// The image its manifests name.
    pub image: String,
    /// Whether the bundle carries it (a `report` discovery carries nothing).
    pub carried: bool,
}

/// Everything the spec names, resolved and laid out as an OCI layout in a staging folder.
pub struct Staged {
    /// The folder, removed when this is dropped.
    pub staging: Staging,
    /// The images chart rendering found.
    pub discovered: Vec<Discovery>,
}

impl Staged {
    /// The OCI layout to pack.
    pub fn layout(&self) -> &Path {
        self.staging.dir()
    }

    /// The lock of what is staged; blobs not downloaded (layers, for `lock`) are listed from
    /// their descriptors.
    pub fn lock(&self) -> Result<Lock> {
        let (layout, index, _) = LayoutDir::open(self.layout())?;
        let absent = |d: &Digest| !matches!(layout.blob_len(d), Ok(Some(_)));
        let mut walk = Walk::new(&layout, &absent);
        let artifacts = list_artifacts(&layout, &index, &mut walk)?;
        Ok(Lock {
            schema_version: bundles::SCHEMA_VERSION.to_string(),
            artifacts,
            blobs: walk.blobs.into_iter().map(|(digest, size)| LockedBlob { digest, size }).collect(),
            base: None,
        })
    }
}

struct Ctx<'a> {
    spec: Spec,
    cache: Cache,
    client: Client,
    mirrors: Mirrors,
    progress: &'a Progress,
    jobs: usize,
}

/// An image to resolve, and the words an error about it should start with.
struct ImageJob {
    origin: String,
    reference: String,
    pin: Option<Digest>,
    platforms: Option<Vec<String>>,
}

/// What a lock pins, by reference; without a lock nothing is pinned.
struct Pins<'a>(Option<BTreeMap<&'a str, &'a Artifact>>);

impl<'a> Pins<'a> {
    fn new(lock: Option<&'a Lock>) -> Pins<'a> {
        Pins(lock.map(|l| l.artifacts.iter().map(|a| (a.reference.as_str(), a)).collect()))
    }

    fn artifact(&self, reference: &str) -> Result<Option<&'a Artifact>> {
        let Some(locked) = &self.0 else { return Ok(None) };
        let a = locked
            .get(reference)
            .ok_or_else(|| anyhow!("{reference} is not in the lock; run `airgap bundle lock` again"))?;
        Ok(Some(*a))
    }

    fn digest(&self, reference: &str) -> Result<Option<Digest>> {
        Ok(self.artifact(reference)?.map(|a| a.digest.clone()))
    }
}

type Repo<'a> = (String, &'a GitEntry, gitrepo::Prepared);

/// Resolves every entry of the spec and fetches what it needs into the cache, then lays the artifacts out.
pub async fn stage(opts: &Options, progress: &Progress) -> Result<Staged> {
    let spec = Spec::read(&opts.spec)?;
    let cache = Cache::open(&opts.cache)?;
    let mirrors = Mirrors::new(&spec.mirrors);
    let client = Client::new(http::client(&spec.ca_certs)?, mirrors.clone(), CredentialStore::load(&spec.credentials)?);
    let helm = discover::helm_binary(opts.helm.as_deref().or(spec.helm.as_deref()));
    let cx = Ctx { spec, cache, client, mirrors, progress, jobs: opts.jobs.max(1) };
    let pins = Pins::new(opts.lock.as_ref());

    let charts = resolve_charts(&cx, &pins).await?;
    let (jobs, discovered) = match &opts.lock {
        Some(lock) => (locked_image_jobs(&cx, lock, &pins)?, Vec::new()),
        None => {
            let platforms: Vec<String> = match (&opts.platforms, &cx.spec.platforms) {
                (cli, _) if !cli.is_empty() => cli.clone(),
                (_, s) if !s.is_empty() => s.clone(),
                _ => vec![DEFAULT_PLATFORM.to_string()],
            };
            let mut jobs = listed_image_jobs(&cx, &platforms)?;
            add_image_list_jobs(&cx, &platforms, &mut jobs).await?;
            let listed = jobs.iter().map(|j| j.reference.clone()).collect();
            let discovered = discover_images(&cx, &helm, &charts, &listed, &platforms, &mut jobs)?;
            (jobs, discovered)
        }
    };
    let cx = &cx;
    let images: Vec<ResolvedImage> = stream::iter(jobs)
        .map(|job| async move {
            images::resolve(
                &cx.client,
                &cx.cache,
                cx.progress,
                &job.reference,
                job.pin.as_ref(),
                job.platforms.as_deref(),
                Kind::Image,
            )
            .await
            .with_context(|| job.origin.clone())
        })
        .buffer_unordered(cx.jobs)
        .try_collect()
        .await?;
    let downloads = fetch_files(cx, &pins).await?;
    let repos = prepare_repos(cx, &pins)?;

    cx.progress.plan_artifacts((images.len() + charts.len() + downloads.len() + repos.len()) as u64);
    if opts.fetch_layers {
        fetch_layers(cx, &images).await?;
    }
    let staged = Staged { staging: write_layout(cx, &images, &charts, &downloads, &repos)?, discovered };
    if let Some(lock) = &opts.lock {
        same_as_lock(&staged, lock)?;
    }
    let (_, index, _) = LayoutDir::open(staged.layout())?;
    for d in index.manifests() {
        let annotation = |k: &str| d.annotations().as_ref().and_then(|a| a.get(k)).cloned().unwrap_or_default();
        cx.progress.artifact_done(&annotation(ANNOTATION_KIND), &annotation(ANNOTATION_REF), d.digest().as_ref());
    }
    Ok(staged)
}

async fn resolve_charts(cx: &Ctx<'_>, pins: &Pins<'_>) -> Result<Vec<ResolvedChart>> {
    stream::iter(cx.spec.charts.iter().enumerate())
        .map(|(i, entry)| {
            let pin = pins.digest(&charts::reference(entry));
            async move {
                charts::resolve(&cx.client, &cx.mirrors, &cx.cache, cx.progress, entry, pin?.as_ref())
                    .await
                    .with_context(|| format!("charts[{i}] {} {} from {}", entry.name, entry.version, entry.repo))
            }
        })
        .buffered(cx.jobs)
        .try_collect()
        .await
}

/// Adds `job`, or, when its image is there already, keeps that one (its platforms, its origin)
/// and lays the new one's pin onto it: an image is fetched once, and by digest when any entry
/// that names it pins one.
fn add_job(jobs: &mut Vec<ImageJob>, job: ImageJob) -> Result<()> {
    let Some(there) = jobs.iter_mut().find(|j| j.reference == job.reference) else {
        jobs.push(job);
        return Ok(());
    };
    match (&there.pin, job.pin) {
        (Some(a), Some(b)) if *a != b => {
            bail!("{} is pinned to {a} by {} and to {b} by {}", job.reference, there.origin, job.origin)
        }
        (None, Some(b)) => there.pin = Some(b),
        _ => {}
    }
    Ok(())
}

fn listed_image_jobs(cx: &Ctx<'_>, platforms: &[String]) -> Result<Vec<ImageJob>> {
    let mut jobs = Vec::new();
    for (i, entry) in cx.spec.images.iter().enumerate() {
        let origin = format!("images[{i}] {}", entry.reference());
        let (r, name) = images::canonical(entry.reference()).with_context(|| origin.clone())?;
        let pin = images::pinned(&r).with_context(|| origin.clone())?;
        let own = entry.platforms();
        let platforms = if own.is_empty() { platforms.to_vec() } else { own.to_vec() };
        add_job(&mut jobs, ImageJob { origin, reference: name, pin, platforms: Some(platforms) })?;
    }
    Ok(jobs)
}

/// The images of each published list, after the spec's own; one the spec lists already is kept
/// once, with the spec's platforms.
async fn add_image_list_jobs(cx: &Ctx<'_>, platforms: &[String], jobs: &mut Vec<ImageJob>) -> Result<()> {
    for (i, entry) in cx.spec.image_lists.iter().enumerate() {
        let listed = image_lists::fetch(cx.client.http(), &cx.mirrors, entry)
            .await
            .with_context(|| format!("image_lists[{i}] {}", entry.url))?;
        for l in listed {
            let job = ImageJob {
                origin: format!("{} (image_lists[{i}] {} line {})", l.reference, entry.url, l.line),
                reference: l.reference,
                pin: l.pin,
                platforms: Some(platforms.to_vec()),
            };
            add_job(jobs, job)?;
        }
    }
    Ok(())
}

/// With a lock the images are the lock's, discovered ones included, each by digest.
fn locked_image_jobs(cx: &Ctx<'_>, lock: &Lock, pins: &Pins<'_>) -> Result<Vec<ImageJob>> {
    for (i, entry) in cx.spec.images.iter().enumerate() {
        let origin = || format!("images[{i}] {}", entry.reference());
        let (r, name) = images::canonical(entry.reference()).with_context(origin)?;
        let locked = pins.artifact(&name).with_context(origin)?;
        if let (Some(own), Some(a)) = (images::pinned(&r).with_context(origin)?, locked) {
            if a.digest != own {
                bail!(
                    "{}: the spec pins {own} but the lock says {}; run `airgap bundle lock` again",
                    origin(),
                    a.digest
                );
            }
        }
    }
    lock.artifacts
        .iter()
        .filter(|a| a.kind == Kind::Image)
        .map(|a| {
            Ok(ImageJob {
                origin: format!("lock: {}", a.reference),
                reference: a.reference.clone(),
                pin: Some(a.digest.clone()),
                platforms: (!a.platforms.is_empty()).then(|| a.platforms.clone()),
            })
        })
        .collect()
}

async fn fetch_files(cx: &Ctx<'_>, pins: &Pins<'_>) -> Result<Vec<files::Expected>> {
    stream::iter(cx.spec.files.iter().enumerate())
        .map(|(i, entry)| {
            let locked = locked_checksum(pins, entry);
            async move {
                let http = cx.client.http();
                let expected = files::expected(http, &cx.mirrors, entry, locked?).await?;
                files::fetch(http, &cx.mirrors, &cx.cache, cx.progress, entry, &expected.download).await?;
                Ok::<_, anyhow::Error>(expected)
            }
            .map(move |r| r.with_context(|| format!("files[{i}] {}", entry.url)))
        })
        .buffered(cx.jobs)
        .try_collect()
        .await
}

/// The lock's record of a file whose checksum it read from a checksums file: what `create
/// --lock` checks the download against, without reading that file again.
fn locked_checksum<'a>(pins: &Pins<'a>, entry: &FileEntry) -> Result<Option<&'a Artifact>> {
    if entry.sha256_from.is_none() {
        return Ok(None);
    }
    pins.artifact(&files::reference(entry)?)
}

/// Clones one repository after the other: git does its own networking and is quick next to images.
fn prepare_repos<'a>(cx: &'a Ctx<'_>, pins: &Pins<'_>) -> Result<Vec<Repo<'a>>> {
    let mut repos = Vec::new();
    for (i, entry) in cx.spec.git.iter().enumerate() {
        let reference = gitrepo::reference(entry)?;
        let commit = match pins.artifact(&reference).with_context(|| format!("git[{i}]"))? {
            Some(a) => Some(
                a.source
                    .as_deref()
                    .and_then(gitrepo::pinned_commit)
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("git[{i}] {reference}: the lock records no commit in its source"))?,
            ),
            None => None,
        };
        let fetch_url = cx.mirrors.map_url(&entry.url);
        let prepared =
            tokio::task::block_in_place(|| gitrepo::prepare(&cx.cache, entry, &fetch_url, commit.as_deref()))
                .with_context(|| format!("git[{i}]"))?;
        repos.push((reference, entry, prepared));
    }
    Ok(repos)
}

/// The run's OCI layout: what is carried, hard-linked from the cache, and `index.json`.
fn write_layout(
    cx: &Ctx<'_>,
    images: &[ResolvedImage],
    charts: &[ResolvedChart],
    downloads: &[files::Expected],
    repos: &[Repo<'_>],
) -> Result<Staging> {
    let staging = cx.cache.staging()?;
    let mut w = LayoutWriter::open(staging.dir())?;
    let mut seen = BTreeSet::new();
    for img in images.iter().filter(|i| seen.insert(i.reference.clone())) {
        for d in img.metadata.iter().chain(img.layers.iter().map(|l| &l.digest).filter(|d| cx.cache.has(d))) {
            staging.link(&cx.cache, d)?;
        }
        let carried = img.platforms.as_ref().map(|p| p.join(","));
        let extra: Vec<(&str, &str)> = carried.iter().map(|p| (ANNOTATION_PLATFORMS, p.as_str())).collect();
        w.add(&img.reference, img.kind, img.descriptor.clone(), &extra);
    }
    for c in charts {
        for d in &c.blobs {
            staging.link(&cx.cache, d)?;
        }
        let extra: Vec<(&str, &str)> = c.source.iter().map(|s| (ANNOTATION_SOURCE, s.as_str())).collect();
        w.add(&c.reference, Kind::Chart, c.descriptor.clone(), &extra);
    }
    for (entry, download) in cx.spec.files.iter().zip(downloads) {
        files::stage(&mut w, &cx.cache, entry, download)?;
    }
    for (reference, entry, prepared) in repos {
        let path = cx.cache.blob_path(&prepared.tar);
        let tar = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let name = reference.split(':').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
        let source = gitrepo::source(entry, &prepared.commit);
        w.add_single_layer(reference, Kind::Git, &format!("{name}.git"), tar, Some(&prepared.tar), Some(&source))?;
    }
    w.finish()?;
    Ok(staging)
}

/// Renders each chart whose `discover` is not `off` and acts on the images found: see
/// `spec::Discover`.
fn discover_images(
    cx: &Ctx<'_>,
    helm: &Path,
    charts: &[ResolvedChart],
    listed: &BTreeSet<String>,
    platforms: &[String],
    jobs: &mut Vec<ImageJob>,
) -> Result<Vec<Discovery>> {
    let mut out = Vec::new();
    let mut unlisted = Vec::new();
    for (entry, chart) in cx.spec.charts.iter().zip(charts) {
        if entry.discover == Discover::Off {
            continue;
        }
        let found = discover::chart_images(helm, &cx.cache.blob_path(&chart.tgz), entry)
            .with_context(|| format!("image discovery in {}", chart.reference))?;
        for image in found {
            let named = images::canonical(&image).and_then(|(r, n)| Ok((n, images::pinned(&r)?)));
            let (name, pin) = match named {
                Ok(named) => named,
                Err(e) if entry.discover == Discover::Report => {
                    cx.progress.warn(&format!("{}: '{image}' is not an image reference: {e}", chart.reference));
                    continue;
                }
                Err(e) => bail!("{}: renders image '{image}', which is not a reference: {e}", chart.reference),
            };
            let carried = match entry.discover {
                Discover::Report => false,
                Discover::Strict if !listed.contains(&name) => {
                    unlisted.push(format!("{name} (used by {})", chart.reference));
                    false
                }
                _ => true,
            };
            if carried {
                let origin = format!("{name} (found in chart {})", chart.reference);
                add_job(jobs, ImageJob { origin, reference: name.clone(), pin, platforms: Some(platforms.to_vec()) })?;
            }
            cx.progress.discovered(&chart.reference, &name, carried);
            out.push(Discovery { chart: chart.reference.clone(), image: name, carried });
        }
    }
    if !unlisted.is_empty() {
        bail!(
            "discover: strict: these images are rendered by charts but not listed under images:\n  {}",
            unlisted.join("\n  ")
        );
    }
    Ok(out)
}

async fn fetch_layers(cx: &Ctx<'_>, images: &[ResolvedImage]) -> Result<()> {
    let mut unique: BTreeMap<String, (&BlobSource, &str)> = BTreeMap::new();
    for img in images {
        for l in &img.layers {
            if !cx.cache.has(&l.digest) {
                unique.entry(l.digest.to_string()).or_insert((l, &img.reference));
            }
        }
    }
    let total: u64 = unique.values().map(|(l, _)| l.size).sum();
    cx.progress.plan_bytes(unique.len(), total);
    cx.cache.check_space(total)?;
    stream::iter(unique.into_values())
        .map(|(l, reference)| async move {
            let what = format!("{reference}: layer {}", l.digest);
            cx.cache
                .download(&l.digest, Some(l.size), &what, cx.progress, async |offset| {
                    cx.client.blob(&l.registry, &l.repository, &l.digest, offset).await
                })
                .await?;
            cx.progress.blob_done(l.digest.as_ref(), l.size, reference);
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(cx.jobs)
        .try_collect::<()>()
        .await
}

fn same_as_lock(staged: &Staged, lock: &Lock) -> Result<()> {
    let (_, index, _) = LayoutDir::open(staged.layout())?;
    let got: BTreeMap<String, String> = index
        .manifests()
        .iter()
        .filter_map(|d| Some((d.annotations().as_ref()?.get(ANNOTATION_REF)?.clone(), d.digest().to_string())))
        .collect();
    let want: BTreeMap<String, String> =
        lock.artifacts.iter().map(|a| (a.reference.clone(), a.digest.to_string())).collect();
    let mut problems = Vec::new();
    for (r, d) in &want {
        match got.get(r) {
            None => problems.push(format!("{r}: in the lock but no longer in the spec")),
            Some(g) if g != d => problems.push(format!("{r}: the lock says {d}, upstream now gives {g}")),
            _ => {}
        }
    }
    problems
        .extend(got.keys().filter(|r| !want.contains_key(*r)).map(|r| format!("{r}: in the spec but not in the lock")));
    if !problems.is_empty() {
        bail!(
            "the spec and upstream no longer match the lock (run `airgap bundle lock` again):\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}
