//! A real Kubernetes node joined to a [`KubeControlPlane`]: a private containerd (Debian's, with
//! runc) and a kubelet built from the same `k8s.io/kubernetes` module as the control plane, with
//! pods on a bridge network of Debian's CNI plugins. Unlike the kwok nodes, containers really run:
//! images are pulled by containerd, so a test sees exactly what a site node would pull and from where.
//!
//! Needs root, cgroup v1 (cgroupfs driver) and overlayfs. Several nodes run at once, of one
//! control plane or of several: each has its own name, pod subnet (the `N`th node a process starts
//! gets 10.85.N.0/24 of [`POD_NETWORK`]), bridge, cgroup parent, ports and directories. Nodes of
//! different processes would share subnets: tests that start them run in network namespaces of
//! their own ([`crate::netns`]), one at a time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::kube::KubeControlPlane;
use crate::proc::{free_port, random_token, run, run_with_input, wait_until, Proc};
use crate::tools::tool;

/// Every node's pod subnet is a /24 of this network, each routed to its node's bridge. Apart from
/// kwok's 10.244.0.0/16, which exists only inside API objects.
pub(crate) const POD_NETWORK: &str = "10.85.0.0/16";
/// The index of the next node this process starts: its subnet is 10.85.N.0/24.
static NEXT_NODE: AtomicU8 = AtomicU8::new(0);
/// What containerd runs as each pod's sandbox; it is pulled like any other image, so the caller's
/// registry must serve it.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.7";

/// What differs between the nodes a test starts.
pub struct NodeOptions {
    /// containerd's `config_path`: a `certs.d` tree of `<host>/hosts.toml`. containerd reads it on
    /// every pull, so a test may fill or empty it while the node runs.
    pub hosts_dir: PathBuf,
    /// The node's name; empty (the default) is `real-node-N` for the process's `N`th node. kwok's
    /// nodes are `kwok-node-N`.
    pub name: String,
    /// The kubelet's `maxPods` (the kubelet's default, 110, when None); at most 250, what the
    /// node's /24 holds.
    pub max_pods: Option<u8>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { hosts_dir: PathBuf::new(), name: String::new(), max_pods: None }
    }
}

/// A running node: its containerd and kubelet stop, and its network and files go, when dropped.
pub struct RealNode {
    containerd: Option<Proc>,
    kubelet: Option<Proc>,
    dir: TempDir,
    name: String,
    /// 10.85.N.0/24 and 10.85.N.1: the host's address on the bridge, what pods reach the host by.
    subnet: String,
    gateway: String,
    bridge: String,
    network: String,
    /// `/testkit-<random>`: the kubelet's cgroup root, under which it makes `kubepods`.
    cgroup_root: String,
    /// The kube-proxy-like rule that takes this node's pods to the API server.
    nat_rule: bool,
}

impl RealNode {
    /// Starts containerd and the kubelet and waits until the node is Ready (about 10 s).
    pub fn start(plane: &KubeControlPlane, opts: NodeOptions) -> Result<RealNode> {
        check_host()?;
        if !opts.hosts_dir.is_dir() {
            bail!("NodeOptions::hosts_dir {} is not a directory: containerd needs one", opts.hosts_dir.display());
        }
        let dir = tempfile::Builder::new().prefix("testkit-node-").tempdir()?;
        let suffix = &random_token()[..8];
        let index = NEXT_NODE.fetch_add(1, Ordering::SeqCst);
        if index == u8::MAX {
            bail!("a process starts at most 255 real nodes (one /24 of {POD_NETWORK} each)");
        }
        let mut node = RealNode {
            containerd: None,
            kubelet: None,
            name: if opts.name.is_empty() { format!("real-node-{index}") } else { opts.name.clone() },
            subnet: format!("10.85.{index}.0/24"),
            gateway: format!("10.85.{index}.1"),
            // Interface names hold at most 15 bytes.
            bridge: format!("tkn{suffix}"),
            network: format!("testkit-{suffix}"),
            cgroup_root: format!("/testkit-{suffix}"),
            nat_rule: false,
            dir,
        };
        node.add_bridge()?;
        node.make_cgroup_root()?;
        node.route_service_to_api_server(plane)?;
        let root = node.dir.path().to_path_buf();
        let socket = root.join("containerd.sock");
        let config = node.write_containerd_config(&opts.hosts_dir, &socket)?;
        node.write_cni_config()?;
        let mut containerd =
            Proc::spawn("containerd", Command::new(tool("containerd")).arg("--config").arg(&config), &root)?;
        wait_until("containerd's socket", Duration::from_secs(30), &mut [&mut containerd], || socket.exists())?;
        node.containerd = Some(containerd);

        let kubelet_config = node.write_kubelet_config(opts.max_pods)?;
        node.kubelet = Some(Proc::spawn(
            "kubelet",
            Command::new(tool("kubelet"))
                .arg(format!("--config={}", kubelet_config.display()))
                // The admin kubeconfig: the control plane keeps its CA key to itself, and a test
                // node needs no narrower rights.
                .arg(format!("--kubeconfig={}", plane.kubeconfig().display()))
                .arg(format!("--root-dir={}", root.join("kubelet").display()))
                .arg("--container-runtime=remote")
                .arg(format!("--container-runtime-endpoint=unix://{}", socket.display()))
                .arg(format!("--hostname-override={}", node.name))
                .arg(format!("--node-ip={}", node.gateway))
                .arg("--v=1"),
            &root,
        )?);
        node.wait_ready(plane)?;
        Ok(node)
    }

    /// The node's name, for `nodeSelector: {kubernetes.io/hostname: NAME}`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on this node's pod network. A peer bound here is reached by containerd
    /// (on the host) and by the pods of every node alike.
    pub fn host_ip(&self) -> &str {
        &self.gateway
    }

    /// This node's pod subnet, `10.85.N.0/24`.
    pub fn pod_subnet(&self) -> &str {
        &self.subnet
    }

    /// Imports an image archive (`ctr images import`) into this node's containerd, for what a
    /// test runs on the node beside the site's workloads (a volume provisioner's helper); the
    /// kubelet then runs it without a pull when its pods say `imagePullPolicy: IfNotPresent`.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let archive = archive.to_str().context("an image archive's path is UTF-8")?;
        self.ctr(&["images", "import", "--platform", "linux/amd64", archive]).map(drop)
    }

    /// Runs `ctr` against this node's containerd, in the namespace Kubernetes uses.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        let socket = self.dir.path().join("containerd.sock");
        run(Command::new("ctr").arg("--address").arg(socket).args(["--namespace", "k8s.io"]).args(args))
    }

    /// The ends of containerd's and the kubelet's logs, for failure messages.
    pub fn logs(&self) -> String {
        [&self.containerd, &self.kubelet]
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|p| p.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn add_bridge(&self) -> Result<()> {
        // Made before the CNI plugin would make it on the first pod, so that a peer can bind the
        // gateway address before anything is pulled.
        run(Command::new("ip").args(["link", "add", &self.bridge, "type", "bridge"]))?;
        run(Command::new("ip").args(["addr", "add", &format!("{}/24", self.gateway), "dev", &self.bridge]))?;
        run(Command::new("ip").args(["link", "set", &self.bridge, "up"]))?;
        Ok(())
    }

    /// The kubelet's cgroup root, in every controller: the kubelet checks that it exists.
    fn make_cgroup_root(&self) -> Result<()> {
        for controller in cgroup_controllers() {
            let dir = controller.join(self.cgroup_root.trim_start_matches('/'));
            fs::create_dir_all(&dir).with_context(|| format!("cannot make the cgroup {}", dir.display()))?;
        }
        Ok(())
    }

    /// What kube-proxy would do for the `kubernetes` Service: this node's pods reach the API
    /// server at the Service's address (what the kubelet gives them in KUBERNETES_SERVICE_HOST),
    /// through a DNAT to where it listens. Only for a control plane that listens beyond loopback
    /// ([`crate::KubeOptions::reachable_from_pods`]); rules of several nodes, even of several
    /// control planes, stand side by side, each matching its own pods' subnet.
    fn route_service_to_api_server(&mut self, plane: &KubeControlPlane) -> Result<()> {
        let Some(port) = plane.port_for_pods() else { return Ok(()) };
        let rules = format!(
            "table ip {NAT_TABLE} {{\n  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n}}\n\
             add rule ip {NAT_TABLE} prerouting ip saddr {subnet} ip daddr {service} tcp dport 443 \
             dnat to {gateway}:{port} comment \"{bridge}\"\n",
            subnet = self.subnet,
            service = crate::kube::SERVICE_IP,
            gateway = self.gateway,
            bridge = self.bridge,
        );
        run_with_input(Command::new("nft").args(["-f", "-"]), Some(rules.as_bytes()))
            .context("adding the API server's DNAT rule (nftables)")?;
        self.nat_rule = true;
        Ok(())
    }

    fn remove_nat_rule(&self) {
        let Ok(listed) = run(Command::new("nft").args(["-a", "list", "chain", "ip", NAT_TABLE, "prerouting"])) else {
            return;
        };
        let marker = format!("comment \"{}\"", self.bridge);
        for handle in listed.lines().filter(|l| l.contains(&marker)).filter_map(|l| l.rsplit_once("# handle ")) {
            let _ = Command::new("nft")
                .args(["delete", "rule", "ip", NAT_TABLE, "prerouting", "handle", handle.1.trim()])
                .output();
        }
    }

    fn write_containerd_config(&self, hosts_dir: &Path, socket: &Path) -> Result<PathBuf> {
        let root = self.dir.path();
        // restrict_oom_score_adj: this container lacks CAP_SYS_RESOURCE, so runc cannot lower a
        // sandbox's oom_score_adj to -998 ("can't get final child's PID from pipe: EOF").
        // netns_mounts_under_state_dir keeps the pods' network namespaces out of /run/netns.
        // enable_unprivileged_ports (containerd 2's default): a pod's non-root user may bind ports
        // below 1024, as the real images' binaries may through file capabilities (ingress-nginx's
        // controller, user 101, on 80 and 443), which a stand-in's program does not carry.
        let text = format!(
            r#"version = 2
root = "{root}/containerd-root"
state = "{root}/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts}"
"#,
            root = root.display(),
            socket = socket.display(),
            hosts = hosts_dir.display(),
        );
        let path = root.join("containerd.toml");
        fs::write(&path, text)?;
        Ok(path)
    }

    fn write_cni_config(&self) -> Result<()> {
        let root = self.dir.path();
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": self.network,
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
                 "ipam": {"type": "host-local", "dataDir": root.join("cni-ipam"),
                          "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]], "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "loopback"}
            ]
        });
        fs::create_dir_all(root.join("cni"))?;
        fs::write(root.join("cni/10-testkit.conflist"), serde_json::to_vec_pretty(&conflist)?)?;
        Ok(())
    }

    fn write_kubelet_config(&self, max_pods: Option<u8>) -> Result<PathBuf> {
        if let Some(n) = max_pods.filter(|n| *n > 250) {
            bail!("NodeOptions::max_pods {n}: a node's pod subnet is a /24, so at most 250");
        }
        // Eviction and image GC thresholds are loosened: the test machine's disk may be fuller
        // than a node's, and a node under DiskPressure would refuse the test's pods. Without
        // kube-proxy the kubelet's iptables chains serve nothing, and they would outlive it.
        // There is no cluster DNS: the pods' resolv.conf names the node's gateway, where nothing
        // answers, so a lookup fails inside the pod network instead of reaching the machine's
        // nameservers (which the leak counter would count).
        let resolv = self.dir.path().join("resolv.conf");
        fs::write(&resolv, format!("nameserver {}\n", self.gateway))?;
        let text = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             cgroupDriver: cgroupfs\ncgroupRoot: {cgroup_root}\nfailSwapOn: false\n\
             address: 127.0.0.1\nport: {port}\nhealthzBindAddress: 127.0.0.1\nhealthzPort: {healthz}\nreadOnlyPort: 0\n\
             authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: false}}}}\n\
             authorization: {{mode: AlwaysAllow}}\n\
             evictionHard: {{memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%}}\n\
             imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 99\n\
             serializeImagePulls: false\nresolvConf: {resolv}\nmakeIPTablesUtilChains: false\n{max_pods}",
            max_pods = max_pods.map(|n| format!("maxPods: {n}\n")).unwrap_or_default(),
            cgroup_root = self.cgroup_root,
            resolv = resolv.display(),
            port = free_port(),
            healthz = free_port(),
        );
        let path = self.dir.path().join("kubelet.yaml");
        fs::write(&path, text)?;
        Ok(path)
    }

    fn wait_ready(&mut self, plane: &KubeControlPlane) -> Result<()> {
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        let ready =
            || matches!(plane.kubectl(&["get", "node", &self.name, "-o", jsonpath]), Ok(s) if s.trim() == "True");
        let mut procs: Vec<&mut Proc> = [&mut self.containerd, &mut self.kubelet].into_iter().flatten().collect();
        wait_until(&format!("node {} Ready", self.name), Duration::from_secs(120), &mut procs, ready)
    }

    /// Kills every container and its shim (shims outlive containerd by design); returns the
    /// containers' ids.
    fn kill_containers(&self) -> Vec<String> {
        let tasks = self.dir.path().join("containerd-state/io.containerd.runtime.v2.task");
        let mut ids = Vec::new();
        for init in
            fs::read_dir(&tasks).into_iter().flatten().flatten().flat_map(|ns| fs::read_dir(ns.path())).flatten()
        {
            let Ok(init) = init else { continue };
            ids.push(init.file_name().to_string_lossy().into_owned());
            let Ok(pid) = fs::read_to_string(init.path().join("init.pid")) else { continue };
            let pid = pid.trim().to_string();
            let shim = fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
                s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string))
            });
            let mut kill = Command::new("kill");
            kill.arg("-KILL").arg(&pid);
            if let Some(shim) = shim.filter(|s| is_shim(s)) {
                kill.arg(shim);
            }
            let _ = kill.output();
        }
        ids
    }

    /// Unmounts whatever containerd and the kubelet left under the node's directory, deepest first.
    fn unmount_leftovers(&self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> =
            mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|p| p.starts_with(&root)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).output();
        }
    }

    /// Removes the node's cgroup root and the pods' cgroups under it, which the kubelet would
    /// have removed had it lived. A killed container's cgroup stays busy until the kernel has
    /// reaped its processes, so removal is tried again for a few seconds.
    fn remove_cgroups(&self) {
        for _ in 0..50 {
            let mut left = false;
            for controller in cgroup_controllers() {
                let mut dirs = Vec::new();
                collect_dirs(&controller.join(self.cgroup_root.trim_start_matches('/')), &mut dirs);
                for d in dirs.iter().rev() {
                    left |= fs::remove_dir(d).is_err();
                }
            }
            if !left {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The NAT table of every node's API server rule (see `route_service_to_api_server`).
const NAT_TABLE: &str = "testkit_service_nat";

/// The mounted cgroup v1 controllers' directories (`/sys/fs/cgroup/cpu`, ...); the symlinks
/// that join two (`cpu,cpuacct`) are left out, so each hierarchy comes once.
fn cgroup_controllers() -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_dirs(&e.path(), out);
        }
    }
}

fn is_shim(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.starts_with("containerd-shim")).unwrap_or(false)
}

/// What a real node needs from this machine, checked up front so that a missing piece is named.
fn check_host() -> Result<()> {
    let fs_type = run(Command::new("stat").args(["-fc", "%T", "/sys/fs/cgroup"]))?;
    if fs_type.trim() != "tmpfs" {
        bail!(
            "/sys/fs/cgroup is {}: RealNode is set up for cgroup v1 (tmpfs with one mount per controller)",
            fs_type.trim()
        );
    }
    for bin in ["containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip"] {
        run(Command::new("sh").args(["-c", &format!("command -v {bin}")]))
            .with_context(|| format!("`{bin}` is missing: tests/tools/install.sh installs it (apt step)"))?;
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        if !Path::new("/usr/lib/cni").join(plugin).is_file() {
            bail!("CNI plugin /usr/lib/cni/{plugin} is missing: install containernetworking-plugins (tests/tools/install.sh)");
        }
    }
    Ok(())
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.kubelet.take();
        let containers = self.kill_containers();
        self.containerd.take();
        self.unmount_leftovers();
        self.remove_cgroups();
        if self.nat_rule {
            self.remove_nat_rule();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        // libcni caches each attachment's result outside the node's directory: the pod network's
        // under the network's name, the loopback that containerd adds by itself under its own.
        let network = format!("{}-", self.network);
        for e in fs::read_dir("/var/lib/cni/results").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let loopback = containers.iter().any(|id| name == format!("cni-loopback-{id}-lo"));
            if name.starts_with(&network) || loopback {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
