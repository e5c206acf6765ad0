//! `SHA256SUMS` in the coreutils format, so `sha256sum -c SHA256SUMS` checks what we wrote.

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// One `<hex>  <name>` line per file, in the order given (callers sort).
pub fn render(entries: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, hex) in entries {
        writeln!(out, "{hex}  {name}").expect("writing to a String");
    }
    out
}

/// Parses a checksum file; `source` names it in errors, with the line number.
pub fn parse(text: &str, source: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || {
            Error::malformed(format!("{source} line {}: expected '<sha256 hex>  <file name>', found '{line}'", i + 1))
        };
        let (hex, rest) = line.split_once(' ').ok_or_else(bad)?;
        // coreutils writes two spaces in text mode and ' *' in binary mode.
        let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*')).ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) || name.is_empty()
        {
            return Err(bad());
        }
        out.push((name.to_string(), hex.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = vec![("a.txt".to_string(), "0".repeat(64)), ("b/c".to_string(), "f".repeat(64))];
        let text = render(&e);
        assert_eq!(text.lines().next().unwrap(), format!("{}  a.txt", "0".repeat(64)));
        assert_eq!(parse(&text, "SUMS").unwrap(), e);
    }

    #[test]
    fn names_the_line() {
        let err = parse(&format!("{}  ok\nnonsense\n", "0".repeat(64)), "SHA256SUMS").unwrap_err();
        assert!(err.to_string().starts_with("SHA256SUMS line 2: "), "{err}");
        assert!(parse(&format!("{}  x", "A".repeat(64)), "S").is_err());
    }
}
