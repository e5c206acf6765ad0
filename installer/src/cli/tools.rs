//! `airgap tools`: the tool binaries a bundle carries, written into a folder.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::tools::{self, host_platform, ToolsOptions};

#[derive(Debug, Args)]
#[command(after_help = "Example:
  airgap tools --bundle /media/usb/bundle --out ~/bin && ~/bin/kubectl version --client
  airgap tools --bundle /media/usb/bundle --out tools --platform linux/arm64 --json")]
/// What `airgap tools` is given.
pub struct ToolsArgs {
    /// The bundle whose tools to write.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The folder to write the binaries into (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// The `os/arch` to take where a tool is carried per platform; default: this machine's.
    #[arg(long, default_value_t = host_platform())]
    pub platform: String,
    /// Print [{name, version, reference, path, sha256}] as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ToolsArgs {
    /// `airgap tools`.
    pub fn run(self) -> Result<()> {
        let ToolsArgs { bundle, out, platform, json } = self;
        tools::run(&ToolsOptions { bundle, out, platform, json })
    }
}
