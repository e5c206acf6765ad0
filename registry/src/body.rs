//! Bodies that stream between the network and blocking storage through small channels, so a
//! blob of any size costs a few chunks of memory.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

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
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Streams a blocking reader out, reading on the blocking pool only as fast as the client takes.
pub fn stream(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = mpsc::channel(OUT_DEPTH);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; CHUNK];
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    });
    ChannelBody { rx }.boxed()
}

/// The request body as a blocking reader, for storage code running on the blocking pool.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs `f` on the blocking pool with the request body to read, feeding it as it arrives.
pub async fn with_body_reader<T: Send + 'static>(
    mut body: Incoming,
    f: impl FnOnce(&mut dyn Read) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = mpsc::channel(DEPTH);
    let task = tokio::task::spawn_blocking(move || f(&mut ChannelReader { rx, current: Bytes::new() }));
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(f) => match f.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue,
            },
            Err(e) => Err(io::Error::other(format!("request body: {e}"))),
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
