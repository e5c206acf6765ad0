//! The connected side: a bundle spec becomes a bundle. Resolves and fetches images (OCI
//! distribution), Helm charts (classic repositories and `oci://`), files over HTTP and git
//! repositories, through a download cache, with progress.
//!
//! It must not know how a bundle is laid out on disk beyond the `bundles` API, nor anything of
//! the site: registries, clusters and installers are the other side's business.
