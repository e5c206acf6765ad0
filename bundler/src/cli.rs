//! `airgap bundle lock` and `airgap bundle create`: the arguments the `airgap` command wires in.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bundles::carried_binary::CarriedBinary;
use bundles::cli::{warn_about_part_size, AIRGAP_BINARY_HELP, MAX_PART_SIZE_HELP};
use bundles::lock::Lock;
use bundles::outdir::OutDir;
use bundles::pack::{pack, PackOptions};
use bundles::size::{human, parse_size, FAT32_MAX};
use clap::Args;
use serde_json::json;

use crate::cache::Cache;
use crate::progress::Progress;
use crate::run::{stage, Options};

fn default_jobs() -> usize {
    4
}

/// How upstream content is fetched; the same for `lock` and `create`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Download cache; blobs are kept by digest and partial downloads resume.
    #[arg(long, env = "AIRGAP_CACHE")]
    pub cache: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Image platforms (os/arch[/variant]); repeat for several. Overrides the spec's.
    #[arg(long)]
    pub platform: Vec<String>,
    /// The helm binary used to render charts for image discovery.
    #[arg(long, env = "AIRGAP_HELM")]
    pub helm: Option<PathBuf>,
    /// One JSON event per line on stdout instead of progress bars.
    #[arg(long)]
    pub json: bool,
}

impl FetchArgs {
    fn options(self, spec: PathBuf, lock: Option<Lock>, fetch_layers: bool) -> Options {
        Options {
            spec,
            cache: self.cache.unwrap_or_else(Cache::default_dir),
            jobs: self.jobs,
            platforms: self.platform,
            helm: self.helm,
            lock,
            fetch_layers,
        }
    }
}

/// What `airgap bundle lock` is given.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  airgap bundle lock manifests/sample/bundle.yaml -o bundle.lock.json")]
pub struct LockArgs {
    /// The bundle spec (YAML).
    pub spec: PathBuf,
    /// Where to write the lock (JSON).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Where and how to fetch.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  airgap bundle create manifests/sample/bundle.yaml -o /media/usb/bundle\n  airgap bundle create spec.yaml --lock bundle.lock.json --base /media/usb/previous -o delta --sign-key airgap.key"
)]
/// What `airgap bundle create` is given.
pub struct CreateArgs {
    /// The bundle spec (YAML).
    pub spec: PathBuf,
    /// The bundle directory to write; must not exist or be empty.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Fetch exactly what this lock names (by digest), so runs give identical parts.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// A previous bundle directory or its lock: only blobs it lacks are carried.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// The largest part, in bytes.
    #[arg(long, value_parser = parse_size, default_value_t = FAT32_MAX, help = MAX_PART_SIZE_HELP)]
    pub max_part_size: u64,
    /// A minisign secret key; the bundle's SHA256SUMS is signed with it.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// The airgap binary carried beside the parts.
    #[arg(long, value_name = "FILE", help = AIRGAP_BINARY_HELP)]
    pub airgap_binary: Option<PathBuf>,
    /// Where and how to fetch.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Resolves the spec to digests and writes the lock, without downloading layers.
pub fn lock(args: LockArgs) -> Result<()> {
    let progress = Progress::new(args.fetch.json);
    progress.outcome(write_lock(args, &progress))
}

fn write_lock(args: LockArgs, progress: &Progress) -> Result<()> {
    let json = args.fetch.json;
    let opts = args.fetch.options(args.spec, None, false);
    let staged = runtime()?.block_on(stage(&opts, progress))?;
    let lock = staged.lock()?;
    std::fs::write(&args.output, lock.to_json()).with_context(|| args.output.display().to_string())?;
    let bytes: u64 = lock.blobs.iter().map(|b| b.size).sum();
    progress.done(
        json!({"lock": args.output, "artifacts": lock.artifacts.len(), "blobs": lock.blobs.len(), "bytes": bytes}),
    );
    if !json {
        eprintln!(
            "wrote {} ({} artifacts, {} blobs, {})",
            args.output.display(),
            lock.artifacts.len(),
            lock.blobs.len(),
            human(bytes)
        );
    }
    Ok(())
}

/// Fetches everything the spec (or its lock) names and writes the bundle.
pub fn create(args: CreateArgs) -> Result<()> {
    let progress = Progress::new(args.fetch.json);
    progress.outcome(write_bundle(args, &progress))
}

fn write_bundle(args: CreateArgs, progress: &Progress) -> Result<()> {
    warn_about_part_size(args.max_part_size);
    // Refused before anything is fetched; on failure a folder made here is removed again.
    let output = OutDir::prepare(&args.output)?;
    let lock = args.lock.as_deref().map(Lock::read).transpose()?;
    let base = args.base.as_deref().map(Lock::read).transpose()?;
    let sign_key = args.sign_key.as_deref().map(bundles::sign::load_secret_key).transpose()?;
    let json = args.fetch.json;
    let opts = args.fetch.options(args.spec, lock, true);
    let staged = runtime()?.block_on(stage(&opts, progress))?;
    let on_pack = |done: u64, total: u64| progress.packing(done, total);
    let pack_opts = PackOptions {
        max_part_size: args.max_part_size,
        sign_key,
        base,
        progress: Some(&on_pack),
        airgap_binary: args.airgap_binary.as_deref().map(CarriedBinary::at),
        ..PackOptions::default()
    };
    let packed = pack(staged.layout(), &args.output, &pack_opts)?;
    output.keep();
    let total = packed.archive_size();
    progress.done(json!({
        "bundle": args.output,
        "artifacts": packed.lock.artifacts.len(),
        "blobs": packed.carried_blobs,
        "parts": packed.parts.len(),
        "bytes": total,
    }));
    if !json {
        eprintln!("{}", packed.summary(&args.output));
    }
    Ok(())
}
