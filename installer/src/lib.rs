//! Site file + plan → ordered steps per cluster → applied with the Kubernetes API and the
//! bundled helm, kubectl, istioctl and eksctl; state, preflight and the leak check.
//!
//! It must not reach the registry other than as an HTTP client would, nor fetch anything that
//! is not in the bundle.

pub mod plan;
pub mod site;
