//! The `airgap` command's flags: each subcommand handed to the crate that owns it (its `cli`
//! module turns the flags into the options its domain takes), and the few the binary owns:
//! `demo`, `completions`, `man` and the global `-v`/`-q`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::demo::DemoOptions;
use crate::verbosity::Errors;
use crate::{cli_docs, demo, verbosity};

#[derive(Parser)]
#[command(
    name = "airgap",
    version = env!("AIRGAP_VERSION"),
    about = "Carry a Kubernetes platform into a data centre with no internet"
)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make, check and read bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// The whole chain on this machine with no internet: upstream, create, verify, serve.
    Demo(DemoArgs),
    /// Deploy the platform from the bundle, and configure nodes and clusters for the site registry.
    #[command(subcommand)]
    Install(InstallCommand),
    /// The on-site OCI registry, and copying bundles into an existing one.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Site services outside the clusters: the Wireguard bastion.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Write the tool binaries the bundle carries (kubectl, helm, istioctl, eksctl…) into a folder.
    Tools(installer::cli::ToolsArgs),
    /// Print a shell completion script for airgap.
    Completions(CompletionsArgs),
    /// Print airgap's man page, or write one per command into a folder.
    Man(ManArgs),
}

#[derive(Subcommand)]
enum InstallCommand {
    /// Print each cluster's ordered steps and what they create, after the leak check. Changes nothing.
    Plan(installer::cli::PlanArgs),
    /// Apply the plan, waiting for readiness; resumable, skips unchanged finished steps.
    Apply(installer::cli::ApplyArgs),
    /// What each step's recorded state is, beside its live health.
    Status(installer::cli::StatusArgs),
    /// Prove a finished install works now, from inside the site; a report people can read.
    Verify(installer::cli::VerifyArgs),
    /// Node mirror configuration: upstream hosts resolve to the site registry, names unchanged.
    Mirrors(installer::cli::MirrorsArgs),
    /// eksctl ClusterConfigs or RKE2 configuration of both clusters, with the node mirrors.
    ClusterConfig(installer::cli::ClusterConfigArgs),
}

#[derive(Subcommand)]
enum SiteCommand {
    /// The Wireguard bastion's server and peer configurations, written offline for the carried image.
    Wireguard(installer::cli::WireguardArgs),
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Serve bundles in place (and a directory for pushes) over the OCI distribution API,
    /// with Helm repository, file and git views.
    Serve(registry::cli::ServeArgs),
    /// Copy every artifact of a bundle into an existing registry (Harbor, Quay, distribution…).
    Push(registry::cli::PushArgs),
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Resolve a bundle spec to digests without downloading layers, for review.
    Lock(bundler::cli::LockArgs),
    /// Fetch everything a bundle spec (or its lock) names and write the bundle.
    Create(bundler::cli::CreateArgs),
    /// Pack an OCI image layout into a bundle: parts, checksums, SBOMs, signature.
    Pack(bundles::cli::PackArgs),
    /// Check every part, file, blob and the signature; exit 0 only when all hold.
    Verify(bundles::cli::VerifyArgs),
    /// List every artifact without unpacking anything.
    Inspect(bundles::cli::InspectArgs),
    /// Write the OCI image layout a bundle carries.
    Extract(bundles::cli::ExtractArgs),
    /// Print the bundle's SBOM.
    Sbom(bundles::cli::SbomArgs),
    /// Write one blob or archive member to stdout, read in place from the parts.
    Cat(bundles::cli::CatArgs),
}

impl Cli {
    /// Runs the command the flags name.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Bundle(cmd) => match cmd {
                BundleCommand::Lock(a) => a.run(),
                BundleCommand::Create(a) => a.run(),
                BundleCommand::Pack(a) => a.run(),
                BundleCommand::Verify(a) => a.run(),
                BundleCommand::Inspect(a) => a.run(),
                BundleCommand::Extract(a) => a.run(),
                BundleCommand::Sbom(a) => a.run(),
                BundleCommand::Cat(a) => a.run(),
            },
            Command::Demo(a) => a.run(),
            Command::Registry(cmd) => match cmd {
                RegistryCommand::Serve(mut a) => {
                    a.quiet = self.verbosity.quiet;
                    a.run()
                }
                RegistryCommand::Push(a) => a.run(),
            },
            Command::Site(SiteCommand::Wireguard(a)) => a.run(),
            Command::Install(cmd) => match cmd {
                InstallCommand::Plan(a) => a.run(),
                InstallCommand::Apply(a) => a.run(),
                InstallCommand::Status(a) => a.run(),
                InstallCommand::Verify(a) => a.run(),
                InstallCommand::Mirrors(a) => a.run(),
                InstallCommand::ClusterConfig(a) => a.run(),
            },
            Command::Tools(a) => a.run(),
            Command::Completions(a) => a.run(),
            Command::Man(a) => a.run(),
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- demo\n  airgap demo --dir /tmp/airgap-demo --listen 127.0.0.1:5000"
)]
pub struct DemoArgs {
    /// Keep the demo's files here (default: a temporary directory removed on exit).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where the registry serving the new bundle listens, as IP:PORT.
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "IP:PORT", value_parser = registry::cli::parse_listen)]
    pub listen: SocketAddr,
    /// Exit once a client has pulled from the served bundle (for scripts and tests).
    #[arg(long)]
    pub exit_after_pull: bool,
}

impl DemoArgs {
    fn run(self) -> Result<()> {
        let DemoArgs { dir, listen, exit_after_pull } = self;
        demo::run(&DemoOptions { dir, listen, exit_after_pull })
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap completions bash > /etc/bash_completion.d/airgap
  airgap completions zsh > \"${fpath[1]}/_airgap\"")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl CompletionsArgs {
    fn run(self) -> Result<()> {
        cli_docs::completions(self.shell, Cli::command())
    }
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

impl ManArgs {
    fn run(self) -> Result<()> {
        cli_docs::man(self.out.as_deref(), Cli::command())
    }
}

// `-v` and `-q`, for every command (see `verbosity`).
#[derive(Debug, Args)]
pub struct Verbosity {
    /// Errors with each cause on a line of its own and a backtrace of where they arose.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Nothing on stderr but the error, if there is one: no progress, notes, warnings or access log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Verbosity {
    /// Sets stderr up as the flags say; where the final error goes.
    pub fn apply(&self) -> Errors {
        verbosity::apply(self.verbose, self.quiet)
    }
}
