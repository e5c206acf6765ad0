//! `assigned.txt`: which peer configuration went to whom. The operator fills in the last column;
//! every run keeps what is written there and checks the rest against the keys on disk.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub const FILE: &str = "assigned.txt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub peer: String,
    pub public_key: String,
    pub address: String,
    pub assigned_to: String,
}

/// The rows of an existing ledger by peer name; no file is an empty ledger.
pub fn read(path: &Path) -> Result<BTreeMap<String, (usize, Row)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (peer, rest) = word(line);
        let (public_key, rest) = word(rest);
        let (address, rest) = word(rest);
        if address.is_empty() {
            bail!(
                "{}:{n}: a ledger line is `peer public-key address [assigned to]`, found {line:?}: fix the line",
                path.display()
            );
        }
        let row = Row {
            peer: peer.into(),
            public_key: public_key.into(),
            address: address.into(),
            assigned_to: rest.trim().into(),
        };
        if let Some((first, _)) = rows.insert(row.peer.clone(), (n, row)) {
            bail!("{}:{n}: {peer} is listed again (first on line {first}): keep one line per peer", path.display());
        }
    }
    Ok(rows)
}

fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    s.split_once(char::is_whitespace).unwrap_or((s, ""))
}

pub fn render(site_name: &str, rows: &[Row]) -> String {
    let mut out = format!(
        "# Wireguard peers of {site_name}. Write who holds each peer configuration in the last column;\n\
         # `airgap site wireguard` keeps it on every run. Lines starting with # are rewritten.\n"
    );
    let width = rows.iter().map(|r| r.peer.len()).max().unwrap_or(0).max("# peer".len());
    out.push_str(&format!("{:<width$} {:<44} {:<15} assigned to\n", "# peer", "public key", "address"));
    for r in rows {
        let line = format!("{:<width$} {:<44} {:<15} {}", r.peer, r.public_key, r.address, r.assigned_to);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let rows = vec![
            Row { peer: "peer1".into(), public_key: "k1=".into(), address: "10.0.0.2".into(), assigned_to: "".into() },
            Row {
                peer: "peer2".into(),
                public_key: "k2=".into(),
                address: "10.0.0.3".into(),
                assigned_to: "Ana  Diaz, ops laptop".into(),
            },
        ];
        std::fs::write(&path, render("sandbox", &rows)).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.values().map(|(_, r)| r.clone()).collect::<Vec<_>>(), rows);
        assert_eq!(back["peer2"].0, 5);
        std::fs::write(&path, "peer1 k1=\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("assigned.txt:1:"));
        std::fs::write(&path, "peer1 a 10.0.0.2\npeer1 b 10.0.0.3\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("assigned.txt:2: peer1 is listed again"));
        assert!(read(&dir.path().join("none")).unwrap().is_empty());
    }
}
