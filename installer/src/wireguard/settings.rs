//! The `wireguard:` section of the site file, checked before anything is written.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Result};
use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

use crate::site::Site;

/// The port the carried image listens on inside its container; the site's `port` is what peers
/// dial, which the firewall (or `docker run -p PORT:51820/udp`) forwards here.
pub const LISTEN_PORT: u16 = 51820;

const EXAMPLE: &str = "manifests/mosip-1.2.0.1-B2/site.example.yaml";

/// The site file's `wireguard:` section, checked (see [`Settings::load`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bastion's public name or address that peers dial, without the port.
    pub endpoint: String,
    /// The UDP port peers dial; default [`LISTEN_PORT`].
    pub port: u16,
    /// The IPv4 subnet inside the tunnel, truncated to its network; the server takes its first host.
    pub tunnel: Ipv4Net,
    /// The site's subnets peers reach through the bastion (their `AllowedIPs`); none overlaps `tunnel`.
    pub internal: Vec<IpNet>,
}

impl Settings {
    /// `host:port` as a peer's `Endpoint` line needs it (an IPv6 address in brackets).
    pub fn endpoint(&self) -> String {
        match self.endpoint.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
            _ => format!("{}:{}", self.endpoint, self.port),
        }
    }

    /// The server's tunnel address: the subnet's first host.
    pub fn server_address(&self) -> Ipv4Addr {
        self.tunnel.hosts().next().unwrap_or(self.tunnel.addr())
    }

    /// Reads and checks the section; fails naming the site file and the field when one is missing or a subnet overlaps.
    pub fn load(site: &Site) -> Result<Settings> {
        let file = site.path().display();
        let Some(section) = site.view::<View>()?.wireguard else {
            bail!("{file}: no `wireguard:` section; add one as {EXAMPLE} shows (endpoint, port, tunnel_subnet, internal_subnets)");
        };
        let missing =
            |field: &str, what: &str| anyhow::anyhow!("{file}: wireguard.{field} is missing: {what} (see {EXAMPLE})");
        let endpoint = section
            .endpoint
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| missing("endpoint", "the bastion's public name or address that peers dial"))?;
        let tunnel = section
            .tunnel_subnet
            .ok_or_else(|| missing("tunnel_subnet", "the IPv4 subnet inside the tunnel, e.g. 10.13.13.0/24"))?;
        let internal = section.internal_subnets.filter(|s| !s.is_empty()).ok_or_else(|| {
            missing("internal_subnets", "the list of internal subnets peers reach through the bastion")
        })?;
        let port = section.port.unwrap_or(LISTEN_PORT);
        if port == 0 {
            bail!("{file}: wireguard.port is 0: give the UDP port peers dial ({LISTEN_PORT} in the guide)");
        }
        if tunnel.prefix_len() > 30 {
            bail!("{file}: wireguard.tunnel_subnet {tunnel} has room for no peer: use a /30 or larger, e.g. /24");
        }
        let tunnel = tunnel.trunc();
        if let Some(clash) = internal.iter().find(|n| overlaps(n, &IpNet::V4(tunnel))) {
            bail!("{file}: wireguard.tunnel_subnet {tunnel} overlaps internal subnet {clash}: choose a tunnel subnet used nowhere on site");
        }
        Ok(Settings { endpoint: endpoint.trim().to_string(), port, tunnel, internal })
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[derive(Deserialize)]
struct View {
    wireguard: Option<Section>,
}

#[derive(Deserialize)]
struct Section {
    endpoint: Option<String>,
    port: Option<u16>,
    tunnel_subnet: Option<Ipv4Net>,
    internal_subnets: Option<Vec<IpNet>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(yaml: &str) -> Result<Settings> {
        Settings::load(&Site::parse(Path::new("/s/site.yaml"), yaml)?)
    }

    #[test]
    fn reads_checks_and_names_the_field() {
        let s = load(
            "wireguard: {endpoint: vpn.example.net, tunnel_subnet: 10.13.13.7/24, internal_subnets: [10.10.20.0/23]}",
        )
        .unwrap();
        assert_eq!((s.endpoint(), s.tunnel.to_string()), ("vpn.example.net:51820".into(), "10.13.13.0/24".into()));
        assert_eq!(s.server_address(), Ipv4Addr::new(10, 13, 13, 1));
        let v6 = load("wireguard: {endpoint: '2001:db8::1', port: 443, tunnel_subnet: 10.1.0.0/30, internal_subnets: [fd00::/64]}");
        assert_eq!(v6.unwrap().endpoint(), "[2001:db8::1]:443");
        let err = |yaml: &str| load(yaml).unwrap_err().to_string();
        assert!(err("domains: {}").contains("/s/site.yaml: no `wireguard:` section"));
        let e = err("wireguard: {tunnel_subnet: 10.13.13.0/24, internal_subnets: [10.0.0.0/8]}");
        assert!(e.contains("/s/site.yaml: wireguard.endpoint is missing"), "{e}");
        assert!(err("wireguard: {endpoint: a, internal_subnets: [10.0.0.0/8]}")
            .contains("wireguard.tunnel_subnet is missing"));
        assert!(err("wireguard: {endpoint: a, tunnel_subnet: 10.13.13.0/24, internal_subnets: []}")
            .contains("wireguard.internal_subnets is missing"));
        assert!(err("wireguard: {endpoint: a, tunnel_subnet: 10.0.0.0/31, internal_subnets: [10.9.0.0/16]}")
            .contains("/30"));
        assert!(err("wireguard: {endpoint: a, tunnel_subnet: 10.1.2.0/24, internal_subnets: [10.0.0.0/8]}")
            .contains("overlaps"));
        assert!(err("wireguard: {endpoint: a, tunnel_subnet: nonsense, internal_subnets: [10.0.0.0/8]}")
            .contains("/s/site.yaml"));
    }
}
