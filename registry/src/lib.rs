//! The on-site server: the OCI distribution API over storage backends (bundles in place, a
//! directory, S3-compatible), a classic Helm repository view, files and git over HTTP.
//!
//! It must not know about MOSIP or any platform, nor about installing anything.

mod access_log;
mod artifacts;
mod auth;
mod body;
mod charts;
pub mod cli;
mod connections;
mod contents_page;
mod distribution;
mod error;
mod files;
mod git;
mod names;
#[cfg(test)]
mod parser_props;
pub mod push;
mod routes;
mod server;
pub mod storage;
pub mod tls;

pub use access_log::AccessLog;
pub use connections::Limits;
pub use error::{ApiError, Code};
pub use server::{serve, ServeConfig, Server, StorageConfig};
pub use tls::TlsConfig;
