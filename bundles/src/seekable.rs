//! zstd's seekable format: independent frames followed by a seek table in a skippable frame.
//!
//! The stock `zstd -d` reads it as plain zstd (it skips the table), while we can jump to any
//! frame and decompress only what a reader asks for. Frames are compressed in parallel, and the
//! output is the same whatever the number of threads, because each frame is compressed alone.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
const FOOTER_LEN: usize = 9;
const ENTRY_LEN: usize = 8;

/// The uncompressed size at which a frame is cut. Readers decompress at most this much more
/// than they asked for at each end of a range.
pub const DEFAULT_FRAME_SIZE: usize = 2 << 20;
/// The largest frame size a reader accepts from a bundle's metadata: what one reader may hold
/// in memory, whatever the archive claims.
pub const MAX_FRAME_SIZE: u64 = 64 << 20;

/// One frame of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEntry {
    /// Its compressed size.
    pub compressed: u32,
    /// Its uncompressed size.
    pub decompressed: u32,
}

/// The seek table of zstd's seekable format: every frame's sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeekTable {
    /// The frames, in order.
    pub frames: Vec<FrameEntry>,
}

impl SeekTable {
    /// The skippable frame that carries the table, without per-frame checksums (the descriptor
    /// says so): each frame carries zstd's own content checksum instead.
    pub fn to_bytes(&self) -> Vec<u8> {
        let content = self.frames.len() * ENTRY_LEN + FOOTER_LEN;
        let mut out = Vec::with_capacity(8 + content);
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&(content as u32).to_le_bytes());
        for f in &self.frames {
            out.extend_from_slice(&f.compressed.to_le_bytes());
            out.extend_from_slice(&f.decompressed.to_le_bytes());
        }
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        out.push(0);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// Length of the table frame, read from the 9-byte footer that ends the stream.
    pub fn frame_len_from_footer(footer: &[u8]) -> Result<usize> {
        if footer.len() != FOOTER_LEN {
            return Err(Error::malformed("archive too short for a seek table"));
        }
        let magic = u32::from_le_bytes(footer[5..9].try_into().expect("4 bytes"));
        if magic != SEEKABLE_MAGIC {
            return Err(Error::malformed(
                "archive does not end with a zstd seek table (truncated or not a bundle archive)",
            ));
        }
        let descriptor = footer[4];
        if descriptor & 0x7c != 0 {
            return Err(Error::malformed("seek table descriptor has reserved bits set"));
        }
        let n = u32::from_le_bytes(footer[0..4].try_into().expect("4 bytes")) as usize;
        let entry = if descriptor & 0x80 != 0 { ENTRY_LEN + 4 } else { ENTRY_LEN };
        Ok(8 + n * entry + FOOTER_LEN)
    }

    /// Reads a seek table from its skippable frame.
    pub fn parse(frame: &[u8]) -> Result<SeekTable> {
        let footer_start =
            frame.len().checked_sub(FOOTER_LEN).ok_or_else(|| Error::malformed("seek table too short"))?;
        if frame.len() != Self::frame_len_from_footer(&frame[footer_start..])? {
            return Err(Error::malformed("seek table length does not match its footer"));
        }
        if u32::from_le_bytes(frame[0..4].try_into().expect("4 bytes")) != SKIPPABLE_MAGIC {
            return Err(Error::malformed("seek table is not in a skippable frame"));
        }
        let declared = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")) as usize;
        if declared != frame.len() - 8 {
            return Err(Error::malformed("seek table frame size does not match its footer"));
        }
        let entry = if frame[footer_start + 4] & 0x80 != 0 { ENTRY_LEN + 4 } else { ENTRY_LEN };
        let frames = frame[8..footer_start]
            .chunks_exact(entry)
            .map(|c| FrameEntry {
                compressed: u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
                decompressed: u32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
            })
            .collect();
        Ok(SeekTable { frames })
    }
}

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>, usize);

/// Frame buffers handed round between the stages, so a multi-GiB archive does not allocate
/// (and fault in) two fresh megabyte buffers per frame.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    fn get(&self, capacity: usize) -> Vec<u8> {
        let mut v = self.0.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    fn put(&self, v: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            p.push(v);
        }
    }
}

/// Compresses what is written to it into independent zstd frames on a pool of threads and
/// writes them, in order, to `sink`. At most `2 × threads` frames are in memory at once.
pub struct FrameWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    frame_size: usize,
    inputs: Pool,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    permits: SyncSender<()>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<io::Result<(W, SeekTable)>>>,
}

impl<W: Write + Send + 'static> FrameWriter<W> {
    /// Compresses into `sink` at `level`, cutting a frame every `frame_size` bytes, on `threads` threads.
    pub fn new(sink: W, level: i32, frame_size: usize, threads: usize) -> Self {
        let threads = threads.max(1);
        let in_flight = threads * 2;
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(in_flight);
        let (done_tx, done_rx) = sync_channel::<Done>(in_flight);
        let (permit_tx, permit_rx) = sync_channel::<()>(in_flight);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (inputs, outputs) = (Pool::default(), Pool::default());
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&jobs_rx);
                let tx = done_tx.clone();
                let pools = (inputs.clone(), outputs.clone());
                std::thread::spawn(move || compress_worker(rx, tx, level, pools))
            })
            .collect();
        drop(done_tx);
        let writer = std::thread::spawn(move || write_in_order(sink, done_rx, permit_rx, outputs));
        FrameWriter {
            buf: inputs.get(frame_size),
            frame_size,
            inputs,
            seq: 0,
            jobs: Some(jobs_tx),
            permits: permit_tx,
            workers,
            writer: Some(writer),
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let frame = std::mem::replace(&mut self.buf, self.inputs.get(self.frame_size));
        let sent =
            self.permits.send(()).is_ok() && self.jobs.as_ref().is_some_and(|j| j.send((self.seq, frame)).is_ok());
        self.seq += 1;
        if sent {
            Ok(())
        } else {
            // The writer stopped early; its error is the one worth reporting.
            Err(self.stop().err().unwrap_or_else(|| io::Error::other("compression pipeline stopped")))
        }
    }

    fn stop(&mut self) -> io::Result<(W, SeekTable)> {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(io::Error::other("archive writer thread panicked"))),
            None => Err(io::Error::other("archive writer already finished")),
        }
    }

    /// Flushes the last frame, appends the seek table and hands back the sink.
    pub fn finish(mut self) -> io::Result<(W, SeekTable)> {
        self.submit()?;
        let (mut sink, table) = self.stop()?;
        sink.write_all(&table.to_bytes())?;
        Ok((sink, table))
    }
}

/// Dropped unfinished (a pack failing half way): the threads are stopped and joined here, so the
/// sink, and the parts it removes when dropped unfinished, is gone before the caller cleans up.
/// Left running, the writer thread could start a new part while the output directory is being
/// removed.
impl<W: Write + Send + 'static> Drop for FrameWriter<W> {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.stop();
        }
    }
}

impl<W: Write + Send + 'static> Write for FrameWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = self.frame_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.frame_size {
                self.submit()?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn compress_worker(
    jobs: Arc<Mutex<Receiver<Job>>>,
    done: SyncSender<Done>,
    level: i32,
    (inputs, outputs): (Pool, Pool),
) {
    let mut cx = match zstd::bulk::Compressor::new(level) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send((0, Err(e), 0));
            return;
        }
    };
    let configured = cx.include_checksum(true).and_then(|_| cx.include_contentsize(true));
    loop {
        let job = jobs.lock().map(|rx| rx.recv());
        let Ok(Ok((seq, frame))) = job else { return };
        let mut out = outputs.get(zstd::zstd_safe::compress_bound(frame.len()));
        let result = match &configured {
            Ok(()) => cx.compress_to_buffer(&frame, &mut out).map(|_| out),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        let ulen = frame.len();
        inputs.put(frame);
        if done.send((seq, result, ulen)).is_err() {
            return;
        }
    }
}

fn write_in_order<W: Write>(
    mut sink: W,
    done: Receiver<Done>,
    permits: Receiver<()>,
    outputs: Pool,
) -> io::Result<(W, SeekTable)> {
    let mut table = SeekTable::default();
    let mut pending: BTreeMap<u64, (Vec<u8>, usize)> = BTreeMap::new();
    let mut next = 0u64;
    for (seq, out, ulen) in done {
        pending.insert(seq, (out?, ulen));
        while let Some((c, ulen)) = pending.remove(&next) {
            sink.write_all(&c)?;
            table.frames.push(FrameEntry { compressed: c.len() as u32, decompressed: ulen as u32 });
            outputs.put(c);
            next += 1;
            let _ = permits.recv();
        }
    }
    sink.flush()?;
    Ok((sink, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], threads: usize, frame: usize) -> (Vec<u8>, SeekTable) {
        let mut w = FrameWriter::new(Vec::new(), 3, frame, threads);
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn stock_decoder_reads_it_and_output_is_thread_independent() {
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let (one, t1) = compress(&data, 1, 64 << 10);
        let (four, t4) = compress(&data, 4, 64 << 10);
        assert_eq!(one, four);
        assert_eq!(t1, t4);
        assert_eq!(t1.frames.len(), data.len().div_ceil(64 << 10));
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
        let tail = &one[one.len() - FOOTER_LEN..];
        let len = SeekTable::frame_len_from_footer(tail).unwrap();
        assert_eq!(SeekTable::parse(&one[one.len() - len..]).unwrap(), t1);
    }

    #[test]
    fn rejects_garbage_footer() {
        assert!(SeekTable::frame_len_from_footer(&[0u8; 9]).unwrap_err().to_string().contains("seek table"));
        assert!(SeekTable::frame_len_from_footer(&[0u8; 3]).is_err());
    }
}
