//! What every HTTPS client of airgap shares, whichever crate it lives in (the bundler's upstream
//! fetches, the installer's calls to the site registry, `registry push` and the S3 backend): the
//! TLS roots it trusts and how it reads a registry's `WWW-Authenticate` challenge.
//!
//! A leaf: it knows nothing of bundles, specs, plans or registries, and no crate of ours is below
//! it. Requests themselves stay with each client (async or blocking, its retries, its limits).

pub mod challenge;
pub mod tls;

pub use challenge::{basic_authorization, bearer_authorization, parse_challenge, Challenge};
pub use tls::{tls_config, Error};
