//! SHA-256 digests of blobs and files, in the `sha256:<hex>` form OCI uses.

use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub use oci_spec::image::Digest;

/// Parses an OCI digest and insists on SHA-256, the only algorithm bundles carry.
pub fn parse_sha256(text: &str) -> Result<Digest> {
    let d = Digest::from_str(text).map_err(|e| Error::malformed(format!("'{text}' is not a digest: {e}")))?;
    require_sha256(d)
}

/// `d` when it is a SHA-256, the only algorithm bundles carry (an image reference may pin another).
pub fn require_sha256(d: Digest) -> Result<Digest> {
    if d.algorithm().as_ref() != "sha256" {
        return Err(Error::malformed(format!("'{d}': only sha256 digests are supported")));
    }
    Ok(d)
}

/// Reads a digest field of a lock or a manifest, refusing what [`parse_sha256`] refuses.
pub(crate) fn deserialize_sha256<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_sha256(&text).map_err(serde::de::Error::custom)
}

/// `blobs/sha256/<hex>`, where an OCI layout keeps the blob.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_ref(), d.digest())
}

/// The digest a blob path stands for, if the path is one.
pub fn from_blob_path(path: &str) -> Option<Digest> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    parse_sha256(&format!("sha256:{hex}")).ok()
}

/// The digest of a SHA-256 hex string this crate computed.
pub fn sha256_digest(hex: &str) -> Digest {
    parse_sha256(&format!("sha256:{hex}")).expect("a SHA-256 hex string from our own hasher")
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hashes all a reader gives, with a buffer big enough to keep the hasher busy.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

/// A writer that hashes what passes through it on its way to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// A writer into `inner` that hashes what passes.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The inner writer, the SHA-256 (hex) and the length of what was written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256() {
        let hex = "a".repeat(64);
        assert!(parse_sha256(&format!("sha256:{hex}")).is_ok());
        assert!(parse_sha256(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(parse_sha256("sha256:../../etc").is_err());
        assert_eq!(blob_path(&sha256_digest(&hex)), format!("blobs/sha256/{hex}"));
        assert_eq!(from_blob_path(&format!("blobs/sha256/{hex}")).unwrap().digest(), hex);
        assert!(from_blob_path("blobs/sha256/../x").is_none());
    }

    #[test]
    fn hashing_writer_matches() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (out, hex, n) = w.finish();
        assert_eq!(out, b"abc");
        assert_eq!(n, 3);
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
