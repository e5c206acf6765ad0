//! A bundle opened in place: any member, any blob, read straight from the parts by seeking to
//! the zstd frames that hold it. Memory per reader is one frame, whatever the blob's size.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::ImageIndex;

use crate::digest::{blob_path, Digest};
use crate::error::{Error, IoContext, Result};
use crate::layout::{parse_index, BlobStore, INDEX_FILE};
use crate::lock::{Lock, LOCK_FILE};
use crate::meta::{BundleMeta, META_FILE};
use crate::pack::INNER_DIR;
use crate::parts::PartSet;
use crate::seekable::SeekTable;

#[derive(Clone)]
pub struct Bundle {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    meta: BundleMeta,
    parts: PartSet,
    /// Start of each frame in the uncompressed stream, and one past the end.
    ustarts: Vec<u64>,
    /// Start of each frame in the compressed stream, and where the seek table starts.
    cstarts: Vec<u64>,
    members: HashMap<String, (u64, u64)>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("dir", &self.inner.dir).finish()
    }
}

impl Bundle {
    pub fn open(dir: &Path) -> Result<Bundle> {
        let meta = BundleMeta::read(dir)?;
        let parts = PartSet::open(dir, &meta.part_list())?;
        let archive_name = dir.join(crate::parts::PART_PREFIX.to_string() + "*");
        let bad = |m: String| Error::invalid(&archive_name, m);
        let total = parts.len();
        if total < 9 {
            return Err(bad("archive too short to hold a seek table".into()));
        }
        let mut footer = [0u8; 9];
        parts.read_exact_at(&mut footer, total - 9).at(&archive_name)?;
        let table_len = SeekTable::frame_len_from_footer(&footer).map_err(bad)? as u64;
        if table_len > total {
            return Err(bad("seek table is longer than the archive".into()));
        }
        let mut raw = vec![0u8; table_len as usize];
        parts.read_exact_at(&mut raw, total - table_len).at(&archive_name)?;
        let table = SeekTable::parse(&raw).map_err(bad)?;
        let (mut u, mut c) = (0u64, 0u64);
        let mut ustarts = Vec::with_capacity(table.frames.len() + 1);
        let mut cstarts = Vec::with_capacity(table.frames.len());
        for f in &table.frames {
            ustarts.push(u);
            cstarts.push(c);
            u += f.decompressed as u64;
            c += f.compressed as u64;
        }
        ustarts.push(u);
        cstarts.push(c);
        if c + table_len != total || u != meta.archive.uncompressed_size {
            return Err(bad("seek table does not match the parts (parts from different bundles?)".into()));
        }
        let mut members = HashMap::with_capacity(meta.members.len());
        for m in &meta.members {
            if m.offset.checked_add(m.size).is_none_or(|end| end > u) {
                return Err(Error::invalid(dir.join(META_FILE), format!("member {} lies outside the archive", m.path)));
            }
            members.insert(m.path.clone(), (m.offset, m.size));
        }
        Ok(Bundle { inner: Arc::new(Inner { dir: dir.to_path_buf(), meta, parts, ustarts, cstarts, members }) })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn meta(&self) -> &BundleMeta {
        &self.inner.meta
    }

    pub fn uncompressed_len(&self) -> u64 {
        *self.inner.ustarts.last().expect("one past the end")
    }

    pub fn member(&self, path: &str) -> Option<(u64, u64)> {
        self.inner.members.get(path).copied()
    }

    /// A reader over any range of the uncompressed tar stream.
    pub fn open_range(&self, start: u64, len: u64) -> RangeReader {
        RangeReader { bundle: self.clone(), start, len, pos: 0, frame: None, data: Vec::new(), scratch: None }
    }

    pub fn open_member(&self, path: &str) -> Result<RangeReader> {
        let (offset, size) =
            self.member(path).ok_or_else(|| Error::invalid(self.inner.dir.join(path), "not in this bundle"))?;
        Ok(self.open_range(offset, size))
    }

    pub fn read_member(&self, path: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_member(path)?.read_to_end(&mut out).map_err(|e| Error::io(self.inner.dir.join(path), e))?;
        Ok(out)
    }

    pub fn index(&self) -> Result<ImageIndex> {
        parse_index(&self.read_member(INDEX_FILE)?, &self.inner.dir.join(INDEX_FILE))
    }

    /// The lock carried inside the archive (the copy beside the parts is for people).
    pub fn lock(&self) -> Result<Lock> {
        let name = format!("{INNER_DIR}/{LOCK_FILE}");
        Lock::from_json(&self.read_member(&name)?, &self.inner.dir.join(name))
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.inner.members.contains_key(&blob_path(d))
    }

    /// Decompresses frame `i` into `out`, checking zstd's own checksum of its content.
    fn frame(&self, i: usize, scratch: &mut Scratch, out: &mut Vec<u8>) -> io::Result<()> {
        let inner = &self.inner;
        let clen = (inner.cstarts[i + 1] - inner.cstarts[i]) as usize;
        let ulen = (inner.ustarts[i + 1] - inner.ustarts[i]) as usize;
        scratch.compressed.resize(clen, 0);
        inner.parts.read_exact_at(&mut scratch.compressed, inner.cstarts[i])?;
        out.clear();
        out.reserve(ulen);
        let damaged = |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("frame {i} is damaged: {m}"));
        let n = scratch.dctx.decompress_to_buffer(&scratch.compressed, out).map_err(|e| damaged(e.to_string()))?;
        if n != ulen {
            return Err(damaged("wrong length".into()));
        }
        Ok(())
    }
}

impl BlobStore for Bundle {
    fn blob_len(&self, d: &Digest) -> Result<Option<u64>> {
        Ok(self.member(&blob_path(d)).map(|(_, s)| s))
    }

    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.open_member(&blob_path(d))?))
    }
}

/// Reads a range of the uncompressed stream, one frame in memory at a time.
pub struct RangeReader {
    bundle: Bundle,
    start: u64,
    len: u64,
    pos: u64,
    /// Which frame `data` holds.
    frame: Option<usize>,
    data: Vec<u8>,
    scratch: Option<Scratch>,
}

/// What decompressing a frame needs besides its output, kept for the reader's next frame.
struct Scratch {
    dctx: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
}

impl RangeReader {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let abs = self.start + self.pos;
        let ustarts = &self.bundle.inner.ustarts;
        let i = ustarts.partition_point(|&s| s <= abs) - 1;
        if self.frame != Some(i) {
            let scratch = match &mut self.scratch {
                Some(s) => s,
                None => self.scratch.insert(Scratch { dctx: zstd::bulk::Decompressor::new()?, compressed: Vec::new() }),
            };
            self.frame = None;
            self.bundle.frame(i, scratch, &mut self.data)?;
            self.frame = Some(i);
        }
        let data = &self.data;
        let within = (abs - ustarts[i]) as usize;
        let n = (data.len() - within).min(buf.len()).min((self.len - self.pos) as usize);
        buf[..n].copy_from_slice(&data[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let next = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
