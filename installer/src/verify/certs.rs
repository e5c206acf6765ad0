//! Is a TLS certificate right for a host: in its validity period (and how many days are left),
//! valid for the host's name, and issued by the site CA. The chain and name are checked by
//! rustls' WebPKI verifier, as a TLS client checks them; the dates and names for the message are
//! read with x509-parser.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, Error as TlsError};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const DAY: i64 = 24 * 60 * 60;

/// Ok with the days left, or Err with what is wrong. `chain` is the PEM the server presents (leaf
/// first, intermediates after it); `ca` the site CA's PEM; `now` seconds since the epoch.
pub fn check(chain: &[u8], host: &str, ca: &[u8], now: i64) -> Result<String, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    let leaf = certs.first().ok_or("no certificate in it")?;
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| format!("the certificate does not parse: {e}"))?;
    let validity = parsed.validity();
    let (not_before, not_after) = (validity.not_before.timestamp(), validity.not_after.timestamp());
    let date = |t: i64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
    };
    if now > not_after {
        return Err(format!("expired {} day(s) ago ({})", (now - not_after) / DAY, date(not_after)));
    }
    if now < not_before {
        return Err(format!("not valid before {}", date(not_before)));
    }
    let names = dns_names(&parsed);
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the site CA is not PEM: {e}"))?;
    let (added, _) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err("the site CA holds no usable certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("the site CA: {e}"))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host} is not a host name: {e}"))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    match verifier.verify_server_cert(leaf, &certs[1..], &name, &[], at) {
        Ok(_) => Ok(format!(
            "valid for {host}, issued by the site CA, {} day(s) left (until {})",
            (not_after - now) / DAY,
            date(not_after)
        )),
        Err(TlsError::InvalidCertificate(e)) => Err(match e {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "not valid for {host}: it names {}",
                    if names.is_empty() { "no DNS name".into() } else { names.join(", ") }
                )
            }
            CertificateError::UnknownIssuer => format!("not issued by the site CA: its issuer is {}", parsed.issuer()),
            CertificateError::BadSignature => "its signature does not verify against the site CA".into(),
            other => format!("{other:?}"),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// The certificate chain a TLS server at `address` presents for `host`, as PEM, read without
/// judging it (that is [`check`]'s part). Err when nothing answers TLS there within `timeout`.
pub fn served(address: &str, host: &str, timeout: std::time::Duration) -> Result<Vec<u8>, String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("{address} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{address}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .and_then(|_| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recorder(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host} is not a host name: {e}"))?;
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| format!("{address}: TLS handshake: {e}"))?;
    }
    let chain = tls.peer_certificates().ok_or_else(|| format!("{address} presented no certificate"))?;
    Ok(chain.iter().map(crate::site_ca::pem_of).collect::<String>().into_bytes())
}

/// Takes any chain, so it can be read and then checked against the site CA; the handshake's own
/// signatures are still verified.
#[derive(Debug)]
struct Recorder(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, TlsError> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

    fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    /// A fixed moment, whole seconds as certificates keep them, so days left are exact.
    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
    }

    fn leaf(names: &[&str], by: &(rcgen::Certificate, KeyPair), at: time::OffsetDateTime, days: (i64, i64)) -> String {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = at + time::Duration::days(days.0);
        params.not_after = at + time::Duration::days(days.1);
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &by.0, &by.1).unwrap().pem()
    }

    #[test]
    fn a_good_certificate_and_each_way_one_can_be_wrong() {
        let site = ca("site CA");
        let pem = site.0.pem();
        let at = now();
        let t = at.unix_timestamp();
        let good = leaf(&["*.sandbox.example"], &site, at, (-1, 30));
        let ok = check(good.as_bytes(), "api.sandbox.example", pem.as_bytes(), t).unwrap();
        assert!(ok.contains("valid for api.sandbox.example") && ok.contains(", 30 day(s) left"), "{ok}");

        let expired = leaf(&["api.sandbox.example"], &site, at, (-30, -3));
        let err = check(expired.as_bytes(), "api.sandbox.example", pem.as_bytes(), t).unwrap_err();
        assert!(err.starts_with("expired 3 day(s) ago"), "{err}");

        let err = check(good.as_bytes(), "api.other.example", pem.as_bytes(), t).unwrap_err();
        assert_eq!(err, "not valid for api.other.example: it names *.sandbox.example");

        let stranger = leaf(&["api.sandbox.example"], &ca("another CA"), at, (-1, 30));
        let err = check(stranger.as_bytes(), "api.sandbox.example", pem.as_bytes(), t).unwrap_err();
        assert!(err.contains("not issued by the site CA") && err.contains("another CA"), "{err}");

        assert!(check(b"junk", "a.example", pem.as_bytes(), t).is_err());
    }
}
