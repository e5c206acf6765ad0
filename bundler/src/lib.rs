//! The connected side: a bundle spec becomes a bundle. Resolves and fetches images (OCI
//! distribution), Helm charts (classic repositories and `oci://`), files over HTTP and git
//! repositories, through a download cache, with progress.
//!
//! It must not know how a bundle is laid out on disk beyond the `bundles` API, nor anything of
//! the site: registries, clusters and installers are the other side's business.

mod auth;
mod cache;
mod charts;
pub mod cli;
mod discover;
mod files;
mod gitrepo;
mod http;
mod image_lists;
mod images;
mod oci;
mod progress;
mod published;
pub mod run;
pub mod spec;
mod write;

pub use progress::Progress;
pub use write::{create, lock, CreateOptions, FetchOptions, LockOptions, DEFAULT_JOBS};
