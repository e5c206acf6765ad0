//! A bundle opened in place: any member, any blob, read straight from the parts by seeking to
//! the zstd frames that hold it. Memory per reader is one frame, whatever the blob's size; the
//! bundle keeps a few more (16 MiB at most) for the small members read whole.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::image::ImageIndex;

use crate::digest::{blob_path, Digest};
use crate::error::{Error, IoContext, Result};
use crate::layout::{parse_index, BlobStore, INDEX_FILE};
use crate::lock::{Lock, LOCK_FILE};
use crate::meta::{BundleMeta, META_FILE};
use crate::pack::INNER_DIR;
use crate::parts::PartSet;
use crate::seekable::{SeekTable, DEFAULT_FRAME_SIZE, MAX_FRAME_SIZE};

/// What a bundle keeps of the frames it decompressed for members read whole.
const RECENT_FRAMES_BYTES: usize = 16 << 20;

/// The most a member read whole may hold; the metadata members of the largest bundle are a
/// fraction of it.
pub const MAX_WHOLE_MEMBER: u64 = 64 << 20;

/// A bundle opened in place: members are read straight from the parts.
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
    /// Indexes into `meta.members`, sorted by path: found by binary search, without a second
    /// copy of every path.
    members: Vec<u32>,
    /// Frames last decompressed for members read whole, most recent first, up to
    /// [`RECENT_FRAMES_BYTES`]: manifests and configs sit many to a frame, and a walk over every
    /// artifact reads them in another order than the archive's.
    recent: Mutex<VecDeque<(usize, Arc<Vec<u8>>)>>,
}

/// The largest frame this bundle's reader decompresses: what its writer recorded, within what any
/// reader accepts.
fn frame_limit(meta: &BundleMeta, dir: &Path) -> Result<u64> {
    let recorded = meta.archive.frame_size.unwrap_or(DEFAULT_FRAME_SIZE as u64);
    if recorded == 0 || recorded > MAX_FRAME_SIZE {
        return Err(Error::invalid(
            dir.join(META_FILE),
            format!("frameSize {recorded} is outside what a reader accepts (1 to {MAX_FRAME_SIZE} bytes)"),
        ));
    }
    Ok(recorded)
}

fn compress_bound(len: u64) -> u64 {
    zstd::zstd_safe::compress_bound(len as usize) as u64
}

/// Every member within the archive, and no path twice.
fn member_index(meta: &BundleMeta, archive_len: u64, source: &Path) -> Result<Vec<u32>> {
    let members = &meta.members;
    if members.len() > u32::MAX as usize {
        return Err(Error::invalid(source, "too many members"));
    }
    if let Some(m) = members.iter().find(|m| m.offset.checked_add(m.size).is_none_or(|end| end > archive_len)) {
        return Err(Error::invalid(source, format!("member {} lies outside the archive", m.path)));
    }
    let mut index: Vec<u32> = (0..members.len() as u32).collect();
    index.sort_unstable_by(|&a, &b| members[a as usize].path.cmp(&members[b as usize].path));
    if let Some(w) = index.windows(2).find(|w| members[w[0] as usize].path == members[w[1] as usize].path) {
        return Err(Error::invalid(source, format!("member {} is listed twice", members[w[0] as usize].path)));
    }
    Ok(index)
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("dir", &self.inner.dir).finish()
    }
}

impl Bundle {
    /// Opens the bundle in `dir`, checking its metadata and that its parts are there with their sizes.
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
        let table_len = SeekTable::frame_len_from_footer(&footer).map_err(|e| bad(e.to_string()))? as u64;
        if table_len > total {
            return Err(bad("seek table is longer than the archive".into()));
        }
        let mut raw = vec![0u8; table_len as usize];
        parts.read_exact_at(&mut raw, total - table_len).at(&archive_name)?;
        let table = SeekTable::parse(&raw).map_err(|e| bad(e.to_string()))?;
        let frame_limit = frame_limit(&meta, dir)?;
        let (mut u, mut c) = (0u64, 0u64);
        let mut ustarts = Vec::with_capacity(table.frames.len() + 1);
        let mut cstarts = Vec::with_capacity(table.frames.len());
        for (i, f) in table.frames.iter().enumerate() {
            // What a reader allocates for a frame is what the table declares: a frame larger than
            // the writer cuts is a memory bomb, refused here before any reader is made.
            if f.decompressed as u64 > frame_limit || f.compressed as u64 > compress_bound(frame_limit) {
                return Err(Error::invalid(
                    dir.join(parts.name_at(c)),
                    format!(
                        "frame {i} declares {} bytes ({} compressed); this bundle's frames hold at most {frame_limit} \
                         (a damaged or hostile archive)",
                        f.decompressed, f.compressed
                    ),
                ));
            }
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
        let members = member_index(&meta, u, &dir.join(META_FILE))?;
        let inner = Inner { dir: dir.to_path_buf(), meta, parts, ustarts, cstarts, members, recent: Mutex::default() };
        Ok(Bundle { inner: Arc::new(inner) })
    }

    /// The bundle's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Its metadata.
    pub fn meta(&self) -> &BundleMeta {
        &self.inner.meta
    }

    /// The size of the uncompressed tar stream.
    pub fn uncompressed_len(&self) -> u64 {
        *self.inner.ustarts.last().expect("one past the end")
    }

    /// Where a member's data is: (offset, size) in the uncompressed stream.
    pub fn member(&self, path: &str) -> Option<(u64, u64)> {
        let all = &self.inner.meta.members;
        let i = self.inner.members.binary_search_by(|&i| all[i as usize].path.as_str().cmp(path)).ok()?;
        let m = &all[self.inner.members[i] as usize];
        Some((m.offset, m.size))
    }

    /// A reader over any range of the uncompressed tar stream.
    pub fn open_range(&self, start: u64, len: u64) -> RangeReader {
        RangeReader {
            bundle: self.clone(),
            member: None,
            start,
            len,
            pos: 0,
            frame: None,
            data: Vec::new(),
            scratch: None,
        }
    }

    /// A reader over one member of the archive.
    pub fn open_member(&self, path: &str) -> Result<RangeReader> {
        let (offset, size) =
            self.member(path).ok_or_else(|| Error::invalid(self.inner.dir.join(path), "not in this bundle"))?;
        Ok(RangeReader { member: Some(path.to_string()), ..self.open_range(offset, size) })
    }

    /// A member read whole (index.json, the lock, an SBOM, a manifest): refused beyond
    /// [`MAX_WHOLE_MEMBER`], whatever size bundle.json gives it.
    pub fn read_member(&self, path: &str) -> Result<Vec<u8>> {
        let mut reader = self.open_member(path)?;
        if reader.len() > MAX_WHOLE_MEMBER {
            return Err(Error::invalid(
                self.inner.dir.join(path),
                format!("{} bytes is too large to read whole (at most {MAX_WHOLE_MEMBER})", reader.len()),
            ));
        }
        let failed = |e| Error::io(self.inner.dir.join(path), e);
        let (start, len) = (reader.start, reader.len);
        let ustarts = &self.inner.ustarts;
        let i = ustarts.partition_point(|&s| s <= start).saturating_sub(1);
        if len > 0 && i + 1 < ustarts.len() && start + len <= ustarts[i + 1] {
            let frame = self.recent_frame(i).map_err(failed)?;
            let within = (start - ustarts[i]) as usize;
            return Ok(frame[within..within + len as usize].to_vec());
        }
        let mut out = Vec::with_capacity(len as usize);
        reader.read_to_end(&mut out).map_err(failed)?;
        Ok(out)
    }

    /// Frame `i` whole: one kept, or decompressed now and kept (the oldest let go beyond the
    /// budget, the newest always kept).
    fn recent_frame(&self, i: usize) -> io::Result<Arc<Vec<u8>>> {
        let kept = || self.inner.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut recent = kept();
            if let Some(at) = recent.iter().position(|(j, _)| *j == i) {
                let hit = recent.remove(at).expect("a position found");
                recent.push_front(hit.clone());
                return Ok(hit.1);
            }
        }
        let mut scratch = Scratch { dctx: zstd::bulk::Decompressor::new()?, compressed: Vec::new() };
        let mut data = Vec::new();
        self.frame(i, &mut scratch, &mut data)?;
        let frame = Arc::new(data);
        let mut recent = kept();
        recent.push_front((i, frame.clone()));
        while recent.len() > 1 && recent.iter().map(|(_, f)| f.len()).sum::<usize>() > RECENT_FRAMES_BYTES {
            recent.pop_back();
        }
        Ok(frame)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        parse_index(&self.read_member(INDEX_FILE)?, &self.inner.dir.join(INDEX_FILE))
    }

    /// The lock carried inside the archive (the copy beside the parts is for people).
    pub fn lock(&self) -> Result<Lock> {
        let name = format!("{INNER_DIR}/{LOCK_FILE}");
        Lock::from_json(&self.read_member(&name)?, &self.inner.dir.join(name))
    }

    /// Whether the bundle carries the blob.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.member(&blob_path(d)).is_some()
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
        let part = inner.parts.name_at(inner.cstarts[i]);
        let damaged =
            |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("{part}: frame {i} is damaged: {m}"));
        // The output holds `ulen` (bounded when the bundle was opened) and no more: a frame whose
        // content is larger fails here instead of growing it.
        if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(&scratch.compressed) {
            if declared != ulen as u64 {
                return Err(damaged(format!("it declares {declared} bytes, the seek table {ulen}")));
            }
        }
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

    fn read_whole(&self, d: &Digest) -> Result<Vec<u8>> {
        self.read_member(&blob_path(d))
    }
}

/// Reads a range of the uncompressed stream, one frame in memory at a time.
pub struct RangeReader {
    bundle: Bundle,
    /// The member read, for errors; `None` for a bare range of the archive.
    member: Option<String>,
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
    /// The bytes the reader covers.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it covers nothing.
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
        if abs >= self.bundle.uncompressed_len() {
            let what = match &self.member {
                Some(m) => format!("member {m}"),
                None => format!("the range of {} bytes at {}", self.len, self.start),
            };
            let at = self.bundle.inner.dir.display();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{at}: {what} runs past the end of the archive ({} bytes)", self.bundle.uncompressed_len()),
            ));
        }
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
