//! `airgap install verify` where pods really run: one real node (containerd + kubelet) in a
//! network namespace with no way out, pulling through the site registry by upstream names (its
//! mirrors from `airgap install mirrors`). The checks that need live pods pass on a good install
//! and fail, naming the object and the reason, when their thing is broken: a route through a
//! gateway and its backend's health endpoint (a VirtualService pointed at a wrong host), httpbin's
//! `/get` through the gateway as the guide asks it (a route to a page that is not httpbin's echo),
//! a host's certificate where TLS ends in the cluster (an expired one) and where it ends at a load
//! balancer (one that serves an expired certificate; one that does not answer, then named by its
//! certificate file), Keycloak realms and the config server (pointed at a repository
//! the bundle does not carry), pods (a crash loop, a restart after the install), node mirrors (a
//! node's mirror removed).
//!
//! The upstream is made here: stand-in images of Debian's static busybox that serve what their
//! probes ask (`testkit::standin_images`), one file of objects written by this test, and a git
//! repository of one properties file, each behind a local server that the bundle spec's mirrors
//! name. The gateway stand-in answers the paths it is asked for; it routes nothing (no Istio runs
//! here): the route check proves the request reaches the gateway's pod with the route's host and
//! path. The load balancer is `openssl s_server` on the namespace's loopback. Run it alone: `flock /tmp/airgap-realnode.lock cargo test --test install_verify_real_node`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use testkit::crds::Crd;
use testkit::images::{push_plain, write_archive, write_layout, Files, ImageSpec};
use testkit::standin_images::{pause_layer, service_layer};
use testkit::{
    free_port, netns, run, tool, Distribution, DistributionOpts, FileServer, KubeControlPlane, NodeOptions, RealNode,
    SiteRegistry, SANDBOX_IMAGE,
};

mod verify_checks;

use verify_checks::{detail, failed};

const AIRGAP: &str = env!("CARGO_BIN_EXE_airgap");
const HEALTH: &str = "/v1/auth/actuator/health";
/// What httpbin answers to `/get`: its echo of the request.
const HTTPBIN_ECHO: &str =
    r#"{"args": {}, "headers": {"Host": "localhost"}, "origin": "10.42.0.1", "url": "https://localhost/get"}"#;
/// The host whose TLS ends at a load balancer outside the cluster.
const LB_HOST: &str = "lb.site.test";
const PROPERTIES: &str = "application-default.properties";
const PROPERTIES_TEXT: &str =
    "# stand-in of mosip-config's file\nmosip.auth.url=http://auth.kernel\nmosip.kernel.timeout : 30\n";

const ISTIO_CRDS: &[Crd] = &[
    Crd { group: "networking.istio.io", kind: "Gateway", plural: "gateways", namespaced: true, versions: &["v1beta1"] },
    Crd {
        group: "networking.istio.io",
        kind: "VirtualService",
        plural: "virtualservices",
        namespaced: true,
        versions: &["v1beta1"],
    },
];

/// The workloads, each pinned to nothing in particular (the one node takes them all).
const OBJECTS: &str = r#"apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: internal, namespace: edge}
spec:
  selector: {istio: ingressgateway-internal}
  servers:
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: [localhost]
    - port: {number: 443, name: https, protocol: HTTPS}
      hosts: [localhost]
      tls: {mode: SIMPLE, credentialName: api-tls}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway, namespace: edge}
spec:
  selector: {matchLabels: {istio: ingressgateway-internal}}
  template:
    metadata: {labels: {istio: ingressgateway-internal}}
    spec:
      containers:
        - name: gateway
          image: docker.io/airgap/gateway:1
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway-internal, namespace: edge}
spec:
  selector: {istio: ingressgateway-internal}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: https, port: 443, targetPort: 8443}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: auth, namespace: kernel}
spec:
  selector: {matchLabels: {app: auth}}
  template:
    metadata: {labels: {app: auth}}
    spec:
      containers:
        - name: auth
          image: docker.io/airgap/auth:1
          ports: [{name: http, containerPort: 8091}]
          readinessProbe: {httpGet: {path: /v1/auth/actuator/health, port: http}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: auth, namespace: kernel}
spec: {selector: {app: auth}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: auth, namespace: kernel}
spec:
  hosts: ["*"]
  gateways: [edge/internal]
  http:
    - match: [{uri: {prefix: /v1/auth}}]
      route: [{destination: {host: auth, port: {number: 80}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: httpbin}
spec:
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers: [{name: httpbin, image: docker.io/airgap/httpbin:1, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000, targetPort: 80}]}
---
# k8s-infra's utils/httpbin/vs.yaml, through this lab's gateway.
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: httpbin, namespace: httpbin}
spec:
  hosts: ["*"]
  gateways: [edge/internal]
  http:
    - match: [{uri: {prefix: /httpbin/}}]
      rewrite: {uri: /}
      route: [{destination: {host: httpbin, port: {number: 8000}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: keycloak, namespace: keycloak}
spec:
  selector: {matchLabels: {app: keycloak}}
  template:
    metadata: {labels: {app: keycloak}}
    spec:
      containers:
        - name: keycloak
          image: docker.io/airgap/keycloak:1
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /auth/realms/master, port: http}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: keycloak, namespace: keycloak}
spec: {selector: {app: keycloak}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keycloak-init-configuration, namespace: keycloak}
data:
  input.yaml: |
    mosip:
      roles: [REGISTRATION_ADMIN]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: config-server, namespace: config-server}
spec:
  selector: {matchLabels: {app: config-server}}
  template:
    metadata: {labels: {app: config-server}}
    spec:
      containers:
        - name: config-server
          image: docker.io/airgap/config-server:1
          envFrom: [{configMapRef: {name: config-server-env}}]
          ports: [{name: http, containerPort: 51000}]
          readinessProbe: {httpGet: {path: "/config/*/*", port: 51000}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: config-server, namespace: config-server}
spec: {selector: {app: config-server}, ports: [{port: 80, targetPort: 51000}]}
"#;

/// The stand-ins: busybox serving, on the port its probes use, the files it must answer.
fn stand_ins() -> Vec<(&'static str, Files)> {
    let with = |mut files: Files, extra: &[(&str, &str)]| {
        for (path, text) in extra {
            files.insert(format!("www/{path}"), text.as_bytes().to_vec());
        }
        files
    };
    vec![
        (
            "docker.io/airgap/gateway:1",
            with(
                service_layer(8080, HEALTH).unwrap(),
                &[("httpbin/get", HTTPBIN_ECHO), ("httpbin-html/get", "<html><body>Welcome</body></html>")],
            ),
        ),
        ("docker.io/airgap/httpbin:1", with(service_layer(80, "/status/200").unwrap(), &[("get", HTTPBIN_ECHO)])),
        ("docker.io/airgap/auth:1", service_layer(8091, HEALTH).unwrap()),
        (
            "docker.io/airgap/keycloak:1",
            with(service_layer(8080, "/auth/realms/master").unwrap(), &[("auth/realms/mosip", r#"{"realm":"mosip"}"#)]),
        ),
        (
            "docker.io/airgap/config-server:1",
            with(
                service_layer(51000, "/config/*/*").unwrap(),
                &[(&format!("config/*/default/main/{PROPERTIES}"), PROPERTIES_TEXT)],
            ),
        ),
    ]
}

/// The plan: namespaces, the CRDs, the objects, the config server's environment (the site
/// registry's git URL) and the gateway's certificate from the site file.
const PLAN: &str = r#"version: 1
bundle: bundle.yaml
clusters:
  lab:
    steps:
      - {id: namespaces, apply: {file: "files.airgap.local/namespaces.yaml:1"}}
      - {id: crds, after: [namespaces], apply: {file: "files.airgap.local/istio-crds.yaml:1"}}
      - id: config-env
        after: [namespaces]
        configmap:
          name: config-server-env
          namespace: config-server
          data: {SPRING_CLOUD_CONFIG_SERVER_GIT_URI: "https://${site.registry.address}/git/git.airgap.example/airgap/verify-config.git"}
      - id: gateway-tls
        after: [namespaces]
        secret: {name: api-tls, namespace: edge, data: {tls.crt: "${site.edge_tls.cert}", tls.key: "${site.edge_tls.key}"}}
      - id: objects
        after: [crds, config-env, gateway-tls]
        apply: {file: "files.airgap.local/objects.yaml:1"}
        wait:
          - {kind: Deployment, namespace: edge, timeout: 180}
          - {kind: Deployment, namespace: kernel, timeout: 180}
          - {kind: Deployment, namespace: keycloak, timeout: 180}
          - {kind: Deployment, namespace: config-server, timeout: 180}
          - {kind: Deployment, namespace: httpbin, timeout: 180}
"#;

/// The upstream of the spec: the stand-ins in a distribution, the files and the git repository
/// on a file server; the spec's mirrors point at them.
struct Upstream {
    spec: String,
    _images: Distribution,
    _files: FileServer,
}

fn upstream(dir: &Path) -> Upstream {
    let layout = dir.join("layout");
    let images = stand_ins();
    let specs: Vec<ImageSpec> = images
        .iter()
        .map(|(r, files)| ImageSpec {
            reference: r,
            platforms: &["linux/amd64"],
            shared_layers: std::slice::from_ref(files),
        })
        .collect();
    write_layout(&layout, &specs);
    let registry = Distribution::start(DistributionOpts { tls: false, auth: false }).unwrap();
    for (reference, _) in &images {
        push_plain(
            &layout,
            reference,
            &format!("{}/{}", registry.host_port(), reference.trim_start_matches("docker.io/")),
        )
        .unwrap();
    }

    let www = dir.join("www");
    fs::create_dir_all(www.join("airgap")).unwrap();
    let namespaces: String = ["edge", "kernel", "keycloak", "config-server", "httpbin"]
        .iter()
        .map(|n| format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n"))
        .collect();
    let files = [
        ("namespaces.yaml", namespaces),
        ("istio-crds.yaml", testkit::crds::yaml(ISTIO_CRDS)),
        ("objects.yaml", OBJECTS.to_string()),
    ];
    for (name, text) in &files {
        fs::write(www.join(name), text).unwrap();
    }
    let repo = dir.join("verify-config");
    fs::create_dir_all(&repo).unwrap();
    fs::write(repo.join(PROPERTIES), PROPERTIES_TEXT).unwrap();
    let git = |args: &[&str], at: &Path| run(Command::new("git").args(args).current_dir(at)).unwrap();
    git(&["init", "-q", "-b", "main"], &repo);
    git(&["add", "."], &repo);
    git(&["-c", "user.name=test", "-c", "user.email=test@airgap.example", "commit", "-q", "-m", "config"], &repo);
    let bare = www.join("airgap/verify-config.git");
    git(&["clone", "-q", "--bare", repo.to_str().unwrap(), bare.to_str().unwrap()], dir);
    git(&["update-server-info"], &bare);
    let server = FileServer::start(&www).unwrap();

    let file_entries: String = files
        .iter()
        .map(|(name, text)| {
            format!(
                "  - {{url: 'https://downloads.airgap.example/{name}', sha256: {}, name: {name}, version: '1'}}\n",
                hex::encode(Sha256::digest(text))
            )
        })
        .collect();
    let image_entries: String = images.iter().map(|(r, _)| format!("  - {r}\n")).collect();
    let spec = format!(
        "platforms: [linux/amd64]\nimages:\n{image_entries}files:\n{file_entries}git:\n  - {{url: 'https://git.airgap.example/airgap/verify-config.git', ref: main}}\nmirrors:\n  docker.io: http://{}\n  downloads.airgap.example: {}\n  git.airgap.example: {}\n",
        registry.host_port(),
        server.url(),
        server.url()
    );
    Upstream { spec, _images: registry, _files: server }
}

/// A certificate for `host` issued by the site CA (the registry's generated one) with
/// `openssl ca`, which takes any validity period.
fn issue(dir: &Path, ca_dir: &Path, name: &str, host: &str, start: &str, end: &str) -> (String, String) {
    let work = dir.join(format!("issue-{name}"));
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("index.txt"), "").unwrap();
    fs::write(work.join("serial"), "01\n").unwrap();
    let config = format!(
        "[ca]\ndefault_ca = site\n[site]\ndatabase = {w}/index.txt\nserial = {w}/serial\nnew_certs_dir = {w}\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\nunique_subject = no\n[any]\ncommonName = supplied\n",
        w = work.display()
    );
    fs::write(work.join("ca.cnf"), config).unwrap();
    let key = work.join("key.pem");
    let csr = work.join("csr.pem");
    let cert = work.join("cert.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
        ])
        .args(["-addext", &format!("subjectAltName=DNS:{host}"), "-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))
    .unwrap();
    run(Command::new("openssl")
        .args(["ca", "-batch", "-notext", "-config"])
        .arg(work.join("ca.cnf"))
        .arg("-cert")
        .arg(ca_dir.join("ca.crt"))
        .arg("-keyfile")
        .arg(ca_dir.join("ca-key.pem"))
        .args(["-startdate", start, "-enddate", end, "-in"])
        .arg(&csr)
        .arg("-out")
        .arg(&cert))
    .unwrap();
    (fs::read_to_string(cert).unwrap(), fs::read_to_string(key).unwrap())
}

struct Lab {
    dir: PathBuf,
    site: PathBuf,
    plan: PathBuf,
    registry: String,
    ca: PathBuf,
    plane: KubeControlPlane,
}

impl Lab {
    fn install(&self, verb: &str) -> Command {
        let mut cmd = Command::new(AIRGAP);
        cmd.args(["install", verb, "--site"])
            .arg(&self.site)
            .arg("--plan")
            .arg(&self.plan)
            .args(["--registry", &self.registry, "--ca-file"])
            .arg(&self.ca)
            .args(["--images", "keep", "--helm"])
            .arg(tool("helm-3.8.2"))
            .env("XDG_CACHE_HOME", self.dir.join("xdg-cache"))
            .stdin(Stdio::null());
        cmd
    }

    /// `install verify --json`: whether it exited 0, and its checks.
    fn verify(&self) -> (bool, Vec<Value>) {
        let out = self.install("verify").arg("--json").output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json: {e}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), report["clusters"][0]["checks"].as_array().unwrap().clone())
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.plane.kubectl(args).unwrap_or_else(|e| panic!("kubectl {args:?}: {e:#}"))
    }

    fn wait_for(&self, what: &str, done: impl Fn(&Lab) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in 180 s:\n{}",
                self.kubectl(&["describe", "pods", "-A"])
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn only(checks: &[Value], kind: &str, subject: &str) {
    assert_eq!(failed(checks), BTreeSet::from([(kind.to_string(), subject.to_string())]), "{checks:#?}");
}

const ROUTE: &str = "*/v1/auth (VirtualService kernel/auth via Gateway edge/internal)";
const HTTPBIN_ROUTE: &str = "*/httpbin/ (VirtualService httpbin/httpbin via Gateway edge/internal)";

/// A child process (the load balancer) killed when the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A load balancer where TLS ends outside the cluster: `openssl s_server` with a certificate.
struct LoadBalancer {
    dir: PathBuf,
    address: String,
    server: Option<Killed>,
}

impl LoadBalancer {
    fn start(dir: &Path, address: &str, cert: &(String, String)) -> LoadBalancer {
        let mut lb = LoadBalancer { dir: dir.join("lb"), address: address.to_string(), server: None };
        fs::create_dir_all(&lb.dir).unwrap();
        lb.restart(cert);
        lb
    }

    fn restart(&mut self, (cert, key): &(String, String)) {
        self.stop();
        fs::write(self.dir.join("cert.pem"), cert).unwrap();
        fs::write(self.dir.join("key.pem"), key).unwrap();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &self.address, "-cert"])
            .arg(self.dir.join("cert.pem"))
            .arg("-key")
            .arg(self.dir.join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(Killed(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen on {}", self.address);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        self.server = None;
    }
}

#[test]
fn verify_on_a_real_node_checks_the_edge_the_platform_the_pods_and_the_mirrors() {
    let Some(mut leaks) =
        netns::isolated("verify_on_a_real_node_checks_the_edge_the_platform_the_pods_and_the_mirrors")
    else {
        return;
    };
    // The load balancer's host, as the site's name service answers it (preflight looks it up).
    leaks.resolve_locally(&[LB_HOST], "127.0.0.1").unwrap();
    let t = tempfile::tempdir().unwrap();
    let up = upstream(t.path());
    let install = t.path().join("install");
    fs::create_dir_all(&install).unwrap();
    fs::write(install.join("bundle.yaml"), &up.spec).unwrap();
    fs::write(install.join("plan.yaml"), PLAN).unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new(AIRGAP)
        .args(["bundle", "create"])
        .arg(install.join("bundle.yaml"))
        .arg("-o")
        .arg(&bundle)
        .arg("--cache")
        .arg(t.path().join("cache")))
    .unwrap();

    let plane = KubeControlPlane::start_for_real_nodes().unwrap();
    let certs_d = t.path().join("certs.d");
    fs::create_dir_all(&certs_d).unwrap();
    let node = RealNode::start(&plane, NodeOptions { hosts_dir: certs_d.clone(), ..NodeOptions::default() })
        .unwrap_or_else(|e| panic!("the real node did not start: {e:#}"));
    let pause = t.path().join("pause.tar");
    let layers = [pause_layer().unwrap()];
    write_archive(
        &pause,
        &[ImageSpec { reference: SANDBOX_IMAGE, platforms: &["linux/amd64"], shared_layers: &layers }],
    )
    .unwrap();
    node.import_image(&pause).unwrap();

    let tls = t.path().join("tls");
    let site_registry =
        SiteRegistry::bundles([&bundle]).ip(node.host_ip()).tls(&tls).airgap(Path::new(AIRGAP)).start().unwrap();
    let address = site_registry.address().to_string();
    let registry = site_registry.url().to_string();
    let ca = site_registry.ca().expect("served over TLS").to_path_buf();
    run(Command::new(AIRGAP)
        .args(["install", "mirrors", "--format", "containerd", "--registry", &registry, "--bundle"])
        .arg(&bundle)
        .arg("--ca-file")
        .arg(&ca)
        .arg("--certs-dir")
        .arg(&certs_d)
        .arg("--out")
        .arg(&certs_d))
    .unwrap();

    // The gateway's certificate, issued by the site CA, comes in through the site file. The one
    // domain is `localhost`: preflight looks domains up, and any other name would be a DNS
    // lookup leaving the namespace.
    let (cert, key) = issue(t.path(), &tls, "good", "localhost", "20200101000000Z", "20991231235959Z");
    // The load balancer where TLS for LB_HOST ends, with its certificate from the site CA.
    let lb_address = format!("127.0.0.1:{}", free_port());
    let lb_good = issue(t.path(), &tls, "lb-good", LB_HOST, "20200101000000Z", "20991231235959Z");
    let lb_expired = issue(t.path(), &tls, "lb-expired", LB_HOST, "20200101000000Z", "20210101000000Z");
    let mut lb = LoadBalancer::start(t.path(), &lb_address, &lb_good);
    let mut site = serde_json::json!({
        "installation_name": "verify-real",
        "registry": {"address": address, "ca_cert": ca},
        "clusters": {"lab": {"kubeconfig": plane.kubeconfig()}},
        "domains": {"api": {"host": "localhost", "lb": "internal"}, "outside": {"host": LB_HOST, "lb": "outside-lb"}},
        "load_balancers": {"outside-lb": {"cluster": "lab", "address": lb_address}},
        "edge_tls": {"cert": cert, "key": key},
    });
    fs::write(install.join("site.yaml"), serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    let lab = Lab {
        dir: t.path().to_path_buf(),
        site: install.join("site.yaml"),
        plan: install.join("plan.yaml"),
        registry,
        ca,
        plane,
    };
    let out = lab.install("apply").output().unwrap();
    assert!(out.status.success(), "install apply: {}\n{}", String::from_utf8_lossy(&out.stderr), node.logs());

    // A good install: every check passes, or says why it does not apply here.
    let (ok, checks) = lab.verify();
    assert!(ok, "{checks:#?}");
    let route = detail(&checks, "route", ROUTE);
    assert_eq!(route, format!("answered 200 for localhost{HEALTH} via Service edge/istio-ingressgateway-internal:80"));
    assert_eq!(
        detail(&checks, "health", "health of Service kernel/auth (from VirtualService kernel/auth)"),
        format!("answered 200 for {HEALTH} on Service kernel/auth:80")
    );
    let certificate = detail(&checks, "certificate", "certificate of localhost");
    assert!(
        certificate.starts_with("Secret edge/api-tls: valid for localhost, issued by the site CA, "),
        "{certificate}"
    );
    assert_eq!(
        detail(&checks, "route", HTTPBIN_ROUTE),
        "answered 200 with httpbin's echo of the request (url https://localhost/get) for localhost/httpbin/get via Service edge/istio-ingressgateway-internal:80"
    );
    let lb_certificate = detail(&checks, "certificate", &format!("certificate of {LB_HOST}"));
    assert!(
        lb_certificate.starts_with(&format!(
            "served at {lb_address} (load balancer outside-lb): valid for {LB_HOST}, issued by the site CA, "
        )),
        "{lb_certificate}"
    );
    for realm in ["master", "mosip"] {
        let subject = format!("Keycloak realm {realm} (Deployment keycloak/keycloak)");
        assert!(
            detail(&checks, "keycloak", &subject)
                .starts_with(&format!("realm {realm} answers for /auth/realms/{realm}")),
            "{checks:#?}"
        );
    }
    let config = format!("{PROPERTIES} from config server Deployment config-server/config-server");
    assert!(
        detail(&checks, "config", &config).starts_with("serves all 2 properties of the carried file"),
        "{checks:#?}"
    );
    let mirror = format!("docker.io on node {}", node.name());
    assert!(detail(&checks, "mirror", &mirror).contains("pulled by its upstream name as "), "{checks:#?}");
    assert!(
        detail(&checks, "pods", "pods of Deployment kernel/auth")
            .starts_with("1 pod(s), no crash loop or restart since the install"),
        "{checks:#?}"
    );
    leaks.assert_none();

    // The VirtualService sends its route to a Service that does not exist.
    let path = "/spec/http/0/route/0/destination/host";
    let patch = |value: &str| format!(r#"[{{"op":"replace","path":"{path}","value":"{value}"}}]"#);
    lab.kubectl(&["-n", "kernel", "patch", "virtualservice", "auth", "--type=json", "-p", &patch("auth-wrong")]);
    let (ok, checks) = lab.verify();
    assert!(!ok);
    only(&checks, "route", ROUTE);
    assert_eq!(detail(&checks, "route", ROUTE), "routes /v1/auth to Service kernel/auth-wrong, which does not exist");
    lab.kubectl(&["-n", "kernel", "patch", "virtualservice", "auth", "--type=json", "-p", &patch("auth")]);

    // httpbin's route leads to a page that answers 200 but is not httpbin's echo.
    let prefix =
        |value: &str| format!(r#"[{{"op":"replace","path":"/spec/http/0/match/0/uri/prefix","value":"{value}"}}]"#);
    lab.kubectl(&[
        "-n",
        "httpbin",
        "patch",
        "virtualservice",
        "httpbin",
        "--type=json",
        "-p",
        &prefix("/httpbin-html/"),
    ]);
    let (ok, checks) = lab.verify();
    assert!(!ok);
    let html_route = "*/httpbin-html/ (VirtualService httpbin/httpbin via Gateway edge/internal)";
    only(&checks, "route", html_route);
    assert_eq!(
        detail(&checks, "route", html_route),
        "localhost/httpbin-html/get via Service edge/istio-ingressgateway-internal:80: answered 200, not httpbin's JSON echo (headers, url): \"<html><body>Welcome</body></html>\""
    );
    lab.kubectl(&["-n", "httpbin", "patch", "virtualservice", "httpbin", "--type=json", "-p", &prefix("/httpbin/")]);

    // The load balancer serves an expired certificate.
    let lb_subject = format!("certificate of {LB_HOST}");
    lb.restart(&lb_expired);
    let (_, checks) = lab.verify();
    only(&checks, "certificate", &lb_subject);
    let expired = detail(&checks, "certificate", &lb_subject);
    assert!(expired.starts_with(&format!("served at {lb_address} (load balancer outside-lb): expired ")), "{expired}");
    // It does not answer: nothing to check, and the check says why.
    lb.stop();
    let (ok, checks) = lab.verify();
    assert!(ok, "{checks:#?}");
    let unanswered = checks.iter().find(|c| c["subject"] == lb_subject.as_str()).unwrap();
    assert_eq!(unanswered["status"], "skipped");
    let why = unanswered["detail"].as_str().unwrap();
    assert!(
        why.starts_with(&format!(
            "its TLS ends at load balancer outside-lb, which did not answer TLS from here ({lb_address}: "
        )) && why.ends_with("and the site file names no load_balancers.outside-lb.cert"),
        "{why}"
    );
    // The site file names the certificate the load balancer serves: that file is checked.
    fs::write(install.join("lb.pem"), &lb_good.0).unwrap();
    site["load_balancers"]["outside-lb"]["cert"] = "lb.pem".into();
    fs::write(install.join("site.yaml"), serde_yaml_ng::to_string(&site).unwrap()).unwrap();
    let (ok, checks) = lab.verify();
    assert!(ok, "{checks:#?}");
    let from_file = detail(&checks, "certificate", &lb_subject);
    assert!(
        from_file.starts_with(&format!(
            "load_balancers.outside-lb.cert lb.pem: valid for {LB_HOST}, issued by the site CA, "
        )),
        "{from_file}"
    );

    // The gateway's certificate expired.
    let (expired, expired_key) = issue(t.path(), &tls, "expired", "localhost", "20200101000000Z", "20210101000000Z");
    let tls_patch = serde_json::json!({"stringData": {"tls.crt": expired, "tls.key": expired_key}}).to_string();
    lab.kubectl(&["-n", "edge", "patch", "secret", "api-tls", "-p", &tls_patch]);
    let (_, checks) = lab.verify();
    only(&checks, "certificate", "certificate of localhost");
    let certificate = detail(&checks, "certificate", "certificate of localhost");
    assert!(
        certificate.starts_with("Secret edge/api-tls: expired ")
            && certificate.ends_with("day(s) ago (2021-01-01T00:00:00Z)"),
        "{certificate}"
    );
    let tls_patch = serde_json::json!({"stringData": {"tls.crt": cert, "tls.key": key}}).to_string();
    lab.kubectl(&["-n", "edge", "patch", "secret", "api-tls", "-p", &tls_patch]);

    // The config server is pointed at a repository the bundle does not carry.
    let git_uri = lab.kubectl(&[
        "-n",
        "config-server",
        "get",
        "configmap",
        "config-server-env",
        "-o",
        "jsonpath={.data.SPRING_CLOUD_CONFIG_SERVER_GIT_URI}",
    ]);
    assert_eq!(git_uri, format!("https://{address}/git/git.airgap.example/airgap/verify-config.git"));
    let uri = r#"{"data":{"SPRING_CLOUD_CONFIG_SERVER_GIT_URI":"https://github.com/mosip/mosip-config.git"}}"#;
    lab.kubectl(&["-n", "config-server", "patch", "configmap", "config-server-env", "-p", uri]);
    let (_, checks) = lab.verify();
    let subject = "config server Deployment config-server/config-server";
    only(&checks, "config", subject);
    assert_eq!(
        detail(&checks, "config", subject),
        "SPRING_CLOUD_CONFIG_SERVER_GIT_URI is https://github.com/mosip/mosip-config.git, not a repository the bundle carries"
    );
    let uri = format!(r#"{{"data":{{"SPRING_CLOUD_CONFIG_SERVER_GIT_URI":"{git_uri}"}}}}"#);
    lab.kubectl(&["-n", "config-server", "patch", "configmap", "config-server-env", "-p", &uri]);

    // Keycloak scaled away: its realms do not answer.
    lab.kubectl(&["-n", "keycloak", "scale", "deployment", "keycloak", "--replicas=0"]);
    lab.wait_for("keycloak's pod gone", |l| {
        l.kubectl(&["-n", "keycloak", "get", "pods", "-o", "name"]).trim().is_empty()
    });
    let (_, checks) = lab.verify();
    let realm = detail(&checks, "keycloak", "Keycloak realm mosip (Deployment keycloak/keycloak)");
    assert!(
        realm.starts_with("/auth/realms/mosip on Service keycloak/keycloak:80: the API server could not reach it: "),
        "{realm}"
    );
    lab.kubectl(&["-n", "keycloak", "scale", "deployment", "keycloak", "--replicas=1"]);
    lab.kubectl(&["-n", "keycloak", "rollout", "status", "deployment/keycloak", "--timeout=180s"]);

    // A container killed after the install restarts: the pods check names it and how it ended.
    let id = lab.kubectl(&[
        "-n",
        "kernel",
        "get",
        "pods",
        "-l",
        "app=auth",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].containerID}",
    ]);
    node.ctr(&["tasks", "kill", "--signal", "SIGKILL", id.trim().trim_start_matches("containerd://")]).unwrap();
    lab.wait_for("the container restarted", |l| {
        l.kubectl(&[
            "-n",
            "kernel",
            "get",
            "pods",
            "-l",
            "app=auth",
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].restartCount}",
        ]) == "1"
    });
    let (_, checks) = lab.verify();
    assert!(
        failed(&checks).contains(&("pods".to_string(), "pods of Deployment kernel/auth".to_string())),
        "{checks:#?}"
    );
    let pods = detail(&checks, "pods", "pods of Deployment kernel/auth");
    assert!(
        pods.contains(
            "container auth: restarted since the install (1 restart(s) in all); last ended Error (exit code 137) at "
        ),
        "{pods}"
    );

    // A new version of it that crashes at start: a crash loop, with how it last ended.
    let crash = r#"[{"op":"add","path":"/spec/template/spec/containers/0/command","value":["/bin/busybox","sh","-c","echo failing; exit 3"]}]"#;
    lab.kubectl(&["-n", "kernel", "patch", "deployment", "auth", "--type=json", "-p", crash]);
    lab.wait_for("a crash loop", |l| {
        l.kubectl(&[
            "-n",
            "kernel",
            "get",
            "pods",
            "-l",
            "app=auth",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[*].state.waiting.reason}",
        ])
        .contains("CrashLoopBackOff")
    });
    let (_, checks) = lab.verify();
    let pods = detail(&checks, "pods", "pods of Deployment kernel/auth");
    assert!(
        pods.contains(": CrashLoopBackOff: back-off ") && pods.contains("; last ended Error (exit code 3) at "),
        "{pods}"
    );
    let rollout = detail(&checks, "workload", "Deployment kernel/auth");
    assert!(
        rollout.starts_with("1 of 1 ready: ") && rollout.contains("CrashLoopBackOff"),
        "the rollout is not done: {rollout}"
    );
    lab.kubectl(&["-n", "kernel", "rollout", "undo", "deployment/auth"]);

    // The node's mirror for docker.io is removed: an image named by its upstream name cannot start.
    fs::remove_dir_all(certs_d.join("docker.io")).unwrap();
    let (_, checks) = lab.verify();
    let mirror = detail(&checks, "mirror", &format!("docker.io on node {}", node.name()));
    assert!(mirror.contains("the node cannot pull it: "), "{mirror}");
    let left = lab.kubectl(&["-n", "airgap-system", "get", "pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "the mirror check left pods: {left}");
}
