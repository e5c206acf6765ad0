//! `airgap site wireguard` against the real Wireguard tools (Debian's wireguard-tools): every
//! key it writes is checked with `wg pubkey`, every configuration with `wg-quick strip`, and a
//! server and a peer are brought up from the generated files in network namespaces and a request
//! crosses the tunnel to a host on the internal subnet behind the bastion. That last test needs
//! root, network namespaces and a Wireguard interface (the kernel's, or wireguard-go from
//! tests/tools/install.sh with /dev/net/tun), and fails naming whichever is missing. Site files
//! are written by the tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use installer::wireguard::{generate, Report};

const INTERNAL: &str = "10.10.20.0/23";

fn site(dir: &Path, wireguard: &str) -> PathBuf {
    let path = dir.join("site.yaml");
    std::fs::write(&path, format!("installation_name: testsite\nwireguard:\n{wireguard}")).unwrap();
    path
}

fn good_site(dir: &Path, endpoint: &str) -> PathBuf {
    site(
        dir,
        &format!(
            "  endpoint: {endpoint}\n  port: 51820\n  tunnel_subnet: 10.13.13.0/24\n  internal_subnets: [{INTERNAL}]\n"
        ),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn trimmed(path: &Path) -> String {
    read(path).trim().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every key of every section, lowercased, as wg-quick reads them: comments and values (where a
/// random key may hold any letters) left aside.
fn keys(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_ascii_lowercase())
        .collect()
}

/// `key = value` lines of one section (`[Interface]`, or the `[Peer]` whose comment or key is
/// given), as wg-quick reads them.
fn section(conf: &str, header: &str, marker: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for block in conf.split('[').skip(1) {
        if !block.starts_with(&header[1..]) || marker.is_some_and(|m| !block.contains(m)) {
            continue;
        }
        for line in block.lines().skip(1) {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

fn wg_pubkey(private: &Path) -> String {
    let out = Command::new("wg")
        .arg("pubkey")
        .stdin(std::fs::File::open(private).unwrap())
        .output()
        .expect("wg (Debian's wireguard-tools) must be installed: tests/tools/install.sh installs it");
    assert!(out.status.success(), "wg pubkey < {}: {}", private.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn wg_quick_strip(conf: &Path) -> String {
    let out = Command::new("wg-quick").arg("strip").arg(conf).output().expect("wg-quick must be installed");
    assert!(out.status.success(), "wg-quick strip {}: {}", conf.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Everything the real tools can say about a generated folder without a Wireguard interface.
fn check_with_wg(out: &Path, report: &Report, endpoint: &str) {
    assert_eq!(mode(out), 0o700);
    let server_conf_path = out.join("wg_confs/wg0.conf");
    let server_conf = read(&server_conf_path);
    let server_public = wg_pubkey(&out.join("server/privatekey-server"));
    assert_eq!(server_public, trimmed(&out.join("server/publickey-server")));
    assert_eq!(server_public, report.server.public_key);
    assert_eq!(section(&server_conf, "[Interface]", None)["ListenPort"], "51820");
    let stripped = wg_quick_strip(&server_conf_path);
    let stripped_keys = keys(&stripped);
    assert!(!stripped_keys.iter().any(|k| k == "address" || k == "postup"), "{stripped}");
    assert_eq!(section(&stripped, "[Interface]", None)["ListenPort"], "51820");
    for f in ["server/privatekey-server", "wg_confs/wg0.conf", "assigned.txt"] {
        assert_eq!(mode(&out.join(f)), 0o600, "{f}");
    }
    let ledger = read(&out.join("assigned.txt"));
    for p in &report.peers {
        let dir = out.join(&p.name);
        let conf_path = dir.join(format!("{}.conf", p.name));
        let conf = read(&conf_path);
        let private = dir.join(format!("privatekey-{}", p.name));
        let public = wg_pubkey(&private);
        assert_eq!(public, trimmed(&dir.join(format!("publickey-{}", p.name))));
        assert_eq!(public, p.public_key);
        assert_eq!(mode(&dir), 0o700);
        for f in [&private, &dir.join(format!("presharedkey-{}", p.name)), &conf_path] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        // The server lists the peer under the public key of the peer's private key, with the
        // same preshared key, and the peer names the server by the server's public key.
        let on_server = section(&server_conf, "[Peer]", Some(&format!("# {}\n", p.name)));
        assert_eq!(on_server["PublicKey"], public, "{}", p.name);
        assert_eq!(on_server["AllowedIPs"], format!("{}/32", p.address));
        let iface = section(&conf, "[Interface]", None);
        let peer = section(&conf, "[Peer]", None);
        assert_eq!(iface["Address"], format!("{}/32", p.address));
        assert_eq!(peer["PublicKey"], server_public);
        assert_eq!(peer["PresharedKey"], on_server["PresharedKey"]);
        assert_eq!(peer["PresharedKey"], trimmed(&dir.join(format!("presharedkey-{}", p.name))));
        assert_eq!(peer["Endpoint"], format!("{endpoint}:51820"));
        assert_eq!(peer["AllowedIPs"], format!("10.13.13.1/32, {INTERNAL}"));
        assert!(!keys(&conf).iter().any(|k| k == "dns"), "{} has a DNS line:\n{conf}", p.name);
        let stripped = wg_quick_strip(&conf_path);
        assert_eq!(section(&stripped, "[Interface]", None)["PrivateKey"], trimmed(&private));
        assert!(!keys(&stripped).iter().any(|k| k == "address"), "{stripped}");
        assert!(
            ledger.lines().any(|l| l.split_whitespace().take(3).eq([p.name.as_str(), &public, &p.address.to_string()])),
            "{} missing from assigned.txt:\n{ledger}",
            p.name
        );
    }
}

#[test]
fn generated_files_parse_with_the_real_wg_tools() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config");
    let report = generate(&good_site(dir.path(), "vpn.testsite.example"), &out, 3).unwrap();
    assert_eq!(report.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["peer1", "peer2", "peer3"]);
    assert_eq!(
        report.peers.iter().map(|p| p.address.to_string()).collect::<Vec<_>>(),
        ["10.13.13.2", "10.13.13.3", "10.13.13.4"]
    );
    assert_eq!(report.added, 3);
    check_with_wg(&out, &report, "vpn.testsite.example");
}

/// Every key file and every address, by path.
fn keys_and_addresses(out: &Path, report: &Report) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for f in ["server/privatekey-server", "server/publickey-server"] {
        all.insert(f.to_string(), read(&out.join(f)));
    }
    for p in &report.peers {
        for kind in ["privatekey", "publickey", "presharedkey"] {
            let f = format!("{0}/{kind}-{0}", p.name);
            all.insert(f.clone(), read(&out.join(&f)));
        }
        all.insert(format!("{} address", p.name), p.address.to_string());
    }
    all
}

#[test]
fn running_again_with_more_peers_keeps_every_key_and_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let site = good_site(dir.path(), "192.0.2.1");
    let out = dir.path().join("config");
    let first = generate(&site, &out, 2).unwrap();
    let before = keys_and_addresses(&out, &first);

    // The operator records who holds peer2.
    let ledger_path = out.join("assigned.txt");
    let ledger = read(&ledger_path);
    let line = ledger.lines().find(|l| l.starts_with("peer2 ")).unwrap();
    std::fs::write(&ledger_path, ledger.replace(line, &format!("{line} Ana Diaz (ops laptop)"))).unwrap();

    let second = generate(&site, &out, 4).unwrap();
    assert_eq!(second.added, 2);
    assert_eq!(second.server.public_key, first.server.public_key);
    let after = keys_and_addresses(&out, &second);
    for (file, content) in &before {
        assert_eq!(&after[file], content, "{file} changed on the second run");
    }
    let new: Vec<_> =
        second.peers.iter().filter(|p| p.added).map(|p| (p.name.as_str(), p.address.to_string())).collect();
    assert_eq!(new, [("peer3", "10.13.13.4".to_string()), ("peer4", "10.13.13.5".to_string())]);
    assert_ne!(after["peer3/privatekey-peer3"], after["peer4/privatekey-peer4"]);
    assert_eq!(second.peers[1].assigned_to, "Ana Diaz (ops laptop)");
    assert!(read(&ledger_path).lines().any(|l| l.starts_with("peer2 ") && l.ends_with(" Ana Diaz (ops laptop)")));
    check_with_wg(&out, &second, "192.0.2.1");

    // Fewer peers than exist removes nothing.
    assert_eq!(generate(&site, &out, 1).unwrap().peers.len(), 4);
    assert_eq!(keys_and_addresses(&out, &second), after);
}

#[test]
fn malformed_existing_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let site = good_site(dir.path(), "192.0.2.1");
    let out = dir.path().join("config");
    generate(&site, &out, 2).unwrap();
    let err = |out: &Path| generate(&site, out, 3).unwrap_err().to_string();

    let key = out.join("peer1/privatekey-peer1");
    let good = read(&key);
    std::fs::write(&key, "not a key\n").unwrap();
    let e = err(&out);
    assert!(e.contains(&key.display().to_string()) && e.contains("not a Wireguard key"), "{e}");
    std::fs::write(&key, &good).unwrap();

    let conf = out.join("peer2/peer2.conf");
    let good = read(&conf);
    std::fs::write(&conf, good.replace("Address = 10.13.13.3/32", "Address = ten")).unwrap();
    let e = err(&out);
    assert!(e.contains(&format!("{}:3: no IPv4 address", conf.display())), "{e}");
    std::fs::write(&conf, &good).unwrap();

    let ledger = out.join("assigned.txt");
    let good = read(&ledger);
    std::fs::write(&ledger, format!("{good}peer9 AAAA 10.13.13.9\n")).unwrap();
    let e = err(&out);
    assert!(
        e.contains(&format!("{}:", ledger.display())) && e.contains("peer9 is listed but its folder is gone"),
        "{e}"
    );
    std::fs::write(&ledger, &good).unwrap();

    std::fs::remove_file(out.join("server/privatekey-server")).unwrap();
    assert!(err(&out).contains("privatekey-server is missing but 2 peers exist"));
    // Nothing was added by the refused runs.
    assert!(!out.join("peer3").exists());
}

#[test]
fn a_site_without_the_needed_fields_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config");
    let cases = [
        (
            "  port: 51820\n  tunnel_subnet: 10.13.13.0/24\n  internal_subnets: [10.10.20.0/23]\n",
            "wireguard.endpoint is missing",
        ),
        ("  endpoint: vpn.example\n  internal_subnets: [10.10.20.0/23]\n", "wireguard.tunnel_subnet is missing"),
        ("  endpoint: vpn.example\n  tunnel_subnet: 10.13.13.0/24\n", "wireguard.internal_subnets is missing"),
        ("  endpoint: vpn.example\n  tunnel_subnet: 10.13.13/24\n  internal_subnets: [10.10.20.0/23]\n", "invalid IP"),
    ];
    for (section, expected) in cases {
        let path = site(dir.path(), section);
        let e = format!("{:#}", generate(&path, &out, 1).unwrap_err());
        assert!(e.contains(&path.display().to_string()) && e.contains(expected), "{expected}: {e}");
    }
    let path = dir.path().join("bare.yaml");
    std::fs::write(&path, "installation_name: x\n").unwrap();
    let e = generate(&path, &out, 1).unwrap_err().to_string();
    assert!(e.contains(&format!("{}: no `wireguard:` section", path.display())), "{e}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

// ---- The tunnel, in network namespaces ----

/// Network namespaces and the userspace Wireguard processes in them, removed on drop, so a failing
/// assertion leaves nothing behind.
struct Netns {
    names: Vec<String>,
    daemons: Vec<Child>,
    sockets: Vec<PathBuf>,
}

impl Netns {
    fn create(names: &[String]) -> Result<Netns, String> {
        let mut made = Netns { names: Vec::new(), daemons: Vec::new(), sockets: Vec::new() };
        for n in names {
            sh(&["ip", "netns", "add", n])?;
            made.names.push(n.clone());
        }
        Ok(made)
    }
}

impl Netns {
    /// An HTTP server in `ns` on `addr`:8080, stopped on drop.
    fn listen(&mut self, ns: &str, addr: &str) -> Result<(), String> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-m", "http.server", "8080", "--bind", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3 -m http.server in {ns}: {e}"))?;
        self.daemons.push(child);
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        // A killed wireguard-go leaves its control socket behind.
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    sh(&[&["ip", "netns", "exec", ns], args].concat())
}

/// How this machine makes a Wireguard interface: the kernel's, or else wireguard-go (userspace,
/// through /dev/net/tun), which `testkit::tool` finds or names as missing.
enum Wireguard {
    Kernel,
    Userspace(PathBuf),
}

/// Panics, naming what is missing, when neither way works here.
fn wireguard_here(probe_ns: &str) -> Wireguard {
    let kernel = sh(&["ip", "-n", probe_ns, "link", "add", "wg-test", "type", "wireguard"]);
    let Err(refused) = kernel else { return Wireguard::Kernel };
    let modprobe = match sh(&["modprobe", "wireguard"]) {
        Ok(_) => "modprobe wireguard succeeded".to_string(),
        Err(e) => e,
    };
    eprintln!("the kernel refused a Wireguard interface: {refused} ({modprobe}); using wireguard-go (userspace)");
    let bin = testkit::tool("wireguard-go");
    assert!(
        Path::new("/dev/net/tun").exists(),
        "this test needs a Wireguard interface: the kernel refused one ({refused}) and wireguard-go needs \
         /dev/net/tun, which this machine lacks"
    );
    Wireguard::Userspace(bin)
}

/// Brings up `iface` in `ns` from a generated configuration, as wg-quick would: the stripped
/// configuration through `wg setconf`, then the address, the link and a route per AllowedIPs.
fn bring_up(
    kind: &Wireguard,
    guard: &mut Netns,
    ns: &str,
    iface: &str,
    conf: &Path,
    address: &str,
    routes: &[&str],
) -> Result<(), String> {
    match kind {
        Wireguard::Kernel => {
            in_ns(ns, &["ip", "link", "add", iface, "type", "wireguard"])?;
        }
        Wireguard::Userspace(bin) => {
            let child = Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(bin)
                .args(["-f", iface])
                .env("WG_PROCESS_FOREGROUND", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            guard.daemons.push(child);
            let sock = format!("/var/run/wireguard/{iface}.sock");
            guard.sockets.push(PathBuf::from(&sock));
            for _ in 0..100 {
                if Path::new(&sock).exists() && in_ns(ns, &["ip", "link", "show", iface]).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let stripped = sh(&["wg-quick", "strip", &conf.display().to_string()])?;
    let mut setconf = Command::new("ip")
        .args(["netns", "exec", ns, "wg", "setconf", iface, "/dev/stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    setconf.stdin.take().unwrap().write_all(stripped.as_bytes()).map_err(|e| e.to_string())?;
    let done = setconf.wait_with_output().map_err(|e| e.to_string())?;
    if !done.status.success() {
        return Err(format!("wg setconf {iface} from {}: {}", conf.display(), String::from_utf8_lossy(&done.stderr)));
    }
    in_ns(ns, &["ip", "address", "add", address, "dev", iface])?;
    in_ns(ns, &["ip", "link", "set", iface, "up"])?;
    for net in routes {
        in_ns(ns, &["ip", "route", "replace", net, "dev", iface])?;
    }
    Ok(())
}

#[test]
fn a_request_crosses_the_tunnel_between_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config");
    // The bastion's public side is 192.0.2.1 on a veth pair; the internal subnet is behind it.
    let report = generate(&good_site(dir.path(), "192.0.2.1"), &out, 2).unwrap();
    check_with_wg(&out, &report, "192.0.2.1");

    let tag = format!("agwg{}", std::process::id());
    let [server, peer, lan] = ["srv", "peer", "lan"].map(|r| format!("{tag}-{r}"));
    // Userspace Wireguard's control sockets are shared by all namespaces: names unique to this run.
    let [wgs, wgp] = ["wgs", "wgp"].map(|r| format!("{r}{}", std::process::id()));
    let mut guard = Netns::create(&[server.clone(), peer.clone(), lan.clone()])
        .unwrap_or_else(|e| panic!("this test needs root and network namespaces (`ip netns add`): {e}"));
    let kind = wireguard_here(&server);
    let _ = sh(&["ip", "-n", &server, "link", "del", "wg-test"]);
    let result = (|| -> Result<(), String> {
        sh(&["ip", "link", "add", "u0", "netns", &server, "type", "veth", "peer", "name", "u1", "netns", &peer])?;
        sh(&["ip", "link", "add", "l0", "netns", &server, "type", "veth", "peer", "name", "l1", "netns", &lan])?;
        for (ns, dev, addr) in [
            (&server, "u0", "192.0.2.1/24"),
            (&peer, "u1", "192.0.2.2/24"),
            (&server, "l0", "10.10.20.1/23"),
            (&lan, "l1", "10.10.21.10/23"),
        ] {
            in_ns(ns, &["ip", "address", "add", addr, "dev", dev])?;
            in_ns(ns, &["ip", "link", "set", dev, "up"])?;
            in_ns(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        // The container masquerades (PostUp); here the internal host routes the tunnel back instead,
        // so the test needs no iptables.
        in_ns(&lan, &["ip", "route", "add", "10.13.13.0/24", "via", "10.10.20.1"])?;
        in_ns(&server, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        // The server's /24 address routes its peers; a peer routes what its AllowedIPs name.
        let peer_conf = out.join("peer1/peer1.conf");
        let allowed = section(&read(&peer_conf), "[Peer]", None)["AllowedIPs"].clone();
        let routes: Vec<&str> = allowed.split(", ").collect();
        bring_up(&kind, &mut guard, &server, &wgs, &out.join("wg_confs/wg0.conf"), "10.13.13.1/24", &[])?;
        bring_up(&kind, &mut guard, &peer, &wgp, &peer_conf, "10.13.13.2/32", &routes)?;
        // No ping on the test machines: an HTTP request through the tunnel to a listener on the
        // bastion's tunnel address, and one on the internal host behind it.
        for (ns, addr) in [(&server, "10.13.13.1"), (&lan, "10.10.21.10")] {
            guard.listen(ns, addr)?;
        }
        for addr in ["10.13.13.1", "10.10.21.10"] {
            let url = format!("http://{addr}:8080/");
            let reached = (0..20).any(|_| {
                in_ns(&peer, &["curl", "-sf", "--max-time", "3", &url]).is_ok()
                    || (std::thread::sleep(Duration::from_millis(250)), false).1
            });
            if !reached {
                return Err(format!("{url} is out of reach through the tunnel from {peer}"));
            }
        }
        let handshakes = in_ns(&server, &["wg", "show", &wgs, "latest-handshakes"])?;
        let peer1 = &report.peers[0].public_key;
        let shook = handshakes.lines().any(|l| l.starts_with(peer1.as_str()) && !l.ends_with("\t0"));
        if !shook {
            return Err(format!("the server shows no handshake with peer1:\n{handshakes}"));
        }
        // peer2 never connected: its keys must not have been used for peer1's traffic.
        let peer2 = &report.peers[1].public_key;
        if !handshakes.lines().any(|l| l.starts_with(peer2.as_str()) && l.ends_with("\t0")) {
            return Err(format!("peer2 shows a handshake it never made:\n{handshakes}"));
        }
        Ok(())
    })();
    drop(guard);
    if let Err(e) = result {
        panic!("tunnel between namespaces: {e}");
    }
}
