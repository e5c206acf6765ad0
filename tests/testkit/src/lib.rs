//! Starts the real peers that airgap's tests run against: CNCF distribution, a classic Helm chart
//! repository, a static file server, MinIO as an S3 store, and a Kubernetes control plane with
//! simulated nodes. Each listens on 127.0.0.1 on a free port and is stopped, with its files
//! removed, when dropped.
//!
//! The binaries come from `tests/tools/install.sh`. A missing binary fails the test with a message
//! naming it: a test that cannot reach its real peer must not pass by skipping. Where the server
//! itself cannot run here, [`api_double`] stands in for it and says why.
//!
//! This crate knows nothing of airgap's own crates; it only runs other people's software. One
//! exception, behind the `site-registry` feature: `SiteRegistry`, the tests' one way to make a
//! bundle with airgap's bundler and serve it with airgap's registry.

pub mod api_double;
mod conformance;
mod containerd;
pub mod crds;
mod distribution;
mod fileserver;
mod helmrepo;
pub mod images;
mod kube;
pub mod local_path;
mod minio;
pub mod mosip_upstream;
pub mod netns;
mod node;
mod podman;
mod proc;
#[cfg(feature = "site-registry")]
mod site_registry;
pub mod standin;
pub mod standin_images;
mod tls;
mod tools;
mod volumes;
pub mod workloads;

pub use conformance::{run_conformance, ConformanceReport, ConformanceTarget};
pub use containerd::Containerd;
pub use distribution::{Distribution, DistributionOpts};
pub use fileserver::{FileServer, RequestRecord};
pub use helmrepo::{HelmRepo, MOSIP_HELM_FIXTURE};
pub use kube::{host_address, KubeControlPlane, KubeOptions};
pub use minio::MinioServer;
pub use node::{NodeOptions, RealNode, SANDBOX_IMAGE};
pub use podman::Podman;
pub use proc::{free_port, run};
#[cfg(feature = "site-registry")]
pub use site_registry::{NewBundle, Serve, SiteRegistry};
pub use tls::{Issued, TestCa};
pub use tools::{shared_fixtures, tool, tools, tools_dir, workspace_root};
