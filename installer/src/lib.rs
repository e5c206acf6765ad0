//! Site file + plan → ordered steps per cluster → applied with the Kubernetes API and the
//! bundled helm, kubectl, istioctl and eksctl; state, preflight and the leak check.
//!
//! It must not reach the registry other than as an HTTP client would, nor fetch anything that
//! is not in the bundle.

pub mod alertmanager_config;
mod bundled_tools;
mod capacity;
pub mod chart_schema;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod cluster_config;
mod cluster_values;
pub mod generated;
mod helm;
mod hooks;
mod http_step;
mod manifests_dir;
pub mod mirrors;
pub mod mounted_files;
mod options;
pub mod plan;
mod pod_volume;
pub mod postrender;
mod preflight;
mod probe_pace;
mod registry_client;
mod render;
mod run;
pub mod saml;
mod service_proxy;
pub mod site;
pub mod site_ca;
mod state;
pub mod tools;
mod verify;
pub mod wait;
pub mod wireguard;

pub use options::{ApplyOptions, PlanOptions, Render, StatusOptions, Target, VerifyOptions};
