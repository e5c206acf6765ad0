//! The `saml` step's Keycloak side (installer::saml) against a real Keycloak 16.1.1, the version
//! the MOSIP observation cluster runs (its WildFly distribution from Maven Central, set up by
//! tests/tools/install.sh as `keycloak-standalone`, with its own `kcadm.sh`). The step of the
//! MOSIP plan is made from k8s-infra's `rancher/keycloak/keycloak_client.json` as the bundle
//! carries it (the verbatim copy in `shared/reference/k8s-infra-v1.2.0.1-B1`), and the Job's
//! program runs here as the Job would run it, with the Job's environment: the client and its six
//! mappers land in the master realm for the site's Rancher host; a second run changes nothing;
//! a changed file replaces the client. Keycloak's IdP metadata is where the step reads it.
//! Rancher's side cannot run here: tests/install_http_steps.rs checks it against a double.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use installer::plan::{Plan, StepAction};
use installer::saml::Prepared;
use installer::site::Site;
use serde_json::Value as Json;
use testkit::{free_port, tool};

const PASSWORD: &str = "admin-password-of-the-test";
const RANCHER_HOST: &str = "rancher.site.test";

/// Keycloak's process group: standalone.sh runs the JVM as its child.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

fn reference_client() -> Vec<u8> {
    let shared = std::env::var_os("AIRGAP_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit::workspace_root().join("../shared"));
    let file = shared.join("reference/k8s-infra-v1.2.0.1-B1/rancher/keycloak/keycloak_client.json");
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A plain HTTP GET: the status line and the body.
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((head.lines().next().unwrap_or("").to_string(), body.to_string()))
}

fn start_keycloak(dir: &Path) -> (Killed, u16) {
    let http = free_port();
    let mut cmd = Command::new(tool("keycloak-standalone"));
    cmd.arg(dir.join("base")).arg(PASSWORD).args(["-b", "127.0.0.1", "-bmanagement", "127.0.0.1"]);
    for (property, port) in [
        ("http", http),
        ("https", free_port()),
        ("management.http", free_port()),
        ("management.https", free_port()),
        ("ajp", free_port()),
    ] {
        cmd.arg(format!("-Djboss.{property}.port={port}"));
    }
    let log = std::fs::File::create(dir.join("keycloak.log")).unwrap();
    let child = Killed(cmd.process_group(0).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap());
    // Its first start makes the database: minutes on a small machine.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok((status, _)) = get(http, "/auth/realms/master") {
            if status.contains(" 200 ") {
                return (child, http);
            }
        }
        let log = std::fs::read_to_string(dir.join("keycloak.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "Keycloak did not answer on port {http}:\n{log}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn mosip_step(site: &Site, client: &[u8]) -> Prepared {
    let plan = Plan::load(&testkit::workspace_root().join("manifests/mosip-1.2.0.1-B2/plan.yaml")).unwrap();
    let (step, saml) = plan.clusters["observation"]
        .steps
        .iter()
        .find_map(|s| match &s.action {
            StepAction::Saml(saml) => Some((s, saml)),
            _ => None,
        })
        .expect("the plan's saml step");
    assert_eq!(step.component.as_deref(), Some("saml"), "the step is an optional component");
    let sub = |s: &str| site.substitute(s, &BTreeMap::new());
    saml.prepare(&step.id, client, site, &sub, false).unwrap()
}

/// Runs the Job's program here with the Job's environment, pointed at the local Keycloak.
fn run_job(p: &Prepared, dir: &Path, http: u16) -> String {
    let configmap = serde_json::to_value(&p.keycloak[0]).unwrap();
    let job = serde_json::to_value(&p.keycloak[1]).unwrap();
    let import = dir.join("import.json");
    std::fs::write(&import, configmap["data"]["import.json"].as_str().unwrap()).unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let mut cmd = Command::new(command[0]);
    cmd.args(&command[1..]);
    for e in container["env"].as_array().unwrap() {
        if let Some(v) = e["value"].as_str() {
            cmd.env(e["name"].as_str().unwrap(), v);
        }
    }
    let refs: Vec<String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("valueFrom").is_some())
        .map(|e| e.to_string())
        .collect();
    assert!(refs.iter().any(|r| r.contains("keycloak-env-vars") && r.contains("KEYCLOAK_ADMIN_USER")), "{refs:?}");
    assert!(refs.iter().any(|r| r.contains("\"keycloak\"") && r.contains("admin-password")), "{refs:?}");
    cmd.env("KEYCLOAK_ADMIN_USER", "admin").env("KEYCLOAK_ADMIN_PASSWORD", PASSWORD);
    cmd.env("KCADM", tool("kcadm.sh")).env("KCADM_CONFIG", dir.join("kcadm.config"));
    cmd.env("KEYCLOAK_URL", format!("http://127.0.0.1:{http}/auth")).env("IMPORT_FILE", &import);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Job's program failed:\n{text}");
    text
}

/// The realm's client of that clientId, as Keycloak's admin API gives it.
fn client(dir: &Path, client_id: &str) -> Json {
    let out = Command::new(tool("kcadm.sh"))
        .args(["get", "clients", "-r", "master", "-q", &format!("clientId={client_id}"), "--config"])
        .arg(dir.join("kcadm.config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1, "one client {client_id}: {list:?}");
    list.into_iter().next().unwrap()
}

fn env_of(p: &Prepared, name: &str) -> String {
    let job = serde_json::to_value(&p.keycloak[1]).unwrap();
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str()).unwrap().to_string()
}

#[test]
fn the_rancher_client_lands_in_a_real_keycloak_once_and_is_replaced_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let site_file = dir.path().join("site.yaml");
    std::fs::write(&site_file, format!("domains:\n  rancher: {{host: {RANCHER_HOST}, lb: internal}}\n")).unwrap();
    let site = Site::load(&site_file).unwrap();
    let upstream = reference_client();
    let step = mosip_step(&site, &upstream);
    let client_id = format!("https://{RANCHER_HOST}/v1-saml/keycloak/saml/metadata");
    assert_eq!(env_of(&step, "CLIENT_ID"), client_id);
    assert_eq!(env_of(&step, "KEYCLOAK_URL"), "http://keycloak.keycloak.svc:80/auth");

    let (_keycloak, http) = start_keycloak(dir.path());
    let first = run_job(&step, dir.path(), http);
    assert!(first.contains("imported"), "{first}");
    let made = client(dir.path(), &client_id);
    assert_eq!(made["protocol"], "saml");
    assert_eq!(made["redirectUris"], serde_json::json!([format!("https://{RANCHER_HOST}/v1-saml/keycloak/saml/acs")]));
    let mut mappers: Vec<&str> =
        made["protocolMappers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    mappers.sort();
    assert_eq!(mappers, ["X500 email", "X500 givenName", "X500 surname", "groups", "role list", "username"]);
    let username = made["protocolMappers"].as_array().unwrap().iter().find(|m| m["name"] == "username").unwrap();
    assert_eq!(username["config"]["attribute.name"], "username", "the guide's username mapper");
    let digest = env_of(&step, "IMPORT_SHA256");
    assert_eq!(made["attributes"]["airgap.import.sha256"], digest.as_str());

    let second = run_job(&step, dir.path(), http);
    assert!(second.contains("already holds"), "{second}");
    assert_eq!(client(dir.path(), &client_id), made, "a second run changes nothing");

    let changed = String::from_utf8(upstream)
        .unwrap()
        .replace("\"saml.assertion.signature\": \"true\"", "\"saml.assertion.signature\": \"false\"");
    let step = mosip_step(&site, changed.as_bytes());
    assert_ne!(env_of(&step, "IMPORT_SHA256"), digest);
    let third = run_job(&step, dir.path(), http);
    assert!(third.contains("imported"), "{third}");
    let replaced = client(dir.path(), &client_id);
    assert_eq!(replaced["attributes"]["saml.assertion.signature"], "false");
    assert_eq!(replaced["attributes"]["airgap.import.sha256"], env_of(&step, "IMPORT_SHA256").as_str());
    assert_eq!(replaced["protocolMappers"].as_array().unwrap().len(), 6);

    let (_, _, _, path) = &step.metadata;
    let (status, metadata) = get(http, path).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert!(metadata.contains("EntityDescriptor") && metadata.contains("IDPSSODescriptor"), "{metadata}");
}
