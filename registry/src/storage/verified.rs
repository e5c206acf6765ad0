//! A blob read whole from a bundle is hashed as it streams, and its last bytes are withheld
//! unless the content matches its digest: a damaged or altered bundle then ends the response
//! short, which every client treats as a failed download, instead of completing a body that is
//! not what the digest promised. Hashing costs far less than the decompression it rides on.

use std::io::{self, Read};

use bundles::digest::Digest;
use sha2::{Digest as _, Sha256};

pub struct Verified<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    /// Bytes still to come; the read that brings it to zero is checked before it is returned.
    left: u64,
    /// Where the blob comes from, for the error.
    source: String,
}

impl<R: Read> Verified<R> {
    /// `inner` gives the whole blob, `len` bytes; bundles carry only sha256 digests.
    pub fn new(inner: R, expected: Digest, len: u64, source: String) -> Verified<R> {
        Verified { inner, hasher: Sha256::new(), expected, left: len, source }
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob {} in {} ended {} bytes early", self.expected, self.source, self.left),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        if self.left == 0 {
            let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if got != self.expected.digest() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} in {} hashes to sha256:{got}: the bundle is damaged or was altered \
                         (airgap bundle verify names what)",
                        self.expected, self.source
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        crate::names::hash_reader("sha256", bytes).unwrap()
    }

    #[test]
    fn the_last_bytes_are_withheld_from_a_mismatch() {
        let mut out = Vec::new();
        let good = Verified::new(&b"hello"[..], digest_of(b"hello"), 5, "test".into()).read_to_end(&mut out);
        assert_eq!((good.unwrap(), &out[..]), (5, &b"hello"[..]));
        let mut r = Verified::new(&b"hellO"[..], digest_of(b"hello"), 5, "test".into());
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        let err = r.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("test") && err.to_string().contains("altered"), "{err}");
        let short = Verified::new(&b"hel"[..], digest_of(b"hello"), 5, "test".into()).read_to_end(&mut Vec::new());
        assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
