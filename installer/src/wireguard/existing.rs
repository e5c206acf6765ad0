//! What an earlier run left in the folder, read back so a new run keeps every key and address.
//! The layout is the image's own (`server/`, `peer<N>/`), so a folder it generated reads too.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::keys::Key;
use super::render::Peer;

pub fn server_key_paths(out: &Path) -> (PathBuf, PathBuf) {
    let dir = out.join("server");
    (dir.join("privatekey-server"), dir.join("publickey-server"))
}

pub struct PeerFiles {
    pub dir: PathBuf,
    pub private: PathBuf,
    pub public: PathBuf,
    pub preshared: PathBuf,
    pub config: PathBuf,
}

pub fn peer_files(out: &Path, name: &str) -> PeerFiles {
    let dir = out.join(name);
    PeerFiles {
        private: dir.join(format!("privatekey-{name}")),
        public: dir.join(format!("publickey-{name}")),
        preshared: dir.join(format!("presharedkey-{name}")),
        config: dir.join(format!("{name}.conf")),
        dir,
    }
}

pub fn peer_name(number: u32) -> String {
    format!("peer{number}")
}

/// The server's key, if an earlier run wrote one.
pub fn server_key(out: &Path) -> Result<Option<Key>> {
    let (private, public) = server_key_paths(out);
    if !private.exists() {
        return Ok(None);
    }
    Key::read_pair(&private, &public).map(Some)
}

/// Every `peer<N>/` folder in `out`, by number.
pub fn peers(out: &Path) -> Result<BTreeMap<u32, Peer>> {
    let mut found = BTreeMap::new();
    let entries = match std::fs::read_dir(out) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", out.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name.strip_prefix("peer").and_then(|n| n.parse::<u32>().ok()) else { continue };
        if number == 0 || peer_name(number) != name || !entry.path().is_dir() {
            continue;
        }
        let files = peer_files(out, &name);
        let private = Key::read_pair(&files.private, &files.public)?;
        let preshared = Key::read(&files.preshared)?;
        let address = address_of(&files.config)?;
        found.insert(number, Peer { name, private, preshared, address });
    }
    Ok(found)
}

/// The IPv4 `Address` of a configuration's `[Interface]` section.
pub fn address_of(config: &Path) -> Result<Ipv4Addr> {
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let mut section = "";
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        if section.eq_ignore_ascii_case("[Interface]") && key.trim().eq_ignore_ascii_case("Address") {
            return value
                .split(',')
                .map(|a| a.trim().split('/').next().unwrap_or_default())
                .find_map(|a| a.parse::<Ipv4Addr>().ok())
                .ok_or_else(|| {
                    anyhow!(
                        "{}:{}: no IPv4 address in {value:?}: restore the file from a backup",
                        config.display(),
                        i + 1
                    )
                });
        }
    }
    bail!("{}: no Address in its [Interface] section: restore the file from a backup", config.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interface_address_only() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("peer1.conf");
        std::fs::write(
            &conf,
            "[Interface]\n# Address = 1.1.1.1\naddress = fd00::2/128, 10.13.13.2/32\n[Peer]\nAddress = 9.9.9.9\n",
        )
        .unwrap();
        assert_eq!(address_of(&conf).unwrap(), Ipv4Addr::new(10, 13, 13, 2));
        std::fs::write(&conf, "[Interface]\nAddress = 10.13.13.x\n").unwrap();
        assert!(address_of(&conf).unwrap_err().to_string().contains("peer1.conf:2: no IPv4 address"));
        std::fs::write(&conf, "[Peer]\nAddress = 10.0.0.1\n").unwrap();
        assert!(address_of(&conf).unwrap_err().to_string().contains("no Address in its [Interface]"));
    }
}
