//! TLS from given files, or from a site CA and server certificate generated into a directory.
//!
//! The generated directory holds `ca.crt` (what clients trust: put it in `certs.d/<host>/`,
//! containerd's `hosts.toml`, or pass the directory as skopeo's `--cert-dir`), `ca-key.pem`,
//! `server.pem` and `server-key.pem`. Only `ca.crt` ends in a suffix those tools read, so the
//! directory works as a cert dir as it is. The CA is kept across restarts; the server
//! certificate is issued afresh for the host names given each time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// Given files, as an enterprise CA issued them.
    Files {
        /// The certificate chain (PEM), server first.
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
    /// A site CA kept in `dir` and a server certificate issued by it at each start.
    Generate {
        /// Holds the CA, the certificate and their keys (see the module's doc).
        dir: PathBuf,
        /// The names (or IP addresses) clients reach the registry by, all in the certificate.
        hostnames: Vec<String>,
    },
}

/// The site CA's certificate in a generated directory: the one file clients need.
pub const CA_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";

/// Reads (or first generates) the certificate and key, refusing files that hold none.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert, key) = match tls {
        TlsConfig::Files { cert, key } => (cert.clone(), key.clone()),
        TlsConfig::Generate { dir, hostnames } => generate(dir, hostnames)?,
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client of other HTTPS servers (registries, S3 endpoints) that trusts the system's CAs and
/// `ca_file` (see `clientcore`).
pub(crate) fn https_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::blocking::Client> {
    let tls = clientcore::tls_config(ca_file.as_slice())?;
    Ok(reqwest::blocking::Client::builder().tls_backend_preconfigured(tls).timeout(None).build()?)
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "airgap site CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Writes (or reuses) the site CA and issues a server certificate; returns its cert and key files.
fn generate(dir: &Path, hostnames: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    if hostnames.is_empty() {
        bail!("generating a server certificate needs at least one host name");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key_file = dir.join(CA_KEY_FILE);
    let ca_key = if ca_key_file.exists() {
        let pem = fs::read_to_string(&ca_key_file).with_context(|| format!("cannot read {}", ca_key_file.display()))?;
        KeyPair::from_pem(&pem).with_context(|| format!("{} is not a key", ca_key_file.display()))?
    } else {
        KeyPair::generate()?
    };
    // The same key and name give a certificate that verifies what the kept ca.crt verifies.
    let ca = ca_params()?.self_signed(&ca_key)?;
    if !ca_key_file.exists() {
        write_private(&ca_key_file, &ca_key.serialize_pem())?;
        fs::write(dir.join(CA_FILE), ca.pem())
            .with_context(|| format!("cannot write {}", dir.join(CA_FILE).display()))?;
    }
    let mut params =
        CertificateParams::new(hostnames.to_vec()).context("invalid host name for the server certificate")?;
    params.distinguished_name.push(DnType::CommonName, hostnames[0].clone());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    let (cert_file, key_file) = (dir.join(SERVER_FILE), dir.join(SERVER_KEY_FILE));
    fs::write(&cert_file, cert.pem()).with_context(|| format!("cannot write {}", cert_file.display()))?;
    write_private(&key_file, &key.serialize_pem())?;
    Ok((cert_file, key_file))
}

/// Writes a private key into a new file that only its owner can read, then renames it over
/// `path`: an existing file, whatever its permissions, is replaced, never written into.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("key files are in a directory");
    let name = path.file_name().expect("key files have a name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_ca_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            TlsConfig::Generate { dir: dir.path().into(), hostnames: vec!["registry.site".into(), "127.0.0.1".into()] };
        server_config(&cfg).unwrap();
        let ca = fs::read(dir.path().join(CA_FILE)).unwrap();
        let first = fs::read(dir.path().join(SERVER_FILE)).unwrap();
        server_config(&cfg).unwrap();
        assert_eq!(fs::read(dir.path().join(CA_FILE)).unwrap(), ca);
        assert_ne!(fs::read(dir.path().join(SERVER_FILE)).unwrap(), first);
        let none = TlsConfig::Generate { dir: dir.path().into(), hostnames: vec![] };
        assert!(server_config(&none).is_err());
    }

    #[test]
    fn an_empty_ca_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        fs::write(&empty, "").unwrap();
        let err = https_client(Some(&empty)).unwrap_err().to_string();
        assert_eq!(err, format!("CA file {}: no usable PEM certificate in it", empty.display()));
    }
}
