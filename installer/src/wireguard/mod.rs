//! `airgap site wireguard`: the Wireguard bastion's server configuration and its peers'
//! configurations, generated offline (no network, no `wg` binary) in the folder layout the carried
//! linuxserver/wireguard image reads as its /config. Running it again adds peers and keeps every
//! existing key, address and ledger entry.

mod existing;
mod files;
mod keys;
mod ledger;
mod render;
mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

pub use keys::Key;
pub use settings::{Settings, LISTEN_PORT};

use crate::site::Site;
use existing::{peer_files, peer_name, server_key_paths};
use render::Peer;

/// `site wireguard`: the site, the folder and how many peers it holds afterwards.
#[derive(Debug, Clone)]
pub struct WireguardOptions {
    /// The site file, whose `wireguard:` section is read.
    pub site: PathBuf,
    /// The folder to write; an existing one is added to.
    pub out: PathBuf,
    /// How many peers the folder holds afterwards (existing peers are always kept).
    pub peers: u32,
    /// Print what was written as JSON.
    pub json: bool,
}

/// What [`generate`] wrote and kept, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The folder written (the image's /config).
    pub out: PathBuf,
    /// The server's configuration.
    pub server: ServerReport,
    /// Every peer the folder now holds, kept and added, in order.
    pub peers: Vec<PeerReport>,
    /// How many peers this run added.
    pub added: usize,
}

/// The bastion's side of the tunnel.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// The server's `wg0.conf`.
    pub config: PathBuf,
    /// The server's public key, base64 as `wg pubkey` prints it.
    pub public_key: String,
    /// The server's tunnel address: the tunnel subnet's first host.
    pub address: Ipv4Addr,
    /// `host:port` the peers dial (the site's, not the container's [`LISTEN_PORT`]).
    pub endpoint: String,
    /// The port inside the container ([`LISTEN_PORT`]).
    pub listen_port: u16,
}

/// One peer: a person's or machine's configuration to import.
#[derive(Debug, Serialize)]
pub struct PeerReport {
    /// `peer<N>`, as the image names its folders.
    pub name: String,
    /// The peer's configuration file, to hand to whoever gets it.
    pub config: PathBuf,
    /// The peer's public key, base64.
    pub public_key: String,
    /// The peer's tunnel address.
    pub address: Ipv4Addr,
    /// Who holds the peer, as written in the ledger by hand; empty until someone fills it in.
    pub assigned_to: String,
    /// Whether this run added the peer (false: an earlier run's, kept).
    pub added: bool,
}

/// `airgap site wireguard`: generates (see [`generate`]) and prints a summary or JSON.
pub fn run(opts: &WireguardOptions) -> Result<()> {
    let report = generate(&opts.site, &opts.out, opts.peers)?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let s = &report.server;
    println!("{}: server {} (public key {}), peers dial {}", s.config.display(), s.address, s.public_key, s.endpoint);
    for p in &report.peers {
        let note = if p.added { "added" } else { "kept" };
        println!("  {:<7} {:<15} {} {note}  {}", p.name, p.address, p.public_key, p.assigned_to);
    }
    println!(
        "{} peers, {} added; record who gets each in {}. Starting the bastion: docs/wireguard.md",
        report.peers.len(),
        report.added,
        report.out.join(ledger::FILE).display()
    );
    Ok(())
}

/// Reads the site's `wireguard:` section and whatever an earlier run left in `out`, checks all of
/// it, and only then writes: the server configuration, `peers` peers (more if `out` already
/// holds more) and the ledger.
pub fn generate(site_path: &Path, out: &Path, peers: u32) -> Result<Report> {
    let site = Site::load(site_path)?;
    let settings = Settings::load(&site)?;
    let site_name = site.lookup("installation_name").unwrap_or_else(|_| site_path.display().to_string());

    let mut kept = existing::peers(out)?;
    let server = match existing::server_key(out)? {
        Some(key) => key,
        None if kept.is_empty() => Key::generate_private()?,
        None => bail!(
            "{} is missing but {} peers exist, and each holds its public key: restore it from a backup, or write a new folder",
            server_key_paths(out).0.display(),
            kept.len()
        ),
    };
    check_addresses(out, &settings, &kept)?;
    let ledger_path = out.join(ledger::FILE);
    let assigned = check_ledger(&ledger_path, &kept)?;

    let already: BTreeSet<u32> = kept.keys().copied().collect();
    let taken: BTreeSet<_> = kept.values().map(|p| p.address).collect();
    let mut free = settings.tunnel.hosts().filter(|a| *a != settings.server_address() && !taken.contains(a));
    for number in (1..=peers).filter(|n| !already.contains(n)) {
        let Some(address) = free.next() else {
            bail!(
                "{}: wireguard.tunnel_subnet {} has no address left for {}: use a larger subnet in a new folder",
                site_path.display(),
                settings.tunnel,
                peer_name(number)
            );
        };
        let peer = Peer {
            name: peer_name(number),
            private: Key::generate_private()?,
            preshared: Key::generate_preshared()?,
            address,
        };
        kept.insert(number, peer);
    }

    write(out, &site_name, &settings, &server, &kept, &already, &assigned)?;

    let peers = kept
        .iter()
        .map(|(n, p)| PeerReport {
            name: p.name.clone(),
            config: peer_files(out, &p.name).config,
            public_key: p.private.public().to_string(),
            address: p.address,
            assigned_to: assigned.get(&p.name).cloned().unwrap_or_default(),
            added: !already.contains(n),
        })
        .collect::<Vec<_>>();
    Ok(Report {
        out: out.to_path_buf(),
        server: ServerReport {
            config: out.join("wg_confs/wg0.conf"),
            public_key: server.public().to_string(),
            address: settings.server_address(),
            endpoint: settings.endpoint(),
            listen_port: LISTEN_PORT,
        },
        added: peers.iter().filter(|p| p.added).count(),
        peers,
    })
}

/// Kept addresses must still be in the tunnel subnet, apart from the server's and each other's.
fn check_addresses(out: &Path, settings: &Settings, kept: &BTreeMap<u32, Peer>) -> Result<()> {
    let mut seen: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for p in kept.values() {
        let config = peer_files(out, &p.name).config;
        if !settings.tunnel.contains(&p.address) || p.address == settings.server_address() {
            bail!(
                "{}: Address {} is not a peer address of wireguard.tunnel_subnet {} (the server is {}): \
                 the site's tunnel subnet changed since this folder was written; restore it or write a new folder",
                config.display(),
                p.address,
                settings.tunnel,
                settings.server_address()
            );
        }
        if let Some(other) = seen.insert(p.address, &p.name) {
            bail!("{}: Address {} is also {other}'s: give one of them a free address", config.display(), p.address);
        }
    }
    Ok(())
}

/// The ledger's "assigned to" column by peer, after checking that each listed peer still exists
/// with the key and address the ledger names.
fn check_ledger(path: &Path, kept: &BTreeMap<u32, Peer>) -> Result<BTreeMap<String, String>> {
    let by_name: BTreeMap<&str, &Peer> = kept.values().map(|p| (p.name.as_str(), p)).collect();
    let mut assigned = BTreeMap::new();
    for (name, (line, row)) in ledger::read(path)? {
        let at = format!("{}:{line}", path.display());
        let Some(peer) = by_name.get(name.as_str()) else {
            bail!("{at}: {name} is listed but its folder is gone: restore it from a backup, or delete the line if {name} was revoked");
        };
        if row.public_key != peer.private.public().to_string() || row.address != peer.address.to_string() {
            bail!(
                "{at}: {name} is listed with key {} and address {}, but its files hold {} and {}: fix the line or restore the files",
                row.public_key,
                row.address,
                peer.private.public(),
                peer.address
            );
        }
        assigned.insert(name, row.assigned_to);
    }
    Ok(assigned)
}

fn write(
    out: &Path,
    site_name: &str,
    settings: &Settings,
    server: &Key,
    peers: &BTreeMap<u32, Peer>,
    already: &BTreeSet<u32>,
    assigned: &BTreeMap<String, String>,
) -> Result<()> {
    files::private_dir(out)?;
    let (server_private, server_public) = server_key_paths(out);
    files::private_dir(server_private.parent().unwrap_or(out))?;
    if server_private.exists() {
        files::tighten(&server_private)?;
    } else {
        files::write_private(&server_private, format!("{server}\n").as_bytes())?;
    }
    files::write_private(&server_public, format!("{}\n", server.public()).as_bytes())?;

    let server_public_key = server.public();
    let list: Vec<&Peer> = peers.values().collect();
    for (number, p) in peers {
        let f = peer_files(out, &p.name);
        files::private_dir(&f.dir)?;
        if already.contains(number) {
            files::tighten(&f.private)?;
            files::tighten(&f.preshared)?;
        } else {
            files::write_private(&f.private, format!("{}\n", p.private).as_bytes())?;
            files::write_private(&f.public, format!("{}\n", p.private.public()).as_bytes())?;
            files::write_private(&f.preshared, format!("{}\n", p.preshared).as_bytes())?;
        }
        files::write_private(&f.config, render::peer(site_name, settings, &server_public_key, p).as_bytes())?;
    }
    let confs = out.join("wg_confs");
    files::private_dir(&confs)?;
    files::write_private(&confs.join("wg0.conf"), render::server(site_name, settings, server, &list).as_bytes())?;

    let rows: Vec<ledger::Row> = peers
        .values()
        .map(|p| ledger::Row {
            peer: p.name.clone(),
            public_key: p.private.public().to_string(),
            address: p.address.to_string(),
            assigned_to: assigned.get(&p.name).cloned().unwrap_or_default(),
        })
        .collect();
    files::write_private(&out.join(ledger::FILE), ledger::render(site_name, &rows).as_bytes())
}
