//! The bundle: what airgap carries across the air gap, as files on removable media.
//!
//! This crate owns the on-disk format and everything that reads or writes it: the OCI image layout
//! store, the deterministic archive cut into parts, the checksums, the lock, the SBOMs, the minisign
//! signature, verification and safe extraction.
//!
//! It must not know about networks (no HTTP, no registries, no Kubernetes) nor about any platform
//! such as MOSIP: callers hand it an OCI layout and get a bundle, or hand it a bundle and read blobs.

pub mod archive;
pub mod artifact;
pub mod carried_binary;
pub mod checksums;
pub mod cli;
pub mod delta;
pub mod digest;
mod error;
pub mod extract;
pub mod footprint;
pub mod layout;
pub mod layout_writer;
pub mod lock;
pub mod meta;
pub mod naming;
pub mod outdir;
pub mod pack;
pub mod parts;
pub mod reader;
pub mod regular_file;
pub mod safe_path;
pub mod sbom;
pub mod seekable;
pub mod sign;
pub mod size;
pub mod text;
pub mod verify;

pub use error::{Error, Result};
pub use reader::Bundle;

/// The schema version this build writes; readers accept any minor of the same major, so a minor
/// only adds optional fields that older readers skip. 1.1: a file artifact's `published`;
/// 1.2: the archive's `frameSize`.
pub const SCHEMA_VERSION: &str = "1.2";

/// The version of airgap that wrote a bundle, recorded in its metadata and reports.
pub const GENERATOR: &str = concat!("airgap ", env!("CARGO_PKG_VERSION"));
