//! The on-site server: the OCI distribution API over storage backends (bundles in place, a
//! directory, S3-compatible), a classic Helm repository view, files and git over HTTP.
//!
//! It must not know about MOSIP or any platform, nor about installing anything.
