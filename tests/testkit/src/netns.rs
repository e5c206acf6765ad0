//! A test run inside a network namespace of its own, with no way out: its only routes are
//! loopback, whatever the test adds (a [`crate::RealNode`]'s pod network), and a default route
//! into an empty bridge. That route matters: without one the kernel refuses a connection before
//! netfilter sees it, and nothing would be counted. An nftables table drops every packet, sent
//! from the namespace or arriving from a pod, whose destination is not loopback, the pod network
//! (every [`crate::RealNode`]'s subnet) or link-local multicast (the IGMP and MLD reports the kernel
//! sends when an interface comes up),
//! and puts that destination in a set with a counter. A DNS lookup counts too: the nameservers of
//! `/etc/resolv.conf` are such destinations.
//!
//! The test re-runs itself as a child process under `unshare --net --mount` (util-linux), so the
//! namespace, and everything the test starts and mounts in it, disappears with the child. Its
//! mount namespace lets a test give names to addresses without DNS ([`LeakCounter::resolve_locally`]),
//! and its root is made a shared mount there, as a node's is, so that the kubelet can mount host
//! paths into containers with `HostToContainer` propagation:
//!
//! ```ignore
//! #[test]
//! fn offline() {
//!     let Some(leaks) = testkit::netns::isolated("offline") else { return }; // the child passed
//!     // ... the test ...
//!     leaks.assert_none();
//! }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::node::POD_NETWORK;
use crate::proc::run;

/// Set in the child to a file it creates once the namespace is set up: the parent's proof that
/// the child ran the test (a misspelt name would run none, and pass).
const INSIDE: &str = "TESTKIT_ISOLATED_NETNS";
const TABLE: &str = "testkit_leaks";
/// The empty bridge holding the default route.
const NOWHERE: &str = "tknowhere";

/// Runs the test named `test` (its full name, as `cargo test --exact` takes it) again inside a
/// new network namespace and returns None once that run passed; it panics when that run failed.
/// Inside, it sets the namespace up and returns the counter to read at the end.
pub fn isolated(test: &str) -> Option<LeakCounter> {
    if let Some(started) = std::env::var_os(INSIDE) {
        let counter = LeakCounter::set_up().unwrap_or_else(|e| panic!("setting up the network namespace: {e:#}"));
        std::fs::write(&started, test).unwrap_or_else(|e| panic!("writing {started:?}: {e}"));
        return Some(counter);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = dir.path().join("started");
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("unshare")
        .args(["--net", "--mount"])
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(INSIDE, &started)
        .status()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    assert!(status.success(), "{test} failed inside its network namespace ({status}): see its output above");
    assert!(started.exists(), "the test binary has no test named {test}: nothing ran inside the namespace");
    None
}

/// The nftables counter of the namespace.
pub struct LeakCounter {
    nameservers: BTreeSet<String>,
    /// The hosts files [`LeakCounter::resolve_locally`] mounted over /etc/hosts, each over the last.
    hosts: Vec<tempfile::TempDir>,
}

/// What tried to leave: each destination once, and the number of packets dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leaks {
    /// The addresses packets were headed for, each once.
    pub destinations: BTreeSet<String>,
    /// How many packets were dropped on their way out.
    pub packets: u64,
    nameservers: BTreeSet<String>,
}

impl Leaks {
    /// Nothing tried to leave.
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty() && self.packets == 0
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} packets dropped, to:", self.packets)?;
        for d in &self.destinations {
            let dns =
                if self.nameservers.contains(d) { " (a nameserver of /etc/resolv.conf: a DNS lookup)" } else { "" };
            write!(f, "\n  {d}{dns}")?;
        }
        Ok(())
    }
}

impl LeakCounter {
    fn set_up() -> Result<LeakCounter> {
        // unshare execs the test binary, so the parent is the test that started it.
        let namespace = |pid: String| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        if namespace("self".into()) == namespace(std::os::unix::process::parent_id().to_string()) {
            bail!("{INSIDE} is set but this process shares its parent's network namespace");
        }
        // unshare leaves every mount private to the namespace; shared again, but only within it.
        run(Command::new("mount").args(["--make-rshared", "/"]))?;
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", NOWHERE, "type", "bridge"],
            &["link", "set", NOWHERE, "up"],
            &["route", "add", "default", "dev", NOWHERE],
            &["-6", "route", "add", "default", "dev", NOWHERE],
        ] {
            run(Command::new("ip").args(args))?;
        }
        let rules = format!(
            "table inet {TABLE} {{
  set v4 {{ type ipv4_addr; flags dynamic; }}
  set v6 {{ type ipv6_addr; flags dynamic; }}
  counter dropped {{ }}
  chain output {{ type filter hook output priority 0; policy accept; jump check; }}
  chain prerouting {{ type filter hook prerouting priority 0; policy accept; jump check; }}
  chain check {{
    ip daddr {{ 127.0.0.0/8, {POD_NETWORK}, 224.0.0.0/24 }} return
    ip6 daddr {{ ::1, fe80::/10, ff02::/16 }} return
    meta nfproto ipv4 add @v4 {{ ip daddr }} counter name dropped drop
    meta nfproto ipv6 add @v6 {{ ip6 daddr }} counter name dropped drop
  }}
}}
"
        );
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("leaks.nft");
        std::fs::write(&file, rules)?;
        run(Command::new("nft").arg("-f").arg(&file)).context("loading the leak counter (nftables)")?;
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let nameservers =
            resolv.lines().filter_map(|l| l.trim().strip_prefix("nameserver")).map(|s| s.trim().to_string()).collect();
        Ok(LeakCounter { nameservers, hosts: Vec::new() })
    }

    /// Makes `names` resolve to `address` inside the namespace, through `/etc/hosts` as a site's
    /// own name service would answer them (the machine's file is copied, the names added, and the
    /// copy mounted over it in this mount namespace only): a lookup of them never reaches DNS.
    pub fn resolve_locally(&mut self, names: &[&str], address: &str) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("hosts");
        let mut text = std::fs::read_to_string("/etc/hosts").context("reading /etc/hosts")?;
        text.push_str(&format!("{address} {}\n", names.join(" ")));
        std::fs::write(&file, text)?;
        run(Command::new("mount").arg("--bind").arg(&file).arg("/etc/hosts")).context("mounting a hosts file")?;
        self.hosts.push(dir);
        Ok(())
    }

    /// Every destination counted so far.
    pub fn read(&self) -> Result<Leaks> {
        let mut destinations = BTreeSet::new();
        for set in ["v4", "v6"] {
            let out = run(Command::new("nft").args(["-j", "list", "set", "inet", TABLE, set]))?;
            destinations.extend(elements(&out).with_context(|| format!("nft -j list set inet {TABLE} {set}"))?);
        }
        let out = run(Command::new("nft").args(["-j", "list", "counter", "inet", TABLE, "dropped"]))?;
        let doc: Value = serde_json::from_str(&out).context("nft's JSON")?;
        let packets = doc["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|o| o["counter"]["packets"].as_u64())
            .context("nft listed no counter")?;
        Ok(Leaks { destinations, packets, nameservers: self.nameservers.clone() })
    }

    /// Fails naming every destination that something tried to reach.
    pub fn assert_none(&self) {
        let leaks = self.read().unwrap_or_else(|e| panic!("reading the leak counter: {e:#}"));
        assert!(leaks.is_empty(), "something tried to leave the network namespace: {leaks}");
    }

    /// The nameservers of `/etc/resolv.conf`, which a DNS lookup tries to reach.
    pub fn nameservers(&self) -> &BTreeSet<String> {
        &self.nameservers
    }
}

/// The addresses in a set as `nft -j list set` prints it.
fn elements(json: &str) -> Result<Vec<String>> {
    let doc: Value = serde_json::from_str(json)?;
    let set = doc["nftables"].as_array().into_iter().flatten().find_map(|o| o.get("set")).context("no set")?;
    let elems = set.get("elem").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    elems
        .iter()
        .map(|e| match e {
            Value::String(s) => Ok(s.clone()),
            other => other["elem"]["val"].as_str().map(str::to_string).context("an element that is not an address"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_from_nfts_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "v4",
            "table": "testkit_leaks", "type": "ipv4_addr", "elem": ["10.255.255.53", {"elem": {"val": "203.0.113.7"}}]}}]}"#;
        assert_eq!(elements(json).unwrap(), ["10.255.255.53", "203.0.113.7"]);
        let empty = r#"{"nftables": [{"set": {"name": "v6", "type": "ipv6_addr"}}]}"#;
        assert!(elements(empty).unwrap().is_empty());
    }
}
