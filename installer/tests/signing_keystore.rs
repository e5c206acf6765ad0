//! The registration client's signing keystore as the MOSIP plan's `regclient-signing` step makes it
//! (installer::generated), read by the real JDK that tests/tools/install.sh installs: keytool lists
//! the code-signing entry with its certificate, and jarsigner signs a jar with it the way the
//! regclient image's configure.sh does (`-storepass` only, alias CodeSigning, SHA-256) and then
//! verifies the jar against the generated CA. With another password keytool refuses the store.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use installer::generated::Generate;
use installer::plan::{Plan, StepAction};
use testkit::workspace_root;

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| panic!("{shown}: {e} (the JDK of tests/tools/install.sh)"))
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{shown}:\n{text}");
    text
}

fn the_plans_keystore() -> Generate {
    let plan = Plan::load(&workspace_root().join("manifests/mosip-1.2.0.1-B2/plan.yaml")).unwrap();
    let mut steps = plan.clusters.into_values().flat_map(|c| c.steps);
    let step = steps.find(|s| s.id == "regclient-signing").map(|s| s.action);
    let Some(StepAction::Generate(g)) = step else { panic!("the plan's regclient-signing step generates") };
    g
}

/// The ConfigMap's and Secret's keys as files, as the chart's projected volume and envFrom give
/// them to the regclient container; returns the password.
fn write_as_mounted(docs: &[serde_yaml_ng::Value], dir: &Path) -> String {
    let (configmap, secret) = (&docs[0], &docs[1]);
    for (key, value) in configmap["data"].as_mapping().unwrap() {
        std::fs::write(dir.join(key.as_str().unwrap()), value.as_str().unwrap()).unwrap();
    }
    for (key, value) in configmap["binaryData"].as_mapping().unwrap() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap()).unwrap();
        std::fs::write(dir.join(key.as_str().unwrap()), bytes).unwrap();
    }
    secret["stringData"]["keystore_secret_env"].as_str().unwrap().to_string()
}

#[test]
fn keytool_reads_the_generated_keystore_and_jarsigner_signs_with_it() {
    let generate = the_plans_keystore();
    let material = generate.signing_keystore.make().unwrap();
    let docs = generate.documents(&material).unwrap();
    assert_eq!(docs[0]["metadata"]["name"], "regclient-certs");
    assert_eq!(docs[1]["metadata"]["name"], "keystore-secret-env");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = write_as_mounted(&docs, d);
    assert!(password.len() >= 20 && !password.contains(char::is_whitespace), "{password:?}");

    let listed = ok(Command::new("keytool")
        .args(["-list", "-v", "-storetype", "PKCS12", "-keystore"])
        .arg(d.join("keystore.p12"))
        .args(["-storepass", &password]));
    for line in [
        "Entry type: PrivateKeyEntry",
        "Certificate chain length: 1",
        "Owner: CN=MOSIP, O=MOSIP, L=BLR, ST=KAR, C=IN",
        "Issuer: CN=MOSIP, O=MOSIP, L=BLR, ST=KAR, C=IN",
        "Serial number: 1",
        "Signature algorithm name: SHA256withRSA",
        "Subject Public Key Algorithm: 4096-bit RSA key",
        "codeSigning",
    ] {
        assert!(listed.contains(line), "keytool -list shows {line:?}:\n{listed}");
    }
    assert!(listed.to_lowercase().contains("alias name: codesigning"), "{listed}");

    let ca = ok(Command::new("keytool").args(["-printcert", "-file"]).arg(d.join("RootCA.crt")));
    for line in ["CA:true", "Key_CertSign", "codeSigning", "4096-bit RSA key"] {
        assert!(ca.contains(line), "the CA shows {line:?}:\n{ca}");
    }
    let cert = ok(Command::new("keytool").args(["-printcert", "-file"]).arg(d.join("Client.crt")));
    assert!(cert.contains("CA:false") && cert.contains("Serial number: 1"), "{cert}");

    // configure.sh: jarsigner -keystore keystore.p12 -storepass $keystore_secret -digestalg SHA-256 <jar> CodeSigning
    std::fs::create_dir_all(d.join("classes")).unwrap();
    std::fs::write(d.join("classes/props.txt"), "mosip.reg.version=1.2.0.1-B1\n").unwrap();
    ok(Command::new("jar").arg("cf").arg(d.join("registration-client.jar")).arg("-C").arg(d.join("classes")).arg("."));
    ok(Command::new("jarsigner")
        .arg("-keystore")
        .arg(d.join("keystore.p12"))
        .args(["-storepass", &password, "-digestalg", "SHA-256"])
        .arg(d.join("registration-client.jar"))
        .arg("CodeSigning"));
    // Verified against a truststore holding only the generated CA: the signer chains to it.
    ok(Command::new("keytool")
        .args(["-importcert", "-noprompt", "-alias", "mosip-root", "-storetype", "PKCS12", "-storepass", "changeit"])
        .arg("-file")
        .arg(d.join("RootCA.crt"))
        .arg("-keystore")
        .arg(d.join("trust.p12")));
    let verified = ok(Command::new("jarsigner")
        .args(["-verify", "-verbose", "-certs", "-keystore"])
        .arg(d.join("trust.p12"))
        .args(["-storepass", "changeit"])
        .arg(d.join("registration-client.jar")));
    assert!(verified.contains("jar verified."), "{verified}");
    assert!(!verified.contains("certificate chain is invalid") && !verified.contains("PKIX"), "{verified}");
    // Against a truststore without the generated CA, the same jar's chain is not trusted.
    ok(Command::new("keytool")
        .args(["-genkeypair", "-alias", "other", "-keyalg", "RSA", "-dname", "CN=other", "-storetype", "PKCS12"])
        .args(["-storepass", "changeit", "-keystore"])
        .arg(d.join("other.p12")));
    let untrusted = ok(Command::new("jarsigner")
        .args(["-verify", "-verbose", "-certs", "-keystore"])
        .arg(d.join("other.p12"))
        .args(["-storepass", "changeit"])
        .arg(d.join("registration-client.jar")));
    assert!(untrusted.contains("PKIX"), "{untrusted}");

    let refused = run(Command::new("keytool")
        .args(["-list", "-storetype", "PKCS12", "-keystore"])
        .arg(d.join("keystore.p12"))
        .args(["-storepass", "not-the-password"]));
    assert!(!refused.status.success(), "keytool must refuse another password");
}
