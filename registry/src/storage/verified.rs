//! A blob read whole from a bundle is hashed as it streams, and its last bytes are withheld
//! unless the content matches its digest: a damaged or altered bundle then ends the response
//! short, which every client treats as a failed download, instead of completing a body that is
//! not what the digest promised.
//!
//! One core hashes (SHA-NI) at about 60% of the rate it decompresses zstd, so a large blob is
//! hashed on a thread of its own beside the one decompressing it: one stream then runs at the
//! hash's rate rather than at the two costs added up. Small blobs are hashed in turn, where a
//! thread would cost more than it saves.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bundles::digest::Digest;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// Blobs from this size on are hashed beside the reading thread.
const BESIDE_FROM: u64 = 4 << 20;
/// Chunks queued for the hashing thread before the reader waits for it.
const QUEUED: usize = 8;

pub struct Verified<R> {
    inner: R,
    hashing: Hashing,
    expected: Digest,
    /// Bytes still to come; the read that brings it to zero is checked before it is returned.
    left: u64,
    /// Where the blob comes from, for the error.
    source: String,
}

enum Hashing {
    InTurn(Sha256),
    /// The queue to the hashing thread (taken to tell it the blob is over) and the thread, which
    /// returns the hash. A reader dropped half way drops the queue, which ends the thread.
    Beside(Option<SyncSender<Bytes>>, Option<JoinHandle<Sha256>>),
}

impl Hashing {
    fn for_len(len: u64) -> Hashing {
        if len < BESIDE_FROM {
            return Hashing::InTurn(Sha256::new());
        }
        let (tx, rx) = sync_channel::<Bytes>(QUEUED);
        let hash = move || rx.iter().fold(Sha256::new(), |h, chunk| h.chain_update(&chunk));
        match std::thread::Builder::new().name("blob-hash".into()).spawn(hash) {
            Ok(thread) => Hashing::Beside(Some(tx), Some(thread)),
            Err(_) => Hashing::InTurn(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Hashing::InTurn(h) => h.update(bytes),
            Hashing::Beside(tx, _) => {
                let sent = tx.as_ref().map(|tx| tx.send(Bytes::copy_from_slice(bytes)));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(io::Error::other("the blob's hashing thread stopped"));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<String> {
        let hasher = match self {
            Hashing::InTurn(h) => std::mem::take(h),
            Hashing::Beside(tx, thread) => {
                drop(tx.take());
                let joined = thread.take().map(JoinHandle::join);
                joined.and_then(Result::ok).ok_or_else(|| io::Error::other("the blob's hashing thread failed"))?
            }
        };
        Ok(hex::encode(hasher.finalize()))
    }
}

impl<R: Read> Verified<R> {
    /// `inner` gives the whole blob, `len` bytes; bundles carry only sha256 digests.
    pub fn new(inner: R, expected: Digest, len: u64, source: String) -> Verified<R> {
        Verified { inner, hashing: Hashing::for_len(len), expected, left: len, source }
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
        self.hashing.update(&buf[..n])?;
        self.left -= n as u64;
        if self.left == 0 {
            let got = self.hashing.finish()?;
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

    /// A blob large enough to be hashed on its own thread, made by the test.
    fn large() -> Vec<u8> {
        (0..BESIDE_FROM as usize + 12345).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_large_blob_hashed_beside_its_reader_passes_whole_or_loses_its_last_bytes() {
        let blob = large();
        let len = blob.len() as u64;
        let mut out = Vec::new();
        let mut good = Verified::new(&blob[..], digest_of(&blob), len, "test".into());
        assert!(matches!(good.hashing, Hashing::Beside(..)));
        assert_eq!(good.read_to_end(&mut out).unwrap(), blob.len());
        assert!(out == blob);

        let mut altered = blob.clone();
        altered[100] ^= 1;
        let mut r = Verified::new(&altered[..], digest_of(&blob), len, "test".into());
        let mut buf = vec![0u8; 64 << 10];
        let mut passed = 0;
        let err = loop {
            match r.read(&mut buf) {
                Ok(n) => passed += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(passed < blob.len(), "{passed} bytes passed");
    }
}
