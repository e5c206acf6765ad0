//! The text of the server and peer configurations, in wg-quick's format (what the
//! linuxserver/wireguard image brings up, and what a peer imports as /etc/wireguard/wg0.conf).

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::keys::Key;
use super::settings::{Settings, LISTEN_PORT};

pub struct Peer {
    pub name: String,
    pub private: Key,
    pub preshared: Key,
    pub address: Ipv4Addr,
}

/// The bastion: forwards and masquerades what peers send, so the internal load balancers answer
/// the bastion's own private address and need no route back into the tunnel (as the image's
/// own server template does).
pub fn server(site_name: &str, settings: &Settings, private: &Key, peers: &[&Peer]) -> String {
    let mut out = format!(
        "# Wireguard bastion of {site_name}, written by `airgap site wireguard`.\n\
         # linuxserver/wireguard brings it up from /config/wg_confs/wg0.conf (client mode: no PEERS).\n\
         [Interface]\n\
         Address = {}/{}\n\
         ListenPort = {LISTEN_PORT}\n\
         PrivateKey = {private}\n\
         PostUp = iptables -A FORWARD -i %i -j ACCEPT; iptables -A FORWARD -o %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE\n\
         PostDown = iptables -D FORWARD -i %i -j ACCEPT; iptables -D FORWARD -o %i -j ACCEPT; iptables -t nat -D POSTROUTING -o eth+ -j MASQUERADE\n",
        settings.server_address(),
        settings.tunnel.prefix_len(),
    );
    for p in peers {
        let _ = write!(
            out,
            "\n[Peer]\n# {}\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = {}/32\n",
            p.name,
            p.private.public(),
            p.preshared,
            p.address
        );
    }
    out
}

/// A peer: routes only the bastion's tunnel address and the site's internal subnets through the
/// tunnel, and sets no DNS server (the guide deletes the DNS line: peers keep their own resolver).
pub fn peer(site_name: &str, settings: &Settings, server_public: &Key, peer: &Peer) -> String {
    let mut allowed = vec![format!("{}/32", settings.server_address())];
    allowed.extend(settings.internal.iter().map(|n| n.to_string()));
    format!(
        "# {} of {site_name}, written by `airgap site wireguard`: import it as /etc/wireguard/wg0.conf.\n\
         [Interface]\n\
         Address = {}/32\n\
         PrivateKey = {}\n\
         \n\
         [Peer]\n\
         PublicKey = {server_public}\n\
         PresharedKey = {}\n\
         Endpoint = {}\n\
         AllowedIPs = {}\n",
        peer.name,
        peer.address,
        peer.private,
        peer.preshared,
        settings.endpoint(),
        allowed.join(", "),
    )
}
