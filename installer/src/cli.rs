//! `airgap install plan|apply|status`: the arguments the three share.

use std::path::PathBuf;

use clap::Args;

use crate::postrender::ImageMode;

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The site file (see manifests/mosip-1.2.0.1-B2/site.example.yaml).
    #[arg(long)]
    pub site: PathBuf,
    /// The install plan (manifests/<platform>/plan.yaml).
    #[arg(long)]
    pub plan: PathBuf,
    /// Only this cluster of the plan (default: every cluster).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Print JSON for machines: one document for plan and status, a line a step event for apply.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct Render {
    /// The site registry serving the bundle, as this machine reaches it.
    #[arg(long)]
    pub registry: String,
    /// CA certificate (PEM) of the registry, when it is not in the system's store.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Point images at the site registry (rewrite), or keep their names for nodes that mirror
    /// the upstream hosts to it (keep: see `airgap install mirrors`).
    #[arg(long, value_enum, default_value = "rewrite")]
    pub images: ImageMode,
    /// A helm binary instead of the one the bundle carries.
    #[arg(long)]
    pub helm: Option<PathBuf>,
    /// An istioctl binary instead of the one the bundle carries.
    #[arg(long)]
    pub istioctl: Option<PathBuf>,
    /// Kubernetes version charts are rendered for by `plan` (apply asks the cluster).
    #[arg(long, default_value = "1.24.17")]
    pub kube_version: String,
}

/// Print the ordered steps of each cluster and what each creates, after rendering everything and
/// running the leak check. Changes nothing.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  airgap install plan --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml \\
      --registry https://registry.site.local:5000 --ca-file site-ca.pem
  airgap install plan --site site.yaml --plan manifests/sample/plan.yaml --registry http://127.0.0.1:5000 --json")]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub render: Render,
}

/// Apply the plan: preflight, render and leak-check every step, then apply them in order,
/// waiting for readiness. A re-run skips finished steps whose inputs did not change.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  airgap install apply --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml \\
      --registry https://registry.site.local:5000 --ca-file site-ca.pem --cluster observation
  airgap install apply ... --from keycloak      # resume from a step
  airgap install apply ... --only ingress-nginx # one step again")]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub render: Render,
    /// Start at this step (earlier ones are taken as done).
    #[arg(long)]
    pub from: Option<String>,
    /// Stop after this step (with --from, a range), e.g. to check Istio before the modules.
    #[arg(long)]
    pub to: Option<String>,
    /// Run only this step.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub only: Option<String>,
}

/// What is done, running and failed on each cluster, read from the cluster itself.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Example:
  airgap install status --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml --json")]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
}
