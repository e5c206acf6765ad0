//! One rustls client configuration for every client: the system's roots, plus the CA files it is
//! given, with ring as the provider like the registry's server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A CA file that cannot be trusted, or a TLS setup that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA file that cannot be read or holds no usable certificate.
    #[error("CA file {}: {message}", path.display())]
    CaFile {
        /// The file as it was given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// Trusts the system's CAs and every certificate of `ca_files`. A CA file that cannot be read,
/// or that holds no certificate rustls can use, is an error naming it: a site CA silently
/// ignored would only surface later as an unknown-issuer failure far from its cause.
pub fn tls_config(ca_files: &[&Path]) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    // A machine without system roots still works with the given CAs alone.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for path in ca_files {
        let ca_error = |message: String| Error::CaFile { path: path.to_path_buf(), message };
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| ca_error(e.to_string()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ca_error("no usable PEM certificate in it".into()));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_missing_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = tls_config(&[&empty]).unwrap_err().to_string();
        assert_eq!(err, format!("CA file {}: no usable PEM certificate in it", empty.display()));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = tls_config(&[&garbage]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("CA file {}: ", garbage.display())), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = tls_config(&[&missing]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("CA file {}: ", missing.display())), "{err}");
        assert!(tls_config(&[]).is_ok());
    }
}
