//! Site material a plan's `generate` step makes once and keeps in the cluster: what an upstream
//! install script generates on the operator's machine (a key, a certificate, a password) and then
//! hands to the cluster. Made with Rust crates, so the operator needs no openssl. A re-run finds
//! it in the cluster and keeps it; only when a part is missing is all of it made anew.
//!
//! The one kind so far is a signing keystore, as mosip-infra's `regclient/create-signing-certs.sh`
//! makes it: a CA, a code-signing certificate it signs, and a PKCS#12 keystore holding that
//! certificate and its key under an alias, its password in a Secret.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use p12_keystore::{Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rsa::pkcs8::EncodePrivateKey;
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::cluster::Cluster;
use crate::postrender::ObjectRef;

/// A plan's `generate:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Where the ConfigMap and the Secret are kept; it must exist by then.
    pub namespace: String,
    /// The keystore to make.
    pub signing_keystore: SigningKeystore,
}

/// A CA, a code-signing certificate it signs and a PKCS#12 keystore of it, as create-signing-certs.sh makes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeystore {
    /// The subject of both certificates, `C=IN,ST=KAR,L=BLR,O=MOSIP,CN=MOSIP` (the attributes
    /// C, ST, L, O, OU and CN, in the order written).
    pub subject: String,
    /// How long both certificates are valid.
    pub days: u32,
    /// The keystore entry's name (jarsigner's alias).
    pub alias: String,
    /// Where the certificates and the keystore are kept.
    pub configmap: KeystoreFiles,
    /// Where the keystore's (random) password is kept.
    pub password: SecretKey,
}

/// The ConfigMap that holds the certificates and the keystore, and the key of each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreFiles {
    /// The ConfigMap's name.
    pub name: String,
    /// The key of the CA certificate (PEM).
    pub ca_cert: String,
    /// The key of the signing certificate (PEM).
    pub cert: String,
    /// The key of the keystore, in `binaryData`.
    pub keystore: String,
}

/// The Secret key that holds the keystore's password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKey {
    /// The Secret's name.
    pub secret: String,
    /// The key of the password in the Secret.
    pub key: String,
}

/// The size of both RSA keys, as create-signing-certs.sh (`openssl genrsa 4096`).
const KEY_BITS: usize = 4096;
/// Random bytes of the keystore password: 20 characters of URL-safe base64, which a script may
/// pass unquoted (regclient's `jarsigner -storepass ${keystore_secret}`).
const PASSWORD_BYTES: usize = 15;
/// `nsCertType` (Netscape certificate type), which create-signing-certs.sh sets to `objsign`.
const NS_CERT_TYPE: &[u64] = &[2, 16, 840, 1, 113730, 1, 1];

impl Generate {
    /// Fails when the subject is not one this step can write (checked on plan load, before a cluster is touched).
    pub fn check(&self) -> Result<()> {
        parse_subject(&self.signing_keystore.subject).map(drop).context("generate.signing_keystore.subject")
    }

    /// What the step makes.
    pub fn objects(&self) -> Vec<ObjectRef> {
        let k = &self.signing_keystore;
        let of = |kind: &str, name: &str| ObjectRef {
            kind: kind.into(),
            namespace: Some(self.namespace.clone()),
            name: name.into(),
        };
        vec![of("ConfigMap", &k.configmap.name), of("Secret", &k.password.secret)]
    }

    /// The objects the step makes with their keys and empty values: what a reader of the plan
    /// may rely on before anything is generated.
    pub fn shapes(&self) -> Result<Vec<Value>> {
        let k = &self.signing_keystore;
        let empty =
            Material { ca_pem: String::new(), cert_pem: String::new(), keystore: Vec::new(), password: String::new() };
        self.documents(&empty).with_context(|| format!("generate {}", k.configmap.name))
    }

    /// The ConfigMap and the Secret holding `m`.
    pub fn documents(&self, m: &Material) -> Result<Vec<Value>> {
        let k = &self.signing_keystore;
        let labels = serde_json::json!({"app.kubernetes.io/managed-by": "airgap"});
        let configmap = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": k.configmap.name, "namespace": self.namespace, "labels": labels},
            "data": {k.configmap.ca_cert.as_str(): m.ca_pem, k.configmap.cert.as_str(): m.cert_pem},
            "binaryData": {k.configmap.keystore.as_str(): base64::engine::general_purpose::STANDARD.encode(&m.keystore)},
        });
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": k.password.secret, "namespace": self.namespace, "labels": labels},
            "type": "Opaque",
            "stringData": {k.password.key.as_str(): m.password},
        });
        Ok(vec![serde_yaml_ng::to_value(configmap)?, serde_yaml_ng::to_value(secret)?])
    }

    /// Makes the material unless the cluster holds all of it; says whether it was made.
    pub async fn ensure(&self, cluster: &Cluster) -> Result<bool> {
        if self.present(cluster).await? {
            return Ok(false);
        }
        let material = self.signing_keystore.make()?;
        cluster.apply(&self.documents(&material)?, None).await?;
        Ok(true)
    }

    async fn present(&self, cluster: &Cluster) -> Result<bool> {
        let k = &self.signing_keystore;
        let cm = Api::<ConfigMap>::namespaced(cluster.client.clone(), &self.namespace)
            .get_opt(&k.configmap.name)
            .await
            .with_context(|| format!("reading ConfigMap {}/{}", self.namespace, k.configmap.name))?;
        let secret = Api::<Secret>::namespaced(cluster.client.clone(), &self.namespace)
            .get_opt(&k.password.secret)
            .await
            .with_context(|| format!("reading Secret {}/{}", self.namespace, k.password.secret))?;
        let cm_complete = cm.is_some_and(|cm| {
            let data = cm.data.unwrap_or_default();
            let binary = cm.binary_data.unwrap_or_default();
            [&k.configmap.ca_cert, &k.configmap.cert].iter().all(|key| data.contains_key(*key))
                && binary.contains_key(&k.configmap.keystore)
        });
        let secret_complete = secret.is_some_and(|s| s.data.unwrap_or_default().contains_key(&k.password.key));
        Ok(cm_complete && secret_complete)
    }
}

/// What a signing keystore is made of.
pub struct Material {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The signing certificate, PEM.
    pub cert_pem: String,
    /// PKCS#12.
    pub keystore: Vec<u8>,
    /// The keystore's password: 20 characters of URL-safe base64.
    pub password: String,
}

impl SigningKeystore {
    /// A CA and a code-signing certificate with the extensions of create-signing-certs.sh's
    /// root-openssl.cnf and client-openssl.cnf (its Netscape comment left out), the certificate
    /// and its key in a keystore under `alias`.
    pub fn make(&self) -> Result<Material> {
        let subject = parse_subject(&self.subject)?;
        let now = time::OffsetDateTime::now_utc();
        let until = now + time::Duration::days(i64::from(self.days));

        let ca_key = rsa_key()?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = subject.clone();
        ca.not_before = now;
        ca.not_after = until;
        ca.serial_number = Some(SerialNumber::from_slice(&random_bytes(16)?));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign, KeyUsagePurpose::KeyCertSign];
        ca.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        ca.use_authority_key_identifier_extension = true;
        let ca_cert = ca.self_signed(&ca_key).context("cannot sign the CA certificate")?;

        let key = rsa_key()?;
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = subject;
        leaf.not_before = now;
        leaf.not_after = until;
        // `openssl x509 -set_serial 01`.
        leaf.serial_number = Some(SerialNumber::from_slice(&[1]));
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        leaf.use_authority_key_identifier_extension = true;
        // BIT STRING, 4 unused bits, objsign (bit 3).
        leaf.custom_extensions = vec![CustomExtension::from_oid_content(NS_CERT_TYPE, vec![0x03, 0x02, 0x04, 0x10])];
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).context("cannot sign the code-signing certificate")?;

        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(PASSWORD_BYTES)?);
        let mut store = KeyStore::new();
        let chain = [Certificate::from_der(cert.der()).map_err(|e| anyhow!("the code-signing certificate: {e}"))?];
        let local_key_id = random_bytes(20)?;
        store.add_entry(
            &self.alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key.serialized_der(), local_key_id, chain)),
        );
        // The algorithms every Java 8 and 11 build reads, as for the site CA's truststore.
        let keystore = store
            .writer(&password)
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .write()
            .map_err(|e| anyhow!("cannot write the keystore: {e}"))?;
        Ok(Material { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), keystore, password })
    }
}

/// `C=IN,ST=KAR,...` in order; only the attributes openssl's `req_distinguished_name` sections use.
fn parse_subject(text: &str) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for part in text.split(',').map(str::trim) {
        let (attr, value) = part.split_once('=').ok_or_else(|| anyhow!("{part:?} is not ATTRIBUTE=value"))?;
        let kind = match attr.trim() {
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "CN" => DnType::CommonName,
            other => bail!("{other}: not one of C, ST, L, O, OU, CN"),
        };
        dn.push(kind, value.trim());
    }
    if dn.iter().next().is_none() {
        bail!("an empty subject");
    }
    Ok(dn)
}

/// ring, rcgen's signer, cannot generate RSA keys: the `rsa` crate makes it, ring signs with it.
fn rsa_key() -> Result<KeyPair> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS).context("cannot generate an RSA key")?;
    let der = key.to_pkcs8_der().context("cannot encode an RSA key")?;
    KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
        .context("cannot load the RSA key")
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_their_order_and_refuse_unknown_attributes() {
        let dn = parse_subject("C=IN, ST=KAR,L=BLR,O=MOSIP,CN=MOSIP").unwrap();
        let kinds: Vec<DnType> = dn.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(kinds[0], DnType::CountryName);
        assert_eq!(kinds[4], DnType::CommonName);
        assert!(parse_subject("X=1").unwrap_err().to_string().contains("X"));
        assert!(parse_subject("CN").is_err());
    }
}
