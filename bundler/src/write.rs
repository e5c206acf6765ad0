//! What a run becomes: the lock of what it resolved (`lock`), or the bundle packed from what it
//! fetched (`create`), each reported as it goes and summed up at the end.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundles::carried_binary::CarriedBinary;
use bundles::cli::warn_about_part_size;
use bundles::lock::Lock;
use bundles::outdir::OutDir;
use bundles::pack::{pack, PackOptions};
use bundles::size::{human, FAT32_MAX};
use serde_json::json;

use crate::progress::Progress;
use crate::run::{stage, Options};

/// Downloads at a time unless told otherwise.
pub const DEFAULT_JOBS: usize = 4;

/// How upstream content is fetched; the same for `lock` and `create`.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The download cache, shared between runs.
    pub cache: PathBuf,
    /// Downloads at a time.
    pub jobs: usize,
    /// Image platforms (os/arch[/variant]) over the spec's, when not empty.
    pub platforms: Vec<String>,
    /// The helm that renders charts for image discovery, over the spec's.
    pub helm: Option<PathBuf>,
    /// One JSON event per line on stdout instead of progress bars.
    pub json: bool,
}

impl FetchOptions {
    /// Downloads kept in `cache`, [`DEFAULT_JOBS`] at a time, for the spec's platforms with the
    /// spec's helm, shown as progress bars.
    pub fn new(cache: &Path) -> FetchOptions {
        FetchOptions { cache: cache.to_path_buf(), jobs: DEFAULT_JOBS, platforms: Vec::new(), helm: None, json: false }
    }

    fn run(&self, spec: &Path, lock: Option<Lock>, fetch_layers: bool) -> Options {
        Options {
            spec: spec.to_path_buf(),
            cache: self.cache.clone(),
            jobs: self.jobs,
            platforms: self.platforms.clone(),
            helm: self.helm.clone(),
            lock,
            fetch_layers,
        }
    }
}

/// What `lock` resolves and where it writes the lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// The bundle spec (YAML).
    pub spec: PathBuf,
    /// Where to write the lock (JSON).
    pub output: PathBuf,
    /// Where and how to fetch.
    pub fetch: FetchOptions,
}

/// What `create` fetches and how it packs the bundle.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The bundle spec (YAML).
    pub spec: PathBuf,
    /// The bundle directory to write; must not exist or be empty.
    pub output: PathBuf,
    /// Fetch exactly what this lock names (by digest).
    pub lock: Option<PathBuf>,
    /// A previous bundle directory or its lock: only blobs it lacks are carried.
    pub base: Option<PathBuf>,
    /// The largest part, in bytes.
    pub max_part_size: u64,
    /// A minisign secret key that signs the bundle's SHA256SUMS.
    pub sign_key: Option<PathBuf>,
    /// The airgap binary carried beside the parts; none when None.
    pub airgap_binary: Option<PathBuf>,
    /// Where and how to fetch.
    pub fetch: FetchOptions,
}

impl CreateOptions {
    /// The bundle of `spec` in `output`, fetched as `fetch` says: no lock, base, signature or
    /// carried binary, parts of at most the FAT32 limit.
    pub fn new(spec: &Path, output: &Path, fetch: FetchOptions) -> CreateOptions {
        CreateOptions {
            spec: spec.to_path_buf(),
            output: output.to_path_buf(),
            lock: None,
            base: None,
            max_part_size: FAT32_MAX,
            sign_key: None,
            airgap_binary: None,
            fetch,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Resolves the spec to digests and writes the lock, without downloading layers.
pub fn lock(opts: &LockOptions) -> Result<()> {
    let progress = Progress::new(opts.fetch.json);
    progress.outcome(write_lock(opts, &progress))
}

fn write_lock(opts: &LockOptions, progress: &Progress) -> Result<()> {
    let staged = runtime()?.block_on(stage(&opts.fetch.run(&opts.spec, None, false), progress))?;
    let lock = staged.lock()?;
    std::fs::write(&opts.output, lock.to_json()).with_context(|| opts.output.display().to_string())?;
    let bytes: u64 = lock.blobs.iter().map(|b| b.size).sum();
    progress.done(
        json!({"lock": opts.output, "artifacts": lock.artifacts.len(), "blobs": lock.blobs.len(), "bytes": bytes}),
    );
    if !opts.fetch.json {
        eprintln!(
            "wrote {} ({} artifacts, {} blobs, {})",
            opts.output.display(),
            lock.artifacts.len(),
            lock.blobs.len(),
            human(bytes)
        );
    }
    Ok(())
}

/// Fetches everything the spec (or its lock) names and writes the bundle.
pub fn create(opts: &CreateOptions) -> Result<()> {
    let progress = Progress::new(opts.fetch.json);
    progress.outcome(write_bundle(opts, &progress))
}

fn write_bundle(opts: &CreateOptions, progress: &Progress) -> Result<()> {
    warn_about_part_size(opts.max_part_size);
    // Refused before anything is fetched; on failure a folder made here is removed again.
    let output = OutDir::prepare(&opts.output)?;
    let lock = opts.lock.as_deref().map(Lock::read).transpose()?;
    let base = opts.base.as_deref().map(Lock::read).transpose()?;
    let sign_key = opts.sign_key.as_deref().map(bundles::sign::load_secret_key).transpose()?;
    let staged = runtime()?.block_on(stage(&opts.fetch.run(&opts.spec, lock, true), progress))?;
    let on_pack = |done: u64, total: u64| progress.packing(done, total);
    let pack_opts = PackOptions {
        max_part_size: opts.max_part_size,
        sign_key,
        base,
        progress: Some(&on_pack),
        airgap_binary: opts.airgap_binary.as_deref().map(CarriedBinary::at),
        ..PackOptions::default()
    };
    let packed = pack(staged.layout(), &opts.output, &pack_opts)?;
    output.keep();
    let total = packed.archive_size();
    progress.done(json!({
        "bundle": opts.output,
        "artifacts": packed.lock.artifacts.len(),
        "blobs": packed.carried_blobs,
        "parts": packed.parts.len(),
        "bytes": total,
    }));
    if !opts.fetch.json {
        eprintln!("{}", packed.summary(&opts.output));
    }
    Ok(())
}
