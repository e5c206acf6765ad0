//! The tar stream inside the archive, written so the same input gives the same bytes: plain
//! ustar headers, no timestamps, no owners, members in the order the caller sorts them.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::digest::HashingWriter;

const BLOCK: u64 = 512;

/// Where a member's data starts in the uncompressed tar stream, so readers can jump to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's path in the archive.
    pub path: String,
    /// Where its data starts in the uncompressed stream.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// Writes a tar stream with sorted members, fixed owners and times, recording where each member's data lands.
pub struct TarWriter<W: Write> {
    inner: W,
    pos: u64,
    members: Vec<Member>,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    /// A writer into `inner`.
    pub fn new(inner: W) -> Self {
        TarWriter { inner, pos: 0, members: Vec::new(), buf: vec![0; 1 << 20] }
    }

    /// Appends a regular file of exactly `size` bytes from `data` and returns its SHA-256;
    /// a reader that gives more or fewer bytes is an error that names the member.
    pub fn append(&mut self, path: &str, size: u64, executable: bool, data: impl Read) -> io::Result<String> {
        let mut header = tar::Header::new_ustar();
        header.set_path(path)?;
        header.set_size(size);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.inner.write_all(header.as_bytes())?;
        self.pos += BLOCK;
        let offset = self.pos;
        let mut hashing = HashingWriter::new(&mut self.inner);
        let mut data = data.take(size);
        // Large reads: the default 8 KiB copy spends more on system calls than on hashing.
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hashing.write_all(&self.buf[..n])?;
        }
        let (_, hex, copied) = hashing.finish();
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: expected {size} bytes, the source gave {copied}"),
            ));
        }
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.inner.write_all(&vec![0u8; pad as usize])?;
        self.pos += size + pad;
        self.members.push(Member { path: path.to_string(), offset, size });
        Ok(hex)
    }

    /// Writes the end-of-archive marker and returns the sink and the member index.
    pub fn finish(mut self) -> io::Result<(W, Vec<Member>, u64)> {
        self.inner.write_all(&[0u8; 2 * BLOCK as usize])?;
        self.pos += 2 * BLOCK;
        Ok((self.inner, self.members, self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_point_at_data_and_tar_reads_it() {
        let mut w = TarWriter::new(Vec::new());
        w.append("a.txt", 3, false, &b"abc"[..]).unwrap();
        w.append("dir/b.bin", 600, true, &vec![7u8; 600][..]).unwrap();
        let (bytes, members, len) = w.finish().unwrap();
        assert_eq!(len as usize, bytes.len());
        assert_eq!(&bytes[members[0].offset as usize..][..3], b"abc");
        assert_eq!(members[1].offset, 512 * 3);
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<_> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["a.txt", "dir/b.bin"]);
    }

    #[test]
    fn short_source_names_the_member() {
        let mut w = TarWriter::new(Vec::new());
        let err = w.append("blobs/sha256/x", 10, false, &b"abc"[..]).unwrap_err();
        assert!(err.to_string().contains("blobs/sha256/x"));
    }
}
