//! The site CA inside a release's pods, for code that calls the site over HTTPS itself:
//! config-server clones mosip-config with JGit, masterdata-loader clones mosip-data with git, the
//! MOSIP services call each other and Keycloak by their site domains. The CA is the site file's
//! `registry.ca_cert` and, when the domains' certificates come from another CA, `tls.ca_cert`. It
//! goes into a ConfigMap in the release's namespace, which the post-renderer mounts into every
//! container with the variables git, Node and the JVM read. The JVM reads no PEM: it gets a
//! PKCS#12 truststore with each CA as a trusted certificate.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use p12_keystore::{Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_yaml_ng::Value;

/// The ConfigMap holding the site CA in each release's namespace that asks for it.
pub const CONFIGMAP: &str = "airgap-site-ca";
/// Where the ConfigMap is mounted in every container: `ca.crt` and `truststore.p12` are under it.
pub const MOUNT: &str = "/etc/airgap/site-ca";
const VOLUME: &str = "airgap-site-ca";
const PEM_KEY: &str = "ca.crt";
const TRUSTSTORE_KEY: &str = "truststore.p12";
/// The JDK's own truststore password. A truststore holds only public certificates; Java wants a
/// password to check the file's integrity.
pub const TRUSTSTORE_PASSWORD: &str = "changeit";
const JAVA_VARIABLE: &str = "JAVA_TOOL_OPTIONS";

/// The site file's keys naming CA files, the first required.
const SITE_KEYS: [&str; 2] = ["registry.ca_cert", "tls.ca_cert"];

/// The CA as PEM and as a Java truststore.
pub struct SiteCa {
    /// Every CA certificate the site file names, PEM, each once.
    pub pem: String,
    truststore: Vec<u8>,
}

impl SiteCa {
    /// The CAs the site file names (see [`SITE_KEYS`]), each certificate once.
    pub fn from_site(site: &crate::site::Site) -> Result<SiteCa> {
        let mut pem = String::new();
        let mut names = Vec::new();
        for key in SITE_KEYS {
            let written = match site.lookup(key) {
                Ok(w) if !w.is_empty() => w,
                _ if key == SITE_KEYS[0] => bail!("{}: {key} is needed for the site CA", site.path().display()),
                _ => continue,
            };
            let path = site.resolve_path(&written);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("{}: {key} names {}, which cannot be read", site.path().display(), path.display())
            })?;
            for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
                let cert = cert.with_context(|| format!("{}: not PEM certificates", path.display()))?;
                if !pem.contains(&pem_of(&cert)) {
                    pem.push_str(&pem_of(&cert));
                }
            }
            names.push(path.display().to_string());
        }
        SiteCa::from_pem(&pem, &names.join(" and "))
    }

    /// `what` names the file in errors.
    pub fn from_pem(pem: &str, what: &str) -> Result<SiteCa> {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{what}: not PEM certificates"))?;
        if certs.is_empty() {
            bail!("{what} holds no certificate");
        }
        let mut store = KeyStore::new();
        for (i, der) in certs.iter().enumerate() {
            let cert = Certificate::from_der(der).map_err(|e| anyhow::anyhow!("{what}: certificate {}: {e}", i + 1))?;
            store.add_entry(&format!("airgap-site-ca-{}", i + 1), KeyStoreEntry::Certificate(cert));
        }
        // The algorithms every Java 8 and 11 build reads; the newer defaults (AES, HMAC-SHA256)
        // need Java 11.0.12 or later, and MOSIP's images are older.
        let truststore = store
            .writer(TRUSTSTORE_PASSWORD)
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .write()
            .map_err(|e| anyhow::anyhow!("{what}: cannot write a truststore: {e}"))?;
        Ok(SiteCa { pem: pem.to_string(), truststore })
    }

    /// The [`CONFIGMAP`] object for `namespace`, holding the PEM and the Java truststore.
    pub fn configmap(&self, namespace: &str) -> Result<Value> {
        let truststore = base64::engine::general_purpose::STANDARD.encode(&self.truststore);
        Ok(serde_yaml_ng::to_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "airgap"}},
            "data": {PEM_KEY: self.pem},
            "binaryData": {TRUSTSTORE_KEY: truststore},
        }))?)
    }
}

pub(crate) fn pem_of(der: &CertificateDer<'_>) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// What a container needs to trust the CA mounted at [`MOUNT`]: git and Node take the PEM
/// (Node adds it to its own roots), the JVM the truststore.
pub fn variables() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("GIT_SSL_CAINFO", format!("{MOUNT}/{PEM_KEY}")),
        ("NODE_EXTRA_CA_CERTS", format!("{MOUNT}/{PEM_KEY}")),
        (
            JAVA_VARIABLE,
            format!(
                "-Djavax.net.ssl.trustStore={MOUNT}/{TRUSTSTORE_KEY} -Djavax.net.ssl.trustStoreType=PKCS12 \
                 -Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}"
            ),
        ),
    ])
}

/// Mounts the CA's ConfigMap into every container of a pod spec and sets [`variables`]; options
/// the chart already gives the JVM are kept ahead of ours.
pub fn mount(pod_spec: &mut Value) -> Result<()> {
    let mount = yaml(serde_json::json!({"name": VOLUME, "mountPath": MOUNT, "readOnly": true}))?;
    let variables = variables();
    crate::pod_volume::mount_configmap(pod_spec, VOLUME, CONFIGMAP, &[mount], |c| {
        let env = crate::pod_volume::sequence(c, "env")?;
        for (name, value) in &variables {
            let at = env.iter().position(|v| v.get("name").and_then(Value::as_str) == Some(name));
            let old = at.map(|i| env.remove(i));
            let kept = old.as_ref().filter(|_| *name == JAVA_VARIABLE).and_then(|v| v.get("value")?.as_str());
            let value = match kept {
                Some(k) if k.contains(value.as_str()) => k.to_string(),
                Some(k) => format!("{k} {value}"),
                None => value.clone(),
            };
            env.push(yaml(serde_json::json!({"name": name, "value": value}))?);
        }
        Ok(())
    })
}

/// Whether any of `docs` mounts the CA: a release that runs no container needs no ConfigMap.
pub fn mounted_in(docs: &[Value]) -> bool {
    fn mounts(v: &Value) -> bool {
        match v {
            Value::Mapping(m) => {
                m.get("configMap").and_then(|c| c.get("name")).and_then(Value::as_str) == Some(CONFIGMAP)
                    || m.values().any(mounts)
            }
            Value::Sequence(s) => s.iter().any(mounts),
            _ => false,
        }
    }
    docs.iter().any(mounts)
}

fn yaml(v: serde_json::Value) -> Result<Value> {
    Ok(serde_yaml_ng::to_value(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_spec() -> Value {
        serde_yaml_ng::from_str(
            r"
volumes: [{name: data, emptyDir: {}}]
initContainers: [{name: init, image: x}]
containers:
  - name: app
    image: y
    volumeMounts: [{name: data, mountPath: /data}]
    env: [{name: JAVA_TOOL_OPTIONS, value: -Xmx1g}, {name: KEEP, value: '1'}]
",
        )
        .unwrap()
    }

    fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
        container["env"].as_sequence()?.iter().find(|v| v["name"] == name)?["value"].as_str()
    }

    #[test]
    fn every_container_mounts_the_ca_and_keeps_what_the_chart_gave_it() {
        let mut spec = pod_spec();
        mount(&mut spec).unwrap();
        let volumes: Vec<&str> =
            spec["volumes"].as_sequence().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert_eq!(volumes, ["data", VOLUME]);
        assert_eq!(spec["volumes"][1]["configMap"]["name"], CONFIGMAP);
        let app = &spec["containers"][0];
        let java = env(app, JAVA_VARIABLE).unwrap();
        assert!(java.starts_with("-Xmx1g -Djavax.net.ssl.trustStore=/etc/airgap/site-ca/truststore.p12 "), "{java}");
        assert_eq!(env(app, "KEEP"), Some("1"));
        for c in [app, &spec["initContainers"][0]] {
            assert_eq!(env(c, "GIT_SSL_CAINFO"), Some("/etc/airgap/site-ca/ca.crt"));
            let mounts = c["volumeMounts"].as_sequence().unwrap();
            assert!(mounts.iter().any(|m| m["name"] == VOLUME && m["mountPath"] == MOUNT && m["readOnly"] == true));
        }
        let once = spec.clone();
        mount(&mut spec).unwrap();
        assert_eq!(spec, once, "a second post-render changes nothing");
    }

    #[test]
    fn the_truststore_holds_each_certificate_of_the_pem_as_trusted() {
        let pem = testkit::TestCa::new("site ca").unwrap().cert_pem()
            + &testkit::TestCa::new("second ca").unwrap().cert_pem();
        let ca = SiteCa::from_pem(&pem, "ca.pem").unwrap();
        let read = KeyStore::from_pkcs12(&ca.truststore, TRUSTSTORE_PASSWORD).unwrap();
        let subjects: Vec<String> = read
            .entries()
            .filter_map(|(_, e)| match e {
                KeyStoreEntry::Certificate(c) => Some(c.subject().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(subjects.len(), 2, "{subjects:?}");
        let cm = ca.configmap("config-server").unwrap();
        assert_eq!(cm["metadata"]["namespace"], "config-server");
        assert_eq!(cm["data"][PEM_KEY].as_str(), Some(pem.as_str()));

        let err = SiteCa::from_pem("not a certificate", "certs/site-ca.pem").err().unwrap();
        assert!(format!("{err:#}").contains("certs/site-ca.pem"), "{err:#}");
    }

    #[test]
    fn the_site_file_names_the_registry_ca_and_the_domains_ca_each_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, domains) =
            (testkit::TestCa::new("registry ca").unwrap(), testkit::TestCa::new("domains ca").unwrap());
        std::fs::write(dir.path().join("registry.pem"), registry.cert_pem()).unwrap();
        std::fs::write(dir.path().join("both.pem"), domains.cert_pem() + &registry.cert_pem()).unwrap();
        let site = |text: &str| crate::site::Site::parse(&dir.path().join("site.yaml"), text).unwrap();

        let ca = SiteCa::from_site(&site("registry: {ca_cert: registry.pem}\ntls: {ca_cert: both.pem}\n")).unwrap();
        let read = KeyStore::from_pkcs12(&ca.truststore, TRUSTSTORE_PASSWORD).unwrap();
        assert_eq!(read.entries_count(), 2, "the registry's CA once, the domains' once");
        assert_eq!(ca.pem.matches("BEGIN CERTIFICATE").count(), 2, "{}", ca.pem);
        let registry_only = SiteCa::from_site(&site("registry: {ca_cert: registry.pem}\n")).unwrap();
        assert_eq!(registry_only.pem.matches("BEGIN CERTIFICATE").count(), 1);

        let err = SiteCa::from_site(&site("registry: {address: r}\n")).err().unwrap();
        assert!(format!("{err:#}").contains("registry.ca_cert"), "{err:#}");
        let err =
            SiteCa::from_site(&site("registry: {ca_cert: registry.pem}\ntls: {ca_cert: nope.pem}\n")).err().unwrap();
        assert!(format!("{err:#}").contains("tls.ca_cert names"), "{err:#}");
    }
}
