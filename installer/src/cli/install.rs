//! `airgap install plan|apply|status|verify`: their flags, and the arguments they share.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::options::{ApplyOptions, PlanOptions, Render, StatusOptions, Target, VerifyOptions};
use crate::postrender::ImageMode;

/// Which site, plan and clusters a command works on; shared by plan, apply, status and verify.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
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

impl TargetArgs {
    fn options(self) -> Target {
        let TargetArgs { site, plan, cluster, json } = self;
        Target { site, plan, cluster, json }
    }
}

/// How steps are rendered: the registry images come from, the tools, the check; shared by plan, apply and verify.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
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
    #[arg(long, env = "AIRGAP_HELM")]
    pub helm: Option<PathBuf>,
    /// An istioctl binary instead of the one the bundle carries.
    #[arg(long)]
    pub istioctl: Option<PathBuf>,
    /// Kubernetes version `plan` renders and checks for when a cluster does not answer (default:
    /// the site file's clusters.<name>.kubernetes_version, else provider.kubernetes_version);
    /// a cluster that answers is asked, and `apply` always asks.
    #[arg(long)]
    pub kube_version: Option<String>,
    /// Skip the check that every rendered object can start where it lands (references, keys,
    /// APIs, Kubernetes versions). The leak check still runs.
    #[arg(long)]
    pub no_check: bool,
}

impl RenderArgs {
    fn options(self) -> Render {
        let RenderArgs { registry, ca_file, images, helm, istioctl, kube_version, no_check } = self;
        Render { registry, ca_file, images, helm, istioctl, kube_version, no_check }
    }
}

/// Print the ordered steps of each cluster and what each creates, after rendering everything,
/// running the leak check and checking that every object can start where it lands: the
/// ConfigMaps, Secrets (and keys), claims, classes, accounts, roles, gateways and services it names
/// exist in the cluster or come from an earlier step, its API is served, each chart admits the
/// cluster's Kubernetes version. One line per problem and a count; exits non-zero on a problem.
/// Changes nothing.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  airgap install plan --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml \\
      --registry https://registry.site.local:5000 --ca-file site-ca.pem
  airgap install plan --site site.yaml --plan manifests/sample/plan.yaml --registry http://127.0.0.1:5000 --json
  airgap install plan ... --manifests rendered      # every object, a file per step")]
pub struct PlanArgs {
    /// Which site, plan and clusters.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How steps are rendered.
    #[command(flatten)]
    pub render: RenderArgs,
    /// Also write every object each step would send, post-rendered and hooks included, to
    /// DIR/<cluster>/<NNN>-<step>.yaml (DIR must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
}

impl PlanArgs {
    /// `airgap install plan`; fails when a step cannot be rendered, or the leak check or the check finds a problem.
    pub fn run(self) -> Result<()> {
        crate::run::plan(&PlanOptions {
            target: self.target.options(),
            render: self.render.options(),
            manifests: self.manifests,
        })
    }
}

/// Apply the plan: preflight, render, leak-check and check every step (as `plan` does; nothing is
/// applied when the check finds a problem), then apply them in order, waiting for readiness. A re-run skips finished steps whose inputs did not change.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  airgap install apply --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml \\
      --registry https://registry.site.local:5000 --ca-file site-ca.pem --cluster observation
  airgap install apply ... --from keycloak      # resume from a step
  airgap install apply ... --only ingress-nginx # one step again")]
pub struct ApplyArgs {
    /// Which site, plan and clusters.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How steps are rendered.
    #[command(flatten)]
    pub render: RenderArgs,
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

impl ApplyArgs {
    /// `airgap install apply`.
    pub fn run(self) -> Result<()> {
        crate::run::apply(&ApplyOptions {
            target: self.target.options(),
            render: self.render.options(),
            from: self.from,
            to: self.to,
            only: self.only,
        })
    }
}

/// Prove that a finished install works now, from inside the site: every step's workloads, the
/// network edge (each route through its gateway, each backend's health endpoint, each host's
/// certificate), Keycloak realms, the config server, node mirrors, Rancher registration. One line
/// per check; exits 0 only when every check passes.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  airgap install verify --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml \\
      --registry https://registry.site.local:5000 --ca-file site-ca.pem --report audit/install
  airgap install verify ... --cluster mosip --testrig     # also run the API test rig once
  airgap install verify ... --json")]
pub struct VerifyArgs {
    /// Which site, plan and clusters.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How steps are rendered.
    #[command(flatten)]
    pub render: RenderArgs,
    /// Also write DIR/verify.json and DIR/verify.html, a page with no external asset.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Run the CronJobs of this plan step once (the API test rig's, by default) and compare each
    /// outcome with the previous run's.
    #[arg(long, value_name = "STEP", num_args = 0..=1, default_missing_value = "apitestrig")]
    pub testrig: Option<String>,
}

impl VerifyArgs {
    /// `airgap install verify`; fails when any check fails.
    pub fn run(self) -> Result<()> {
        crate::verify::run(&VerifyOptions {
            target: self.target.options(),
            render: self.render.options(),
            report: self.report,
            testrig: self.testrig,
        })
    }
}

/// What is done, running and failed on each cluster, read from the cluster itself, beside each
/// step's live health (its namespace, ConfigMap or Secret there, what it waits for ready).
#[derive(Args, Debug, Clone)]
#[command(after_help = "Example:
  airgap install status --site site.yaml --plan manifests/mosip-1.2.0.1-B2/plan.yaml --json")]
pub struct StatusArgs {
    /// Which site, plan and clusters.
    #[command(flatten)]
    pub target: TargetArgs,
}

impl StatusArgs {
    /// `airgap install status`.
    pub fn run(self) -> Result<()> {
        crate::run::status(&StatusOptions { target: self.target.options() })
    }
}
