//! `airgap bundle lock` and `airgap bundle create`: their flags, turned once into the options
//! `lock` and `create` take.

use std::path::PathBuf;

use anyhow::Result;
use bundles::cli::{carried_airgap, AIRGAP_BINARY_HELP, MAX_PART_SIZE_HELP};
use bundles::size::{parse_size, FAT32_MAX};
use clap::Args;

use crate::cache::Cache;
use crate::write::{create, lock, CreateOptions, FetchOptions, LockOptions, DEFAULT_JOBS};

/// How upstream content is fetched; the same for `lock` and `create`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Download cache; blobs are kept by digest and partial downloads resume.
    #[arg(long, env = "AIRGAP_CACHE")]
    pub cache: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, default_value_t = DEFAULT_JOBS)]
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
    fn options(self) -> FetchOptions {
        let FetchArgs { cache, jobs, platform, helm, json } = self;
        FetchOptions { cache: cache.unwrap_or_else(Cache::default_dir), jobs, platforms: platform, helm, json }
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

impl LockArgs {
    /// The options the flags say.
    pub fn options(self) -> LockOptions {
        LockOptions { spec: self.spec, output: self.output, fetch: self.fetch.options() }
    }

    /// `airgap bundle lock`.
    pub fn run(self) -> Result<()> {
        lock(&self.options())
    }
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

impl CreateArgs {
    /// The options the flags say; without --airgap-binary, no binary is carried.
    pub fn options(self) -> CreateOptions {
        let CreateArgs { spec, output, lock, base, max_part_size, sign_key, airgap_binary, fetch } = self;
        CreateOptions { spec, output, lock, base, max_part_size, sign_key, airgap_binary, fetch: fetch.options() }
    }

    /// `airgap bundle create`, which carries the running airgap unless told another.
    pub fn run(self) -> Result<()> {
        let mut opts = self.options();
        opts.airgap_binary = carried_airgap(opts.airgap_binary)?;
        create(&opts)
    }
}
