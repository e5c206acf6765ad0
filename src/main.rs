//! The `airgap` command: wires subcommands to the crates that own them; `demo` is the one piece
//! of its own, since it strings all of them together.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli_docs;
mod closed_stdout;
mod demo;
mod verbosity;

#[derive(Parser)]
#[command(
    name = "airgap",
    version = env!("AIRGAP_VERSION"),
    about = "Carry a Kubernetes platform into a data centre with no internet"
)]
struct Cli {
    #[command(flatten)]
    verbosity: verbosity::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make, check and read bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// The whole chain on this machine with no internet: upstream, create, verify, serve.
    Demo(demo::DemoArgs),
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
    Completions(cli_docs::CompletionsArgs),
    /// Print airgap's man page, or write one per command into a folder.
    Man(cli_docs::ManArgs),
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

fn main() -> ExitCode {
    // Helm 3.8 runs its post-renderer without arguments: the installer names its configuration
    // in the environment instead.
    let (result, errors) = match std::env::var_os(installer::postrender::ENV) {
        Some(config) => {
            (installer::postrender::run_as_helm_post_renderer(config.as_ref()), verbosity::Errors::default())
        }
        None => {
            let cli = Cli::parse();
            let errors = cli.verbosity.apply();
            (run(cli), errors)
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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
        Command::Demo(a) => demo::run(a),
        Command::Registry(cmd) => match cmd {
            RegistryCommand::Serve(mut a) => {
                a.quiet = cli.verbosity.quiet;
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
        Command::Completions(a) => cli_docs::completions(a, Cli::command()),
        Command::Man(a) => cli_docs::man(a, Cli::command()),
    }
}
