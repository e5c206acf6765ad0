//! Shell completions and man pages, generated from the command's own definition so that they
//! never drift from it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The completion script of `cmd` for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "airgap", &mut out);
    out.flush().context("writing the completions")
}

/// The man page of `cmd` on stdout, or one per command written into `out`.
pub fn man(out: Option<&Path>, cmd: clap::Command) -> Result<()> {
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out).context("writing the man page")
        }
    }
}
