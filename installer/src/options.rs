//! What `install plan|apply|status|verify` are asked to do: built once, from the command's flags
//! (see `cli`) or by a caller of the library, and read by the commands.

use std::path::PathBuf;

use crate::postrender::ImageMode;

/// The site and plan a command works on.
#[derive(Debug, Clone)]
pub struct Target {
    /// The site file.
    pub site: PathBuf,
    /// The install plan.
    pub plan: PathBuf,
    /// Only this cluster of the plan; every cluster when None.
    pub cluster: Option<String>,
    /// JSON for machines instead of text for people.
    pub json: bool,
}

/// How the plan's steps are rendered: the registry that serves the bundle and the tools.
#[derive(Debug, Clone)]
pub struct Render {
    /// The site registry's base URL, as this machine reaches it.
    pub registry: String,
    /// The registry's CA certificate (PEM), when it is not in the system's store.
    pub ca_file: Option<PathBuf>,
    /// Whether images are pointed at the site registry or keep their names.
    pub images: ImageMode,
    /// A helm binary instead of the bundle's.
    pub helm: Option<PathBuf>,
    /// An istioctl binary instead of the bundle's.
    pub istioctl: Option<PathBuf>,
    /// The Kubernetes version to render for when a cluster does not answer.
    pub kube_version: Option<String>,
    /// Skip the check that every object can start where it lands (not the leak check).
    pub no_check: bool,
}

/// `install plan`: render, leak-check and check every step; change nothing.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// What is planned.
    pub target: Target,
    /// How it is rendered.
    pub render: Render,
    /// Also write every object each step would send under this folder.
    pub manifests: Option<PathBuf>,
}

/// `install apply`: what `plan` does, then each step applied in order.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// What is applied.
    pub target: Target,
    /// How it is rendered.
    pub render: Render,
    /// Start at this step.
    pub from: Option<String>,
    /// Stop after this step.
    pub to: Option<String>,
    /// Run only this step.
    pub only: Option<String>,
}

/// `install status`: each step's recorded state beside its live health.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// What is read.
    pub target: Target,
}

/// `install verify`: prove a finished install works now.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// What is verified.
    pub target: Target,
    /// How the plan is rendered to know what to look for.
    pub render: Render,
    /// Also write the report into this folder.
    pub report: Option<PathBuf>,
    /// Run the CronJobs of this plan step once.
    pub testrig: Option<String>,
}
