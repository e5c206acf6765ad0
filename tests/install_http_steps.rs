//! `http` steps (installer::http_step) through `airgap install apply`, against two real control
//! planes (kwok nodes) whose API servers proxy the requests to a Service.
//!
//! The servers behind the Services are `testkit::api_double`, which records every request and
//! answers as Elasticsearch's ILM API, Kibana's saved-objects import and Rancher's
//! registration-manifest endpoint do: none of the three runs on this machine (Rancher and Kibana
//! need their upstream builds; Elasticsearch's ILM is an x-pack feature missing from the builds
//! on Maven Central). The `saml` step's Rancher side is checked the same way: the double serves
//! Keycloak's IdP metadata (whose import of the client installer/tests/saml.rs runs against a
//! real Keycloak), and the test reads the AuthConfig and Secret the step writes for Rancher. The
//! test also plays the part of Rancher's controllers (`api_double::play_rancher_controllers`):
//! it serves Rancher's CRDs and, once the plan registered the cluster, gives it a cluster id and
//! a registration token, as Rancher 2.6.9 does.
//!
//! The test runs in a network namespace of its own (`testkit::netns`): the double listens on
//! every address of it, and each Service's pod (a kwok pod, given an address of the pod network)
//! has its address put on the namespace's loopback device, so the API server's service proxy,
//! which dials the pod's address and the port its container names, reaches the double. (An
//! Endpoints address may not be a loopback one, so a `hostNetwork` pod of kwok's 127.0.0.1 nodes
//! would not do.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value as Json};
use testkit::api_double::{
    play_rancher_controllers, serve_rancher_kinds, ApiDouble, CLUSTER_ID, IDP_METADATA, IDP_METADATA_PATH, TOKEN,
};
use testkit::images::{push_plain, write_layout, Files, ImageSpec};
use testkit::{tool, KubeControlPlane, SiteRegistry};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");
const AGENT: &str = "docker.io/rancher/rancher-agent:v2.6.9";
const DASHBOARD: &str = "files.airgap.local/01-logstash.ndjson:v1.2.0.1-B1";
const CLIENT: &str = "files.airgap.local/keycloak_client.json:v1.2.0.1-B1";
/// A registry of the site holding the agent image and a dashboard file, as a bundle would carry
/// them (`airgap registry serve --storage`, pushed with skopeo and oras).
fn registry(dir: &Path, dashboard: &Path) -> SiteRegistry {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let registry = SiteRegistry::storage(&storage).airgap(Path::new(AIRGAP)).start().unwrap();
    let address = registry.address();
    let layout = dir.join("layout");
    let files = Files::from([("etc/agent".to_string(), b"rancher agent stand-in\n".to_vec())]);
    write_layout(&layout, &[ImageSpec { reference: AGENT, platforms: &["linux/amd64"], shared_layers: &[files] }]);
    push_plain(&layout, AGENT, &format!("{address}/{AGENT}")).unwrap();
    push_file(address, DASHBOARD, dashboard);
    registry
}

/// A file of the bundle, pushed as `bundle create` stores one.
fn push_file(address: &str, reference: &str, file: &Path) {
    let pushed = Command::new(tool("oras"))
        .current_dir(file.parent().unwrap())
        .args(["push", "--plain-http", &format!("{address}/{reference}")])
        .arg(file.file_name().unwrap())
        .output()
        .unwrap();
    assert!(pushed.status.success(), "oras push: {}", String::from_utf8_lossy(&pushed.stderr));
}

/// What a chart makes for an API, pointed at the double: its Services, and a pod behind them
/// whose named port is the double's, with the pod's address put on this namespace's loopback.
fn services_of_the_double(kube: &KubeControlPlane, namespace: &str, services: &[(&str, u16)], port: u16) {
    kube.kubectl(&["create", "namespace", namespace]).unwrap();
    for (name, service_port) in services {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": "double"}, "ports": [{"name": "http", "port": service_port, "targetPort": "http"}]}});
        kube.apply(&service.to_string()).unwrap();
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "double", "namespace": namespace, "labels": {"app": "double"}},
        "spec": {"containers": [{"name": "double", "image": AGENT, "ports": [{"name": "http", "containerPort": port}]}]}});
    kube.apply(&pod.to_string()).unwrap();
    kube.kubectl(&["-n", namespace, "wait", "--for=condition=Ready", "pod/double", "--timeout=60s"]).unwrap();
    let ip = kube.kubectl(&["-n", namespace, "get", "pod", "double", "-o", "jsonpath={.status.podIP}"]).unwrap();
    let shown = Command::new("ip").args(["-o", "addr", "show", "dev", "lo"]).output().unwrap();
    if !String::from_utf8_lossy(&shown.stdout).contains(&format!(" {ip}/32 ")) {
        testkit::run(Command::new("ip").args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])).unwrap();
        // The address is this namespace's own now: the leak counter lets it through.
        testkit::run(Command::new("nft").args([
            "insert",
            "rule",
            "inet",
            "testkit_leaks",
            "check",
            "ip",
            "daddr",
            &ip,
            "return",
        ]))
        .unwrap();
    }
}

/// A plan of `clusters` (YAML, indented under `clusters:`) and its bundle spec, which carries
/// one file of that name.
fn write_plan(dir: &Path, carried_file: &str, clusters: &str) -> PathBuf {
    let file = format!("{{url: 'https://example.invalid/{carried_file}', name: {carried_file}, version: v1.2.0.1-B1}}");
    std::fs::write(dir.join("bundle.yaml"), format!("files:\n  - {file}\n")).unwrap();
    let path = dir.join("plan.yaml");
    std::fs::write(&path, format!("version: 1\nbundle: bundle.yaml\nclusters:\n{clusters}")).unwrap();
    path
}

fn plan(dir: &Path) -> PathBuf {
    let clusters = format!(
        r#"  observation:
    steps: []
  mosip:
    steps:
      - id: ilm-policy
        http:
          service: {{namespace: logging, name: elasticsearch, port: 9200}}
          requests:
            - method: PUT
              path: /_ilm/policy/mosip-logs
              body: {{json: {{policy: {{phases: {{delete: {{min_age: '${{site.logging.retention_days}}d', actions: {{delete: {{}}}}}}}}}}}}}}
              idempotent: {{compare: {{at: /mosip-logs/policy, body_at: /policy}}}}
              expect: {{json: {{acknowledged: true}}}}
      - id: dashboards
        http:
          service: {{namespace: logging, name: kibana, port: 5601}}
          requests:
            - method: POST
              path: /api/saved_objects/_import?overwrite=true
              headers: {{kbn-xsrf: "true"}}
              body: {{file: "{DASHBOARD}"}}
              form_field: file
              idempotent: upsert
              expect: {{json: {{success: true}}}}
      - id: rancher-agent
        http:
          cluster: observation
          service: {{namespace: cattle-system, name: rancher, port: 80}}
          timeout: 120
          objects:
            - {{apiVersion: provisioning.cattle.io/v1, kind: Cluster, metadata: {{name: mosip, namespace: fleet-default}}, spec: {{}}}}
          values:
            - {{as: cluster, apiVersion: provisioning.cattle.io/v1, kind: Cluster, namespace: fleet-default, name: mosip, field: status.clusterName}}
            - {{as: token, apiVersion: management.cattle.io/v3, kind: ClusterRegistrationToken, namespace: '${{value.cluster}}', name: default-token, field: status.token}}
          requests:
            - {{method: GET, path: '/v3/import/${{value.token}}_${{value.cluster}}.yaml', apply: true}}
"#
    );
    write_plan(dir, "01-logstash.ndjson", &clusters)
}

fn site(dir: &Path, registry: &str, clusters: [(&str, &Path); 2], retention_days: u32) -> PathBuf {
    let clusters: String =
        clusters.iter().map(|(name, kc)| format!("  {name}: {{kubeconfig: '{}'}}\n", kc.display())).collect();
    let path = dir.join("site.yaml");
    std::fs::write(
        &path,
        format!(
            "registry: {{address: '{registry}'}}\nclusters:\n{clusters}logging: {{retention_days: {retention_days}}}\n"
        ),
    )
    .unwrap();
    path
}

fn apply(site: &Path, plan: &Path, registry: &str, cluster: &str) -> Output {
    install(&["apply"], site, plan, registry, cluster)
}

/// `airgap install <verb and its flags>` of one cluster.
fn install(verb: &[&str], site: &Path, plan: &Path, registry: &str, cluster: &str) -> Output {
    Command::new(AIRGAP)
        .arg("install")
        .args(verb)
        .arg("--site")
        .arg(site)
        .arg("--plan")
        .arg(plan)
        .args(["--registry", &format!("http://{registry}"), "--cluster", cluster, "--helm"])
        .arg(tool("helm-3.8.2"))
        .output()
        .unwrap()
}

fn succeeded(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{err}");
    assert!(out.status.success(), "{what} failed:\n{err}");
    err
}

/// The steps whose progress line says `word` (`done`, `unchanged`): `[1/3] mosip: <step> <word> …`.
fn steps_that(err: &str, word: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.get(3) == Some(&word)).then(|| words[2].to_string())
        })
        .collect()
}

#[test]
fn http_steps_reach_apis_through_the_service_proxy_stay_idempotent_and_carry_rancher_s_manifest_across_clusters() {
    let name =
        "http_steps_reach_apis_through_the_service_proxy_stay_idempotent_and_carry_rancher_s_manifest_across_clusters";
    let Some(leaks) = testkit::netns::isolated(name) else { return }; // the run inside passed
    let dir = tempfile::tempdir().unwrap();
    let (observation, mosip) = std::thread::scope(|s| {
        let planes = [s.spawn(KubeControlPlane::start), s.spawn(KubeControlPlane::start)];
        let [a, b] = planes.map(|p| p.join().unwrap().expect("a control plane with kwok nodes"));
        (a, b)
    });
    // Kibana's export of the first dashboard, as k8s-infra carries it (one saved object a line).
    let dashboard = dir.path().join("01-logstash.ndjson");
    std::fs::write(
        &dashboard,
        "{\"attributes\":{\"title\":\"logstash-*\"},\"id\":\"1edf\",\"type\":\"index-pattern\"}\n",
    )
    .unwrap();
    let reg = registry(dir.path(), &dashboard);
    let double = ApiDouble::new(reg.address());
    let port = double.listen("0.0.0.0:0").unwrap();
    serve_rancher_kinds(&observation).unwrap();
    services_of_the_double(&observation, "cattle-system", &[("rancher", 80)], port);
    services_of_the_double(&mosip, "logging", &[("elasticsearch", 9200), ("kibana", 5601)], port);
    let plan = plan(dir.path());
    let kubeconfigs = [("observation", observation.kubeconfig()), ("mosip", mosip.kubeconfig())];
    let site_with =
        |days| site(dir.path(), reg.address(), kubeconfigs.each_ref().map(|(n, k)| (*n, k.as_path())), days);

    let site = site_with(30);
    // The MOSIP cluster's agent step registers it on the observation cluster and waits for what
    // Rancher makes of the registration.
    let mosip_apply = std::thread::scope(|s| {
        let run = s.spawn(|| apply(&site, &plan, reg.address(), "mosip"));
        play_rancher_controllers(&observation, "mosip", || run.is_finished()).unwrap();
        run.join().unwrap()
    });
    succeeded(&mosip_apply, "apply of cluster mosip");

    let first = double.requests();
    let seen: Vec<String> = first.iter().map(|r| r.line()).collect();
    assert_eq!(
        seen,
        [
            "GET /_ilm/policy/mosip-logs".to_string(),
            "PUT /_ilm/policy/mosip-logs".into(),
            "POST /api/saved_objects/_import?overwrite=true".into(),
            format!("GET /v3/import/{TOKEN}_{CLUSTER_ID}.yaml"),
        ],
        "each API asked through its Service, the policy read before it is written"
    );
    let put: Json = serde_json::from_slice(&first[1].body).unwrap();
    assert_eq!(put["policy"]["phases"]["delete"]["min_age"], "30d", "retention from the site file");
    let import = &first[2];
    assert!(import.headers["content-type"].starts_with("multipart/form-data; boundary="));
    let carried = std::fs::read(&dashboard).unwrap();
    assert!(import.body.windows(carried.len()).any(|w| w == carried), "the carried dashboard is the form's file");
    let agent =
        mosip.kubectl(&["-n", "cattle-system", "get", "deployment", "cattle-cluster-agent", "-o", "json"]).unwrap();
    let agent: Json = serde_json::from_str(&agent).unwrap();
    let image = agent["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    assert!(image.starts_with(&format!("{}/{AGENT}@sha256:", reg.address())), "the agent image pinned: {image}");
    assert!(observation.kubectl(&["-n", "cattle-system", "get", "deployment", "cattle-cluster-agent"]).is_err());

    let registered = observation.kubectl(&[
        "-n",
        "fleet-default",
        "get",
        "clusters.provisioning.cattle.io",
        "mosip",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let registered: Json = serde_json::from_str(&registered.unwrap()).unwrap();
    let managers = registered["metadata"]["managedFields"].as_array().unwrap();
    assert!(managers.iter().any(|m| m["manager"] == "airgap"), "registered by the installer: {managers:?}");

    // A re-run changes nothing and asks nothing.
    let err = succeeded(&apply(&site, &plan, reg.address(), "mosip"), "second apply");
    assert_eq!(steps_that(&err, "unchanged").len(), 3, "{err}");
    assert_eq!(double.requests().len(), first.len(), "a second apply sends no request");

    // A shorter retention runs the policy's step alone: the GET shows it differs, the PUT changes it.
    let site = site_with(14);
    let err = succeeded(&apply(&site, &plan, reg.address(), "mosip"), "apply with 14 days");
    assert_eq!(steps_that(&err, "done"), ["ilm-policy"], "{err}");
    let changed = double.requests()[first.len()..].to_vec();
    assert_eq!(changed.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(), ["GET", "PUT"]);
    let put: Json = serde_json::from_slice(&changed[1].body).unwrap();
    assert_eq!(put["policy"]["phases"]["delete"]["min_age"], "14d");

    // With the record of the install gone, every step runs again: the policy is read and left as
    // it is, the import is the API's own upsert, and a registration manifest naming an image the
    // bundle does not carry is refused before anything of it is applied.
    mosip.kubectl(&["-n", "airgap-system", "delete", "configmap", "airgap-install-mosip"]).unwrap();
    double.leak_in_manifest();
    let before = double.requests().len();
    let out = apply(&site, &plan, reg.address(), "mosip");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("leak check") && err.contains("docker.io/rancher/not-carried:v1"), "{err}");
    let again: Vec<String> = double.requests()[before..].iter().map(|r| r.line()).collect();
    assert_eq!(
        again,
        [
            "GET /_ilm/policy/mosip-logs".to_string(),
            "POST /api/saved_objects/_import?overwrite=true".into(),
            format!("GET /v3/import/{TOKEN}_{CLUSTER_ID}.yaml"),
        ]
    );
    let marker =
        mosip.kubectl(&["-n", "cattle-system", "get", "configmap", "import-marker", "-o", "jsonpath={.data.image}"]);
    assert!(!marker.unwrap().contains("not-carried"), "nothing of the refused manifest was applied");
    leaks.assert_none();
}

fn saml_plan(dir: &Path) -> PathBuf {
    let clusters = format!(
        r#"  observation:
    steps:
      - id: rancher-saml
        component: saml
        saml:
          keycloak:
            namespace: keycloak
            service: keycloak
            port: 80
            path: /auth
            realm: master
            image: {AGENT}
            kcadm: /opt/bitnami/keycloak/bin/kcadm.sh
            admin_user: {{name: keycloak-env-vars, key: KEYCLOAK_ADMIN_USER}}
            admin_password: {{name: keycloak, key: admin-password}}
          client: {{file: "{CLIENT}"}}
          replace: {{"https://rancher2.mosip.net": "https://${{site.domains.rancher}}"}}
          rancher:
            auth_config: keycloak
            type: keyCloakConfig
            fields:
              displayNameField: givenName
              userNameField: email
              uidField: username
              groupsField: member
              entityID: https://${{site.domains.rancher}}/v1-saml/keycloak/saml/metadata
              rancherApiHost: https://${{site.domains.rancher}}
              accessMode: unrestricted
"#
    );
    write_plan(dir, "keycloak_client.json", &clusters)
}

fn json_of(kube: &KubeControlPlane, args: &[&str]) -> Json {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kube.kubectl(&all).unwrap()).unwrap()
}

#[test]
fn the_saml_step_writes_rancher_s_auth_config_with_keycloak_s_metadata_and_a_job_that_imports_the_client() {
    let name = "the_saml_step_writes_rancher_s_auth_config_with_keycloak_s_metadata_and_a_job_that_imports_the_client";
    let Some(mut leaks) = testkit::netns::isolated(name) else { return }; // the run inside passed
                                                                          // The site's Rancher domain, which preflight looks up, as the site's name service answers it.
    leaks.resolve_locally(&["rancher.site.test"], "127.0.0.1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let observation = KubeControlPlane::start().expect("a control plane with kwok nodes");
    let dashboard = dir.path().join("01-logstash.ndjson");
    std::fs::write(&dashboard, "{}\n").unwrap();
    let reg = registry(dir.path(), &dashboard);
    // k8s-infra's rancher/keycloak/keycloak_client.json, the verbatim copy in shared/reference.
    let client =
        testkit::shared_fixtures().join("../reference/k8s-infra-v1.2.0.1-B1/rancher/keycloak/keycloak_client.json");
    push_file(reg.address(), CLIENT, &client);
    let double = ApiDouble::new(reg.address());
    let port = double.listen("0.0.0.0:0").unwrap();
    serve_rancher_kinds(&observation).unwrap();
    services_of_the_double(&observation, "keycloak", &[("keycloak", 80)], port);
    // What the Keycloak chart makes beside Keycloak, which the Job reads the admin's name and
    // password from.
    observation
        .kubectl(&[
            "-n",
            "keycloak",
            "create",
            "configmap",
            "keycloak-env-vars",
            "--from-literal=KEYCLOAK_ADMIN_USER=admin",
        ])
        .unwrap();
    observation
        .kubectl(&[
            "-n",
            "keycloak",
            "create",
            "secret",
            "generic",
            "keycloak",
            "--from-literal=admin-password=chart-made",
        ])
        .unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=rancher.site.test"])
        .args(["-keyout", "sp.key", "-out", "sp.crt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let plan = saml_plan(dir.path());
    let site = dir.path().join("site.yaml");
    std::fs::write(
        &site,
        format!(
            "registry: {{address: '{}'}}\nclusters:\n  observation: {{kubeconfig: '{}'}}\n\
             domains:\n  rancher: {{host: rancher.site.test, lb: internal}}\ncomponents: {{saml: true}}\n\
             saml: {{sp_cert: sp.crt, sp_key: sp.key}}\n",
            reg.address(),
            observation.kubeconfig().display()
        ),
    )
    .unwrap();

    succeeded(&apply(&site, &plan, reg.address(), "observation"), "apply");
    let seen: Vec<String> = double.requests().iter().map(|r| r.line()).collect();
    assert_eq!(seen, [format!("GET {IDP_METADATA_PATH}")], "Keycloak's metadata read through its Service");

    let config = json_of(&observation, &["get", "authconfigs.management.cattle.io", "keycloak"]);
    let cert = std::fs::read_to_string(dir.path().join("sp.crt")).unwrap();
    for (field, wanted) in [
        ("type", "keyCloakConfig"),
        ("idpMetadataContent", IDP_METADATA),
        ("spCert", cert.as_str()),
        ("spKey", "cattle-global-data:keycloakconfig-spkey"),
        ("entityID", "https://rancher.site.test/v1-saml/keycloak/saml/metadata"),
        ("rancherApiHost", "https://rancher.site.test"),
        ("displayNameField", "givenName"),
        ("userNameField", "email"),
        ("uidField", "username"),
        ("groupsField", "member"),
        ("accessMode", "unrestricted"),
    ] {
        assert_eq!(config[field], wanted, "AuthConfig {field}");
    }
    assert_eq!(config["enabled"], true);
    let spkey = observation.kubectl(&[
        "-n",
        "cattle-global-data",
        "get",
        "secret",
        "keycloakconfig-spkey",
        "-o",
        "go-template={{.data.spkey | base64decode}}",
    ]);
    let key = std::fs::read_to_string(dir.path().join("sp.key")).unwrap();
    assert_eq!(spkey.unwrap().trim(), key.trim(), "the SP key where the AuthConfig names it");

    let jobs = json_of(&observation, &["-n", "keycloak", "get", "jobs"]);
    let jobs = jobs["items"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert!(job["metadata"]["name"].as_str().unwrap().starts_with("rancher-saml-"));
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let image = container["image"].as_str().unwrap();
    assert!(image.starts_with(&format!("{}/{AGENT}@sha256:", reg.address())), "the Job's image pinned: {image}");
    let env = container["env"].to_string();
    assert!(env.contains("https://rancher.site.test/v1-saml/keycloak/saml/metadata"), "{env}");
    assert!(env.contains("secretKeyRef") && env.contains("admin-password"), "the password stays in the cluster: {env}");
    let import = json_of(&observation, &["-n", "keycloak", "get", "configmap", "rancher-saml"]);
    let import = import["data"]["import.json"].as_str().unwrap();
    assert!(import.contains("https://rancher.site.test/v1-saml/keycloak/saml/acs"), "{import}");
    assert!(!import.contains("rancher2.mosip.net"), "the upstream host is replaced: {import}");

    let version = |kube: &KubeControlPlane, args: &[&str]| json_of(kube, args)["metadata"]["resourceVersion"].clone();
    let config_version = version(&observation, &["get", "authconfigs.management.cattle.io", "keycloak"]);
    let job_name = job["metadata"]["name"].as_str().unwrap().to_string();
    let job_generation = job["metadata"]["generation"].clone();

    // A re-run changes nothing and asks nothing.
    let err = succeeded(&apply(&site, &plan, reg.address(), "observation"), "second apply");
    assert_eq!(steps_that(&err, "unchanged"), ["rancher-saml"], "{err}");
    assert_eq!(double.requests().len(), 1, "a second apply sends no request");

    // With the record of the install gone the step runs again, and what it writes is what the
    // cluster holds already.
    observation.kubectl(&["-n", "airgap-system", "delete", "configmap", "airgap-install-observation"]).unwrap();
    let err = succeeded(&apply(&site, &plan, reg.address(), "observation"), "apply without the record");
    assert_eq!(steps_that(&err, "done"), ["rancher-saml"], "{err}");
    assert_eq!(version(&observation, &["get", "authconfigs.management.cattle.io", "keycloak"]), config_version);
    // The Job's status moves as its pod runs; its spec does not.
    let generation =
        json_of(&observation, &["-n", "keycloak", "get", "job", &job_name])["metadata"]["generation"].clone();
    assert_eq!(generation, job_generation, "the Job is the same Job");

    // `install verify` finds Rancher's AuthConfig as the step wrote it, its IdP metadata the one
    // Keycloak (the double) serves; broken two ways, it names the AuthConfig and what is wrong.
    let subject = "Rancher SAML AuthConfig keycloak (in cluster observation)";
    let saml_check = |what: &str| {
        let out = verify(&site, &plan, reg.address(), "observation");
        let report: Json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{what}: verify --json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
        let checks = report["clusters"][0]["checks"].as_array().unwrap().clone();
        let found = checks.iter().find(|c| c["kind"] == "rancher" && c["subject"] == subject);
        let found = found.unwrap_or_else(|| panic!("{what}: no check of {subject}: {checks:#?}"));
        (found["status"].as_str().unwrap().to_string(), found["detail"].as_str().unwrap().to_string())
    };
    let (status, detail) = saml_check("good");
    assert_eq!(
        (status.as_str(), detail.as_str()),
        (
            "ok",
            "enabled, its fields as the plan sets them, IdP entity https://keycloak.site.test/auth/realms/master as Keycloak serves it"
        )
    );
    let patch = |doc: Json| {
        observation
            .kubectl(&["patch", "authconfigs.management.cattle.io", "keycloak", "--type=merge", "-p", &doc.to_string()])
            .unwrap()
    };
    patch(json!({"enabled": false}));
    assert_eq!(saml_check("disabled"), ("failed".to_string(), "enabled is false, the plan sets true".to_string()));
    patch(
        json!({"enabled": true, "idpMetadataContent": IDP_METADATA.replace("keycloak.site.test", "old-keycloak.site.test")}),
    );
    assert_eq!(
        saml_check("another IdP"),
        (
            "failed".to_string(),
            format!("its IdP metadata names entity https://old-keycloak.site.test/auth/realms/master; Keycloak serves https://keycloak.site.test/auth/realms/master at Service keycloak{IDP_METADATA_PATH}")
        )
    );
    leaks.assert_none();
}

/// `install verify --json` of one cluster. (The Rancher it checks is the test's: Rancher cannot
/// run here, so its AuthConfig is the one the plan's step wrote into its CRD.)
fn verify(site: &Path, plan: &Path, registry: &str, cluster: &str) -> Output {
    install(&["verify", "--json"], site, plan, registry, cluster)
}
