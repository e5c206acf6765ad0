//! The `airgap` command: its flags (`cli`) wire each subcommand to the crate that owns it; `demo`
//! is the one piece of its own, since it strings all of them together.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cli_docs;
mod closed_stdout;
mod demo;
mod verbosity;

fn main() -> ExitCode {
    // Helm 3.8 runs its post-renderer without arguments: the installer names its configuration
    // in the environment instead.
    let (result, errors) = match std::env::var_os(installer::postrender::ENV) {
        Some(config) => {
            (installer::postrender::run_as_helm_post_renderer(config.as_ref()), verbosity::Errors::default())
        }
        None => {
            let cli = cli::Cli::parse();
            let errors = cli.verbosity.apply();
            (cli.run(), errors)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if closed_stdout::reader_left(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errors.print(&e);
            ExitCode::FAILURE
        }
    }
}
