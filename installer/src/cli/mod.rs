//! The flags of every command the installer owns, each turned once into the options its command
//! takes (`crate::options` and each module's `*Options`), which library callers build directly.

mod install;
mod nodes;
mod site;
mod tools;

pub use install::{ApplyArgs, PlanArgs, RenderArgs, StatusArgs, TargetArgs, VerifyArgs};
pub use nodes::{ClusterConfigArgs, HostSourceArgs, MirrorsArgs};
pub use site::WireguardArgs;
pub use tools::ToolsArgs;
