//! The `airgap` command: wires subcommands to the crates that own them; `demo` is the one piece
//! of its own, since it strings all of them together.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

#[derive(Parser)]
#[command(name = "airgap", version, about = "Carry a Kubernetes platform into a data centre with no internet")]
struct Cli {
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
    /// The on-site OCI registry, and copying bundles into an existing one.
    #[command(subcommand)]
    Registry(RegistryCommand),
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
    Lock(bundler::LockArgs),
    /// Fetch everything a bundle spec (or its lock) names and write the bundle.
    Create(bundler::CreateArgs),
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bundle(cmd) => match cmd {
            BundleCommand::Lock(a) => bundler::lock(a),
            BundleCommand::Create(a) => bundler::create(a),
            BundleCommand::Pack(a) => bundles::cli::run_pack(a),
            BundleCommand::Verify(a) => bundles::cli::run_verify(a),
            BundleCommand::Inspect(a) => bundles::cli::run_inspect(a),
            BundleCommand::Extract(a) => bundles::cli::run_extract(a),
            BundleCommand::Sbom(a) => bundles::cli::run_sbom(a),
            BundleCommand::Cat(a) => bundles::cli::run_cat(a),
        },
        Command::Demo(a) => demo::run(a),
        Command::Registry(cmd) => match cmd {
            RegistryCommand::Serve(a) => registry::cli::serve(a),
            RegistryCommand::Push(a) => registry::cli::push(a),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
