//! Wireguard keys: X25519 secrets and the base64 text `wg genkey`, `wg pubkey` and `wg genpsk`
//! read and write.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use x25519_dalek::{PublicKey, StaticSecret};

/// 32 bytes, shown as wg shows them: standard base64 with padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// A private key, clamped as `wg genkey` clamps it, so the file holds what wg itself would write.
    pub fn generate_private() -> Result<Key> {
        let mut bytes = Key::random()?.0;
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        Ok(Key(bytes))
    }

    /// A preshared key: 32 random bytes, as `wg genpsk` makes.
    pub fn generate_preshared() -> Result<Key> {
        Key::random()
    }

    fn random() -> Result<Key> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| anyhow!("the system's random source failed: {e}"))?;
        Ok(Key(bytes))
    }

    /// The public key of this private key, as `wg pubkey` derives it.
    pub fn public(&self) -> Key {
        Key(PublicKey::from(&StaticSecret::from(self.0)).to_bytes())
    }

    /// A key from its base64 text (surrounding whitespace ignored); fails unless it is 32 bytes.
    pub fn parse(text: &str) -> Result<Key> {
        let bytes = STANDARD.decode(text.trim()).map_err(|e| anyhow!("not base64 ({e})"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| anyhow!("{} bytes where a key has 32", b.len()))?;
        Ok(Key(bytes))
    }

    /// Reads a key file as wg writes it (one base64 line).
    pub fn read(path: &Path) -> Result<Key> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Key::parse(&text).map_err(|e| {
            anyhow!("{}: not a Wireguard key: {e}; restore it from a backup (a new key would lock out whoever holds the old one)", path.display())
        })
    }

    /// Reads a private key and checks the public key file beside it against it.
    pub fn read_pair(private: &Path, public: &Path) -> Result<Key> {
        let key = Key::read(private)?;
        let written = Key::read(public)?;
        if written != key.public() {
            bail!(
                "{} does not hold the public key of {}: restore both from the same backup",
                public.display(),
                private.display()
            );
        }
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

/// Never print a secret by accident (in a panic or a `{:?}`).
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_rfc7748() {
        // RFC 7748 section 6.1: Alice's private key and the public key it gives.
        let alice = Key(hex_bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        assert_eq!(alice.public(), Key(hex_bytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")));
        let k = Key::generate_private().unwrap();
        assert_eq!(k.0[0] & 7, 0);
        assert_eq!(k.0[31] & 0xc0, 0x40);
        assert_eq!(Key::parse(&format!(" {k}\n")).unwrap(), k);
        assert_ne!(Key::generate_preshared().unwrap(), Key::generate_preshared().unwrap());
        assert!(Key::parse("abc").unwrap_err().to_string().contains("base64"));
        assert!(Key::parse("YWJj").unwrap_err().to_string().contains("3 bytes"));
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    fn hex_bytes(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }
}
