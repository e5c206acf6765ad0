//! TLS for the installer's HTTP clients: the system's roots plus the site CA, ring as the
//! provider, like the rest of airgap.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(ca) = ca_file {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| anyhow!("CA file {}: {e}", ca.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("CA file {}: no usable PEM certificate in it", ca.display());
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
