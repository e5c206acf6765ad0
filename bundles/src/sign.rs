//! minisign signatures over `SHA256SUMS`, so the stock `minisign -V` checks them.

use std::io::Cursor;
use std::path::Path;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};

use crate::error::{Error, IoContext, Result};

/// The signature file's suffix, as minisign names it.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// Where a password for an encrypted secret key comes from; unencrypted keys need none.
pub const PASSWORD_ENV: &str = "AIRGAP_MINISIGN_PASSWORD";

/// Reads a minisign secret key, with the password from [`PASSWORD_ENV`] when it is encrypted.
pub fn load_secret_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path).at(path)?;
    let not_a_key = |e: String| Error::invalid(path, format!("not a minisign secret key: {e}"));
    let encoded = text.lines().nth(1).ok_or_else(|| not_a_key("expected a comment line and a key line".into()))?;
    let raw = BASE64.decode(encoded.trim()).map_err(|e| not_a_key(e.to_string()))?;
    // Bytes 2..4 name the KDF; zero means `minisign -G -W`, which writes no checksum that the
    // library would accept, so the key is read as the raw bytes it is.
    if raw.get(2..4) == Some(&[0, 0]) {
        return SecretKey::from_bytes(&raw).map_err(|e| not_a_key(e.to_string()));
    }
    let password = std::env::var(PASSWORD_ENV)
        .map_err(|_| Error::invalid(path, format!("the secret key is password-protected: set {PASSWORD_ENV}")))?;
    SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_secret_key(Some(password)))
        .map_err(|e| Error::invalid(path, format!("cannot open the secret key: {e}")))
}

/// Reads a minisign public key.
pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path).at(path)?;
    // Accept both the two-line `.pub` file and the bare base64 key that `minisign -P` takes.
    let parsed = match PublicKeyBox::from_string(&text) {
        Ok(b) => b.into_public_key(),
        Err(_) => PublicKey::from_base64(text.trim()),
    };
    parsed.map_err(|e| Error::invalid(path, format!("not a minisign public key: {e}")))
}

/// Signs `data`, with a trusted comment that names what is signed.
pub fn sign(data: &[u8], key: &SecretKey, trusted_comment: &str) -> Result<String> {
    let sig = minisign::sign(None, key, Cursor::new(data), Some(trusted_comment), None)
        .map_err(|e| Error::Usage(format!("signing failed: {e}")))?;
    Ok(sig.into_string())
}

/// Checks `signature` over `data` with `key`; returns the trusted comment.
pub fn verify(data: &[u8], signature: &str, key: &PublicKey, sig_path: &Path) -> Result<String> {
    let sig = SignatureBox::from_string(signature)
        .map_err(|e| Error::invalid(sig_path, format!("not a minisign signature: {e}")))?;
    minisign::verify(key, &sig, Cursor::new(data), true, false, false)
        .map_err(|e| Error::invalid(sig_path, format!("signature does not verify: {e}")))?;
    sig.trusted_comment().map_err(|e| Error::invalid(sig_path, e.to_string()))
}
