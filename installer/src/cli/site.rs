//! `airgap site wireguard`: the Wireguard bastion's configurations.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::wireguard::{self, WireguardOptions};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  airgap site wireguard --site site.yaml --out /srv/wireguard/config --peers 30
  airgap site wireguard --site site.yaml --out /srv/wireguard/config --peers 40 --json   # adds 10, keeps the 30

Then on the bastion (docs/wireguard.md):
  docker run -d --name wireguard --cap-add NET_ADMIN -p 51820:51820/udp \\
    --sysctl net.ipv4.ip_forward=1 -v /srv/wireguard/config:/config \\
    registry.site.local:5000/ghcr.io/linuxserver/wireguard:<tag from the bundle>")]
/// What `airgap site wireguard` is given.
pub struct WireguardArgs {
    /// The site file; its `wireguard:` section gives the endpoint, port, tunnel and internal subnets.
    #[arg(long)]
    pub site: PathBuf,
    /// The folder to write, mounted as the image's /config; an existing one is added to.
    #[arg(long)]
    pub out: PathBuf,
    /// How many peers the folder holds afterwards (the guide's PEERS=30); existing peers are
    /// always kept, so this only ever adds.
    #[arg(long, default_value_t = 30)]
    pub peers: u32,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

impl WireguardArgs {
    /// `airgap site wireguard`.
    pub fn run(self) -> Result<()> {
        let WireguardArgs { site, out, peers, json } = self;
        wireguard::run(&WireguardOptions { site, out, peers, json })
    }
}
