//! Bodies that stream between the network and blocking storage through small channels, so a
//! blob of any size costs a few chunks of memory.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::error::{ApiError, Code};

pub type Body = BoxBody<Bytes, io::Error>;

const CHUNK: usize = 64 << 10;
/// Chunks in flight per stream.
const DEPTH: usize = 4;
/// Chunks buffered on the way out: 1 MiB, so the next zstd frame of a bundle is
/// decompressed while the last one is still being sent.
const OUT_DEPTH: usize = 16;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Streams a blocking reader out, reading on the blocking pool only as fast as the client takes.
/// A blocking thread is held only while there is room to read into: a client that stops reading
/// parks its stream on the async side, not a thread of the pool every other request needs.
pub fn stream(reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = mpsc::channel(OUT_DEPTH);
    tokio::spawn(async move {
        let mut reader = Some(reader);
        while let Some(r) = reader.take() {
            let fill = tx.clone();
            let Ok((r, held)) = tokio::task::spawn_blocking(move || fill_until_full(r, &fill)).await else { return };
            let Some(item) = held else { return };
            // The channel was full: wait until the client has taken half of it, so that the next
            // turn on the pool reads several chunks, then read on.
            let Ok(mut room) = tx.reserve_many(OUT_DEPTH / 2).await else { return };
            let failed = item.is_err();
            room.next().expect("room was reserved").send(item);
            if failed {
                return;
            }
            drop(room);
            reader = Some(r);
        }
    });
    ChannelBody { rx }.boxed()
}

type Chunk = io::Result<Bytes>;

/// Reads into the channel while it has room; hands back the reader and what did not fit, or
/// `None` when the stream is over (ended, failed, or the client went away).
fn fill_until_full(
    mut reader: Box<dyn Read + Send>,
    tx: &mpsc::Sender<Chunk>,
) -> (Box<dyn Read + Send>, Option<Chunk>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let item = match reader.read(&mut buf) {
            Ok(0) => return (reader, None),
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        match tx.try_send(item) {
            Ok(()) if !failed => {}
            Err(mpsc::error::TrySendError::Full(item)) => return (reader, Some(item)),
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return (reader, None),
        }
    }
}

/// The request body as a blocking reader, for storage code running on the blocking pool.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    /// Bytes the body must still bring when its length was declared (a chunk's Content-Range).
    left: Option<u64>,
    /// Set once the whole body has arrived: the channel also closes when the request is dropped
    /// half way (its client went away), and that must read as a failure, not as the end.
    complete: Arc<AtomicBool>,
}

fn wrong_length(longer: bool) -> io::Error {
    let what = if longer { "longer" } else { "shorter" };
    io::Error::other(ApiError::new(
        Code::RangeInvalid,
        format!("the request body is {what} than the Content-Range it came with declares"),
    ))
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None if !self.complete.load(Ordering::SeqCst) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the request ended before its body"))
                }
                None if self.left.is_some_and(|l| l > 0) => return Err(wrong_length(false)),
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
            if let Some(left) = &mut self.left {
                *left = left.checked_sub(self.current.len() as u64).ok_or_else(|| wrong_length(true))?;
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs `f` on the blocking pool with the request body to read, feeding it as it arrives; with
/// `exact`, a body of any other length fails the read with `RANGE_INVALID`. A client that sends
/// nothing for `stall` fails the read too, so it cannot hold a session and a thread for ever.
pub async fn with_body_reader<T: Send + 'static>(
    mut body: Incoming,
    exact: Option<u64>,
    stall: Duration,
    f: impl FnOnce(&mut dyn Read) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = mpsc::channel(DEPTH);
    let complete = Arc::new(AtomicBool::new(false));
    let reader = ChannelReader { rx, current: Bytes::new(), left: exact, complete: complete.clone() };
    let task = tokio::task::spawn_blocking(move || f(&mut { reader }));
    loop {
        let Ok(frame) = tokio::time::timeout(stall, body.frame()).await else {
            let stalled =
                format!("the client sent no part of the request body for {}", humantime::format_duration(stall));
            let _ = tx.send(Err(io::Error::new(io::ErrorKind::TimedOut, stalled))).await;
            break;
        };
        let chunk = match frame {
            None => {
                complete.store(true, Ordering::SeqCst);
                break;
            }
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue,
            },
            Some(Err(e)) => Err(io::Error::other(format!("request body: {e}"))),
        };
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    task.await.map_err(|e| ApiError::new(Code::Internal, format!("storage task failed: {e}")))
}

/// Runs blocking storage work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("storage task failed: {e}")))?
}
