//! Shell completions and man pages, generated from the command's own definition so that they
//! never drift from it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap completions bash > /etc/bash_completion.d/airgap
  airgap completions zsh > \"${fpath[1]}/_airgap\"")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap man | man -l -
  airgap man --out /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write airgap.1 and a page for each subcommand (airgap-bundle-verify.1, …) into DIR
    /// instead of printing airgap.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "airgap", &mut out);
    out.flush().context("writing the completions")
}

pub fn man(args: ManArgs, cmd: clap::Command) -> Result<()> {
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out).context("writing the man page")
        }
    }
}
