use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::proc::{free_port, port_open, run, run_with_input, wait_until, Proc};
use crate::tls::TestCa;
use crate::tools::tool;
use crate::volumes::VolumeProvisioner;

/// Service and pod addresses only ever appear inside API objects: nothing routes to them, but
/// for the `kubernetes` Service on a plane reachable from pods (see `RealNode`).
const SERVICE_CIDR: &str = "10.96.0.0/16";
pub(crate) const SERVICE_IP: &str = "10.96.0.1";
const POD_CIDR: &str = "10.244.0.1/16";
const NODES: [&str; 3] = ["kwok-node-0", "kwok-node-1", "kwok-node-2"];

/// A Kubernetes control plane built from `k8s.io/kubernetes` (etcd, kube-apiserver,
/// kube-controller-manager, kube-scheduler) with kwok simulating three nodes, so that pods are
/// scheduled and become Running and Ready, Deployments report ready replicas and `helm --wait`
/// returns. No container runs. For real nodes instead ([`crate::RealNode`]), see [`KubeOptions`].
pub struct KubeControlPlane {
    // Stopped in reverse order of start: the API server before etcd.
    procs: Vec<Proc>,
    volumes: Option<VolumeProvisioner>,
    dir: TempDir,
    port: u16,
    options: KubeOptions,
}

/// How a control plane is started; the default is [`KubeControlPlane::start`]'s.
#[derive(Debug, Clone, Copy)]
pub struct KubeOptions {
    /// kwok's three simulated nodes (`kwok-node-N`). Without them nothing runs pods until a
    /// [`crate::RealNode`] joins.
    pub simulated_nodes: bool,
    /// The API server listens on every address of the (test's own) network namespace, not only
    /// on loopback, so that real nodes' pods reach it as the `kubernetes` Service (each
    /// [`crate::RealNode`] adds the DNAT that kube-proxy would), and calls admission webhooks at
    /// their Service's endpoints (pod addresses) rather than at a ClusterIP that nothing routes.
    pub reachable_from_pods: bool,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions { simulated_nodes: true, reachable_from_pods: false }
    }
}

struct Pki<'a> {
    ca: &'a TestCa,
    dir: &'a Path,
    server: String,
}

impl Pki<'_> {
    /// Writes a client certificate and a kubeconfig using it; returns the kubeconfig's path.
    fn kubeconfig(&self, name: &str, user: &str, group: Option<&str>) -> Result<PathBuf> {
        self.ca.issue(user, &[], group)?.write(self.dir, name)?;
        let path = self.dir.join(format!("{name}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: testkit\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n- name: {name}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n\
             contexts:\n- name: testkit\n  context:\n    cluster: testkit\n    user: {name}\n    namespace: default\n\
             current-context: testkit\n",
            server = self.server,
            ca = self.dir.join("ca.crt").display(),
            crt = self.dir.join(format!("{name}.crt")).display(),
            key = self.dir.join(format!("{name}.key")).display(),
        );
        fs::write(&path, text)?;
        Ok(path)
    }
}

impl KubeControlPlane {
    /// A plane with kwok's simulated nodes, the usual choice.
    pub fn start() -> Result<KubeControlPlane> {
        Self::start_with(KubeOptions::default())
    }

    /// A control plane for real nodes: no simulated node, the API server reachable from pods.
    pub fn start_for_real_nodes() -> Result<KubeControlPlane> {
        Self::start_with(KubeOptions { simulated_nodes: false, reachable_from_pods: true })
    }

    /// A plane as `options` say, started again on a port taken in the meantime.
    pub fn start_with(options: KubeOptions) -> Result<KubeControlPlane> {
        // A port `free_port` gave can be taken by someone else's connection before the component
        // binds it; with five components per plane that happens on a busy machine. Start again.
        let mut attempt = 1;
        loop {
            match Self::start_once(options) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => attempt += 1,
                started => return started,
            }
        }
    }

    fn start_once(options: KubeOptions) -> Result<KubeControlPlane> {
        let dir = tempfile::Builder::new().prefix("testkit-kube-").tempdir()?;
        let root = dir.path();
        let pki_dir = root.join("pki");
        fs::create_dir_all(&pki_dir)?;
        let port = free_port();
        let ca = TestCa::new("testkit kubernetes CA")?;
        fs::write(pki_dir.join("ca.crt"), ca.cert_pem())?;
        ca.issue(
            "kube-apiserver",
            &[
                "127.0.0.1",
                "localhost",
                SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            None,
        )?
        .write(&pki_dir, "apiserver")?;
        let sa_key = rcgen::KeyPair::generate()?;
        fs::write(pki_dir.join("sa.key"), sa_key.serialize_pem())?;
        fs::write(pki_dir.join("sa.pub"), sa_key.public_key_pem())?;
        let pki = Pki { ca: &ca, dir: &pki_dir, server: format!("https://127.0.0.1:{port}") };
        let admin = pki.kubeconfig("admin", "testkit-admin", Some("system:masters"))?;
        let controller_manager = pki.kubeconfig("controller-manager", "system:kube-controller-manager", None)?;
        let scheduler = pki.kubeconfig("scheduler", "system:kube-scheduler", None)?;
        let kwok = pki.kubeconfig("kwok", "testkit-kwok", Some("system:masters"))?;
        let pki_file = |name: &str| pki_dir.join(name).display().to_string();

        let mut procs = Vec::new();
        let (etcd_port, etcd_peer) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let mut etcd = Proc::spawn(
            "etcd",
            Command::new(tool("etcd"))
                .arg("--name=testkit")
                .arg(format!("--data-dir={}", root.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=testkit={peer_url}"))
                .arg("--log-level=warn"),
            root,
        )?;
        wait_until("etcd", Duration::from_secs(30), &mut [&mut etcd], || port_open(etcd_port))?;
        procs.push(etcd);

        let mut apiserver_cmd = Command::new(tool("kube-apiserver"));
        if options.reachable_from_pods {
            // A node is reached by its address, never by its name: looking a node's name up
            // (the default's first choice) would ask DNS, outside the test's namespace.
            apiserver_cmd.args([
                "--bind-address=0.0.0.0",
                "--enable-aggregator-routing=true",
                "--kubelet-preferred-address-types=InternalIP",
            ]);
        } else {
            apiserver_cmd.arg("--bind-address=127.0.0.1");
        }
        let mut apiserver = Proc::spawn(
            "kube-apiserver",
            apiserver_cmd
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={port}"))
                // The API server would otherwise publish 127.0.0.1 as the `kubernetes` Service's
                // endpoint, which endpoint validation rejects.
                .arg("--endpoint-reconciler-type=none")
                .arg(format!("--tls-cert-file={}", pki_file("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", pki_file("apiserver.key")))
                .arg(format!("--client-ca-file={}", pki_file("ca.crt")))
                .arg(format!("--service-account-key-file={}", pki_file("sa.pub")))
                .arg(format!("--service-account-signing-key-file={}", pki_file("sa.key")))
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                .arg("--authorization-mode=Node,RBAC")
                .arg("--allow-privileged=true")
                .arg("--profiling=false")
                .arg(format!("--cert-dir={}", root.join("apiserver-certs").display())),
            root,
        )?;
        let readyz = || {
            run(Command::new(tool("kubectl")).arg("--kubeconfig").arg(&admin).args(["get", "--raw", "/readyz"]))
                .map(|out| out.trim() == "ok")
                .unwrap_or(false)
        };
        wait_until("kube-apiserver /readyz", Duration::from_secs(120), &mut [&mut apiserver], readyz)?;
        procs.push(apiserver);

        let controller_manager_port = free_port();
        procs.push(Proc::spawn(
            "kube-controller-manager",
            Command::new(tool("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", controller_manager.display()))
                .arg(format!("--authentication-kubeconfig={}", controller_manager.display()))
                .arg(format!("--authorization-kubeconfig={}", controller_manager.display()))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={controller_manager_port}"))
                .arg(format!("--cert-dir={}", root.join("controller-manager-certs").display()))
                .arg("--leader-elect=false")
                .arg("--use-service-account-credentials=true")
                .arg(format!("--service-account-private-key-file={}", pki_file("sa.key")))
                .arg(format!("--root-ca-file={}", pki_file("ca.crt")))
                .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                .arg("--profiling=false"),
            root,
        )?);
        let scheduler_port = free_port();
        procs.push(Proc::spawn(
            "kube-scheduler",
            Command::new(tool("kube-scheduler"))
                .arg(format!("--kubeconfig={}", scheduler.display()))
                .arg(format!("--authentication-kubeconfig={}", scheduler.display()))
                .arg(format!("--authorization-kubeconfig={}", scheduler.display()))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--secure-port={scheduler_port}"))
                .arg(format!("--cert-dir={}", root.join("scheduler-certs").display()))
                .arg("--leader-elect=false")
                .arg("--profiling=false"),
            root,
        )?);
        let stages = root.join("kwok-stages.yaml");
        fs::write(&stages, include_str!("kwok-stages.yaml"))?;
        procs.push(Proc::spawn(
            "kwok",
            Command::new(tool("kwok"))
                .arg(format!("--kubeconfig={}", kwok.display()))
                .arg(format!("--config={}", stages.display()))
                .arg("--manage-all-nodes=false")
                .arg("--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake")
                .arg(format!("--cidr={POD_CIDR}"))
                .arg("--node-ip=127.0.0.1")
                // kwok renews each node's Lease, as a kubelet does: without it the node
                // lifecycle controller marks the nodes NotReady after 40 s and their pods not
                // ready, which no stage undoes (the stages' own heartbeat is every 10 minutes).
                .arg("--node-lease-duration-seconds=40")
                .arg(format!("--server-address=127.0.0.1:{}", free_port())),
            root,
        )?);

        let mut plane = KubeControlPlane { procs, volumes: None, dir, port, options };
        if options.simulated_nodes {
            plane.add_nodes()?;
        } else {
            plane.wait_for_default_service_account()?;
        }
        Ok(plane)
    }

    fn wait_for_default_service_account(&mut self) -> Result<()> {
        let kubeconfig = self.kubeconfig();
        let mut procs: Vec<&mut Proc> = self.procs.iter_mut().collect();
        wait_until("the default ServiceAccount", Duration::from_secs(90), &mut procs, || {
            default_service_account(&kubeconfig)
        })
    }

    fn add_nodes(&mut self) -> Result<()> {
        let nodes: Vec<String> = NODES
            .iter()
            .map(|name| {
                format!(
                    "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    \
                     kwok.x-k8s.io/node: fake\n    node.alpha.kubernetes.io/ttl: \"0\"\n  labels:\n    \
                     kubernetes.io/hostname: {name}\n    kubernetes.io/os: linux\n    \
                     kubernetes.io/arch: amd64\n    type: kwok\n"
                )
            })
            .collect();
        run_with_input(
            Command::new(tool("kubectl")).arg("--kubeconfig").arg(self.kubeconfig()).args(["apply", "-f", "-"]),
            Some(nodes.join("---\n").as_bytes()),
        )?;
        let kubeconfig = self.kubeconfig();
        let ready = || {
            let nodes = run(Command::new(tool("kubectl")).arg("--kubeconfig").arg(&kubeconfig).args([
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]));
            matches!(nodes, Ok(s) if s.lines().filter(|l| *l == "True").count() == NODES.len())
                && default_service_account(&kubeconfig)
        };
        let mut procs: Vec<&mut Proc> = self.procs.iter_mut().collect();
        wait_until("kwok nodes Ready and the default ServiceAccount", Duration::from_secs(90), &mut procs, ready)
            .context("the control plane came up but its nodes did not")
    }

    /// From now on every PersistentVolumeClaim gets a volume made for it and bound to it, as a
    /// provisioner would (see `volumes.rs`), so that pods mounting claims are scheduled.
    pub fn provision_volumes(&mut self) -> Result<()> {
        if self.volumes.is_none() {
            self.volumes = Some(VolumeProvisioner::start(&self.kubeconfig(), &self.dir.path().join("volumes.log"))?);
        }
        Ok(())
    }

    /// An admin kubeconfig (client certificate in system:masters) for kubectl, helm and the
    /// `kube` crate.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("pki/admin.kubeconfig")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the API server's certificate and the clients' certificates.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("pki/ca.crt")
    }

    /// The simulated nodes' names (none without [`KubeOptions::simulated_nodes`]).
    pub fn nodes(&self) -> Vec<String> {
        if !self.options.simulated_nodes {
            return Vec::new();
        }
        NODES.iter().map(|n| n.to_string()).collect()
    }

    /// The API server's port, when pods may reach it ([`KubeOptions::reachable_from_pods`]).
    pub(crate) fn port_for_pods(&self) -> Option<u16> {
        self.options.reachable_from_pods.then_some(self.port)
    }

    /// Runs kubectl with the admin kubeconfig and returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        run(Command::new(tool("kubectl")).arg("--kubeconfig").arg(self.kubeconfig()).args(args))
    }

    /// `kubectl apply` of objects (YAML or JSON) given as text; returns kubectl's stdout.
    pub fn apply(&self, objects: &str) -> Result<String> {
        let kubectl = &mut Command::new(tool("kubectl"));
        run_with_input(
            kubectl.arg("--kubeconfig").arg(self.kubeconfig()).args(["apply", "-f", "-"]),
            Some(objects.as_bytes()),
        )
    }

    /// Gives every pod behind Service `namespace/name` the address `ip` in its status, as a
    /// kubelet reports a pod's address, and waits until the Service's endpoints are at `ip`.
    /// Returns each of the Service's ports with the port its endpoint names. The API server's
    /// service proxy dials only endpoints that are pods' addresses, and kwok's pods' addresses
    /// lead nowhere: with this machine's address ([`host_address`]), a test serves the pods'
    /// part itself on those ports.
    pub fn point_service_at(&self, namespace: &str, name: &str, ip: &str) -> Result<Vec<(u16, u16)>> {
        let json = |args: &[&str]| -> Result<serde_json::Value> {
            Ok(serde_json::from_str(&self.kubectl(&[&["-n", namespace, "get"], args, &["-o", "json"]].concat())?)?)
        };
        let service = json(&["service", name])?;
        let selector = service["spec"]["selector"]
            .as_object()
            .with_context(|| format!("Service {namespace}/{name} selects no pods"))?;
        let selector: Vec<String> =
            selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
        let pods = json(&["pods", "-l", &selector.join(",")])?;
        let pods = pods["items"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(!pods.is_empty(), "Service {namespace}/{name}: no pod matches {}", selector.join(","));
        let status = serde_json::json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}).to_string();
        for pod in &pods {
            let pod = pod["metadata"]["name"].as_str().unwrap_or_default();
            self.kubectl(&[
                "-n",
                namespace,
                "patch",
                "pod",
                pod,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status,
            ])?;
        }
        let mut endpoints = serde_json::Value::Null;
        let at_ip = |e: &serde_json::Value| {
            let subsets = e["subsets"].as_array().cloned().unwrap_or_default();
            let addresses: Vec<&serde_json::Value> =
                subsets.iter().flat_map(|s| s["addresses"].as_array().into_iter().flatten()).collect();
            addresses.len() == pods.len()
                && addresses.iter().all(|a| a["ip"] == ip)
                && subsets.iter().all(|s| s["notReadyAddresses"].is_null())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !at_ip(&endpoints) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "Service {namespace}/{name}: its endpoints are not at {ip}: {endpoints}"
            );
            std::thread::sleep(Duration::from_millis(300));
            endpoints = json(&["endpoints", name])?;
        }
        let named: Vec<(Option<&str>, u16)> = endpoints["subsets"][0]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["name"].as_str(), p["port"].as_u64().unwrap_or_default() as u16))
            .collect();
        let ports = service["spec"]["ports"].as_array().cloned().unwrap_or_default();
        ports
            .iter()
            .map(|p| {
                let port = p["port"].as_u64().unwrap_or_default() as u16;
                let target = named.iter().find(|(n, _)| *n == p["name"].as_str()).map(|(_, t)| *t);
                Ok((port, target.with_context(|| format!("Service {namespace}/{name}: no endpoint port for {p}"))?))
            })
            .collect()
    }

    /// The ends of every component's log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| p.log_tail()).collect::<Vec<_>>().join("\n")
    }
}

/// An address of this machine that an Endpoints object may hold (not loopback), for
/// [`KubeControlPlane::point_service_at`].
pub fn host_address() -> Result<String> {
    let out = run(Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]))?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .with_context(|| format!("this machine has no global IPv4 address: {out}"))
}

/// Pods cannot be created before the controller manager has made the namespace's default
/// ServiceAccount.
fn default_service_account(kubeconfig: &Path) -> bool {
    run(Command::new(tool("kubectl")).arg("--kubeconfig").arg(kubeconfig).args([
        "get",
        "serviceaccount",
        "default",
        "-n",
        "default",
    ]))
    .is_ok()
}

impl Drop for KubeControlPlane {
    fn drop(&mut self) {
        self.volumes = None;
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}
