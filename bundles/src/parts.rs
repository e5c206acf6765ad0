//! The archive cut into parts that fit removable media, and read back as one stream in place.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};

/// Part file names: this, then a three-digit number.
pub const PART_PREFIX: &str = "bundle.tar.zst.";
const PARTIAL: &str = ".partial";
const MAX_PARTS: usize = 1000;
/// Small enough to stay in a core's cache between hashing it and copying it into the file.
const PIECE: usize = 256 << 10;
/// How much of a part is written between two requests to start its writeback.
const WRITEBACK_STEP: u64 = 32 << 20;

/// The file name of part `i`.
pub fn part_name(i: usize) -> String {
    format!("{PART_PREFIX}{i:03}")
}

/// Whether a file name looks like a part of some bundle (used to spot strays).
pub fn is_part_name(name: &str) -> bool {
    name.strip_prefix(PART_PREFIX).is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A part as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPart {
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
}

/// Writes a byte stream as `bundle.tar.zst.NNN` files of at most `max` bytes each, hashing each
/// part as it goes. Parts carry a `.partial` suffix until `finish`, and are removed if dropped
/// unfinished, so an interrupted write never leaves a part that looks complete.
pub struct PartWriter {
    dir: PathBuf,
    max: u64,
    current: Option<OpenPart>,
    done: Vec<WrittenPart>,
    finished: bool,
}

struct OpenPart {
    file: File,
    hasher: Sha256,
    size: u64,
    /// Where the writeback already asked for ends.
    flushed: u64,
}

impl OpenPart {
    /// Hashes and writes a piece at a time, so each piece is still in the cache when it is
    /// copied into the file: writing a whole frame and then hashing it read it from memory twice.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        for piece in buf.chunks(PIECE) {
            self.hasher.update(piece);
            self.file.write_all(piece)?;
        }
        self.size += buf.len() as u64;
        if self.size - self.flushed >= WRITEBACK_STEP {
            start_writeback(&self.file, self.flushed, self.size - self.flushed);
            self.flushed = self.size;
        }
        Ok(())
    }
}

/// Asks the kernel to start writing a range of the file to disk without waiting for it, so
/// the disk works while the archive is compressed and the fsync that ends the part has little
/// left to wait for. Only a hint: the fsync reports any error.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor stays open while `file` is borrowed, and the call touches no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), from as _, len as _, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _from: u64, _len: u64) {}

impl PartWriter {
    /// Parts of at most `max` bytes, written into `dir`.
    pub fn new(dir: &Path, max: u64) -> Self {
        PartWriter { dir: dir.to_path_buf(), max, current: None, done: Vec::new(), finished: false }
    }

    fn partial_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}{PARTIAL}", part_name(i)))
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some(part) = self.current.take() {
            part.file.sync_all()?;
            self.done.push(WrittenPart {
                name: part_name(self.done.len()),
                size: part.size,
                sha256: hex::encode(part.hasher.finalize()),
            });
        }
        Ok(())
    }

    /// Closes the last part; returns every part written.
    pub fn finish(mut self) -> Result<Vec<WrittenPart>> {
        self.close_current().at(&self.dir)?;
        for i in 0..self.done.len() {
            let from = self.partial_path(i);
            fs::rename(&from, self.dir.join(part_name(i))).at(&from)?;
        }
        self.finished = true;
        Ok(std::mem::take(&mut self.done))
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.current.as_ref().is_some_and(|p| p.size == self.max) {
            self.close_current()?;
        }
        if self.current.is_none() {
            let i = self.done.len();
            if i >= MAX_PARTS {
                return Err(io::Error::other(format!("more than {MAX_PARTS} parts: choose a larger --max-part-size")));
            }
            let file = File::create(self.partial_path(i))?;
            self.current = Some(OpenPart { file, hasher: Sha256::new(), size: 0, flushed: 0 });
        }
        let part = self.current.as_mut().expect("a part is open");
        let n = ((self.max - part.size) as usize).min(buf.len());
        part.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.current.take();
            for i in 0..=self.done.len() {
                let _ = fs::remove_file(self.partial_path(i));
            }
        }
    }
}

/// The parts of one archive opened for positional reads, as if they were one file.
#[derive(Debug)]
pub struct PartSet {
    files: Vec<(String, File, u64)>,
    starts: Vec<u64>,
    total: u64,
}

impl PartSet {
    /// Opens the named parts and checks each has the size the bundle recorded, so a truncated
    /// copy is named before anything is read from it.
    pub fn open(dir: &Path, parts: &[(String, u64)]) -> Result<PartSet> {
        let mut files = Vec::with_capacity(parts.len());
        let mut starts = Vec::with_capacity(parts.len());
        let mut total = 0u64;
        for (name, expected) in parts {
            let path = dir.join(name);
            if !is_part_name(name) {
                return Err(Error::invalid(&path, "is not a part's name (bundle.tar.zst.NNN): refusing to open it"));
            }
            let file = crate::regular_file::open(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    Error::invalid(&path, "part is missing: copy it again from the source media")
                }
                _ => Error::io(&path, e),
            })?;
            let actual = file.metadata().at(&path)?.len();
            if actual != *expected {
                return Err(Error::invalid(
                    &path,
                    format!("part is {actual} bytes, the bundle says {expected} (an incomplete or foreign copy): copy it again"),
                ));
            }
            starts.push(total);
            total += expected;
            files.push((name.clone(), file, *expected));
        }
        Ok(PartSet { files, starts, total })
    }

    /// The bytes of all parts together.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the parts hold nothing.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The name of the part that holds the logical offset `pos` (the last part past the end).
    pub fn name_at(&self, pos: u64) -> &str {
        let i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
        self.files.get(i).map_or("", |(name, _, _)| name.as_str())
    }

    /// Fills `buf` from the logical offset `pos`, crossing part boundaries as needed.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        if pos + buf.len() as u64 > self.total {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the last part"));
        }
        while !buf.is_empty() {
            let i = self.starts.partition_point(|&s| s <= pos) - 1;
            let (name, file, size) = &self.files[i];
            let within = pos - self.starts[i];
            let n = ((size - within) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], within).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
            buf = &mut buf[n..];
            pos += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_read_across_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..2500u32).map(|i| (i % 256) as u8).collect();
        let mut w = PartWriter::new(dir.path(), 1000);
        w.write_all(&data).unwrap();
        let parts = w.finish().unwrap();
        assert_eq!(parts.iter().map(|p| p.size).collect::<Vec<_>>(), vec![1000, 1000, 500]);
        assert_eq!(parts[2].name, "bundle.tar.zst.002");
        assert!(!dir.path().join("bundle.tar.zst.000.partial").exists());
        let set =
            PartSet::open(dir.path(), &parts.iter().map(|p| (p.name.clone(), p.size)).collect::<Vec<_>>()).unwrap();
        let mut buf = vec![0u8; 300];
        set.read_exact_at(&mut buf, 900).unwrap();
        assert_eq!(&buf[..], &data[900..1200]);
        assert!(set.read_exact_at(&mut buf, 2400).is_err());
    }

    /// Parts longer than a writeback step, fed in frame-sized writes that do not line up with
    /// the pieces: each recorded digest must still be the digest of the file as written.
    #[test]
    fn recorded_digests_match_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let max = WRITEBACK_STEP + PIECE as u64 + 7;
        let data: Vec<u8> = (0..2 * max + 1000).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect();
        let mut w = PartWriter::new(dir.path(), max);
        for frame in data.chunks((3 << 20) + 1) {
            w.write_all(frame).unwrap();
        }
        let parts = w.finish().unwrap();
        assert_eq!(parts.iter().map(|p| p.size).collect::<Vec<_>>(), vec![max, max, 1000]);
        for p in &parts {
            let on_disk = fs::read(dir.path().join(&p.name)).unwrap();
            assert_eq!(on_disk.len() as u64, p.size);
            assert_eq!(p.sha256, hex::encode(Sha256::digest(&on_disk)), "{}", p.name);
        }
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PartWriter::new(dir.path(), 10);
        w.write_all(&[1u8; 25]).unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_part_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bundle.tar.zst.000"), b"short").unwrap();
        let err = PartSet::open(dir.path(), &[("bundle.tar.zst.000".into(), 10)]).unwrap_err().to_string();
        assert!(err.contains("bundle.tar.zst.000") && err.contains("5 bytes"), "{err}");
        let err = PartSet::open(dir.path(), &[("bundle.tar.zst.001".into(), 10)]).unwrap_err().to_string();
        assert!(err.contains("bundle.tar.zst.001") && err.contains("missing"), "{err}");
        assert!(is_part_name("bundle.tar.zst.001") && !is_part_name("bundle.tar.zst.1"));
    }
}
