//! What keeps slow, idle or numerous clients from taking the server down: every connection has
//! a deadline for its first request, a TLS handshake timeout and an idle timeout; there is a cap
//! on open connections, and when it is reached the connection idle the longest makes room; the
//! accept loop backs off on errors (out of file descriptors) and says so at most every few seconds.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The limits a server applies to its connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; lowered at start to what the open-file limit allows.
    pub max_connections: usize,
    /// Time to send the first request's head, and (HTTP/1) each later one once the last is answered.
    pub header_timeout: Duration,
    /// Time for a client to finish the TLS handshake, so a socket that stalls in it cannot hold a slot.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight and nothing sent either way for this long is
    /// closed; so is one whose client stops reading a response, or sending a request body, for
    /// this long.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 2048,
            header_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// File descriptors kept for everything but client connections (parts, stored blobs, S3 and
/// log files, the runtime's own).
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard one, as Go servers (distribution among them) do at
/// start, and returns how many connections fit in it: each may hold a file open besides its socket.
pub fn connections_that_fit(wanted: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard && setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }).is_ok() {
            limit.current = Some(hard);
        }
    }
    let Some(fds) = limit.current else { return wanted };
    let fit = usize::try_from(fds.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
    wanted.min(fit.max(1))
}

/// One open connection, as the accept loop and its own watchdog see it.
pub struct Conn {
    id: u64,
    opened: Instant,
    /// Requests in flight, counting a response until its body is sent.
    busy: AtomicUsize,
    /// Requests whose head has arrived.
    started: AtomicU64,
    /// Milliseconds after `opened` of the last byte read or written.
    last_io: AtomicU64,
    /// Milliseconds after `opened` (plus one, so 0 means "not blocked") since which a write waits
    /// for the client to read.
    write_blocked: AtomicU64,
    evicted: AtomicBool,
    close: Notify,
}

impl Conn {
    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn saw_io(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// A request began; the guard ends it when dropped with its response.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Whether the watchdog should close the connection now, and why.
    pub fn overdue(&self, limits: &Limits) -> Option<&'static str> {
        let now = self.now();
        let since = |ms: u64| Duration::from_millis(now.saturating_sub(ms));
        if self.started.load(Ordering::Relaxed) == 0 && since(0) > limits.header_timeout {
            return Some("no request");
        }
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        if blocked != 0 && since(blocked - 1) > limits.idle_timeout {
            return Some("the client stopped reading");
        }
        let idle = self.busy.load(Ordering::Relaxed) == 0;
        (idle && since(self.last_io.load(Ordering::Relaxed)) > limits.idle_timeout).then_some("idle")
    }

    /// Since when the connection has done nothing useful. Bytes of a request head that never
    /// ends are no progress (a slow-header client trickles them to look alive), so a connection
    /// that never began a request counts from when it was opened: it makes room before a client
    /// whose request the server has not read yet because it opened later.
    fn idle_since(&self) -> Instant {
        if self.started.load(Ordering::Relaxed) == 0 {
            return self.opened;
        }
        self.opened + Duration::from_millis(self.last_io.load(Ordering::Relaxed))
    }

    /// Resolves when the accept loop wants this connection's slot.
    pub async fn evicted(&self) {
        self.close.notified().await
    }
}

pub struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.saw_io();
    }
}

/// The open connections and the slots they hold.
pub struct Connections {
    slots: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

/// Holds a connection's slot and its place in the table until the connection ends.
pub struct Admitted {
    conns: Arc<Connections>,
    pub conn: Arc<Conn>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.conns.open.lock().expect("not poisoned").remove(&self.conn.id);
    }
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections { slots: Arc::new(Semaphore::new(max)), open: Mutex::default(), next: AtomicU64::new(0) })
    }

    /// A slot for a connection just accepted. At the cap, the connection idle the longest (no
    /// request in flight: a keep-alive client, which reconnects, or a client that never sent
    /// one) is closed to make room; when every connection is busy this waits for one to end.
    pub async fn admit(self: &Arc<Self>) -> Admitted {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.evict_one_idle();
                self.slots.clone().acquire_owned().await.expect("the semaphore is never closed")
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.open.lock().expect("not poisoned").insert(id, conn.clone());
        Admitted { conns: self.clone(), conn, _slot: slot }
    }

    fn evict_one_idle(&self) {
        let open = self.open.lock().expect("not poisoned");
        let idlest = open
            .values()
            .filter(|c| c.busy.load(Ordering::Relaxed) == 0 && !c.evicted.load(Ordering::Relaxed))
            .min_by_key(|c| c.idle_since());
        if let Some(c) = idlest {
            c.evicted.store(true, Ordering::Relaxed);
            c.close.notify_one();
        }
    }
}

/// A connection's socket, noting when bytes move and when a write waits on the client.
pub struct Watched<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, conn: Arc<Conn>) -> Watched<T> {
        Watched { inner, conn }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.saw_io();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn note_write(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.conn.write_blocked.store(0, Ordering::Relaxed);
                self.conn.saw_io();
            }
            Poll::Pending => {
                let since = self.conn.now() + 1;
                let _ = self.conn.write_blocked.compare_exchange(0, since, Ordering::Relaxed, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accept failures: each is followed by a pause that doubles while they continue (the usual
/// cause, running out of file descriptors, only ends when connections close, and retrying at
/// once would spin), and the log gets one line per [`LOG_EVERY`] with a count of the rest.
pub struct AcceptErrors {
    pause: Duration,
    last_logged: Option<Instant>,
    unlogged: u64,
}

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptErrors {
    pub fn new() -> AcceptErrors {
        AcceptErrors { pause: FIRST_PAUSE, last_logged: None, unlogged: 0 }
    }

    pub fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    /// Records a failure; returns the line to log, if one is due, and how long to pause.
    pub fn failed(&mut self, e: &io::Error) -> (Option<String>, Duration) {
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        if self.last_logged.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.unlogged += 1;
            return (None, pause);
        }
        let more = match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        self.last_logged = Some(Instant::now());
        (Some(format!("registry: accepting a connection failed: {e}{more}; pausing new connections")), pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_and_are_logged_sparingly() {
        let mut errors = AcceptErrors::new();
        let e = io::Error::other("Too many open files");
        let (line, pause) = errors.failed(&e);
        assert!(line.unwrap().contains("Too many open files"));
        assert_eq!(pause, FIRST_PAUSE);
        let pauses: Vec<Duration> = (0..20)
            .map(|_| errors.failed(&e))
            .map(|(line, p)| {
                assert!(line.is_none(), "logged again within {LOG_EVERY:?}");
                p
            })
            .collect();
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]) && pauses.last() == Some(&LONGEST_PAUSE));
        errors.succeeded();
        assert_eq!(errors.failed(&e).1, FIRST_PAUSE);
    }

    #[tokio::test]
    async fn at_the_cap_the_idlest_connection_makes_room() {
        let conns = Connections::new(2);
        let (a, b) = (conns.admit().await, conns.admit().await);
        let _busy = a.conn.begin();
        let admitting = tokio::spawn({
            let conns = conns.clone();
            async move { conns.admit().await }
        });
        b.conn.evicted().await;
        drop(b);
        let c = admitting.await.unwrap();
        assert!(!a.conn.evicted.load(Ordering::Relaxed), "a busy connection is never closed to make room");
        drop(c);
    }

    #[tokio::test]
    async fn a_connection_that_trickles_a_head_makes_room_before_a_newer_one() {
        let conns = Connections::new(2);
        let trickling = conns.admit().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fresh = conns.admit().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Its last byte came after the other one opened, whose request is not read yet.
        trickling.conn.saw_io();
        let admitting = tokio::spawn({
            let conns = conns.clone();
            async move { conns.admit().await }
        });
        let made_room = tokio::time::timeout(Duration::from_secs(10), trickling.conn.evicted()).await;
        assert!(made_room.is_ok(), "the connection that never began a request kept its slot");
        drop(trickling);
        let next = admitting.await.unwrap();
        assert!(!fresh.conn.evicted.load(Ordering::Relaxed), "the connection opened later was closed");
        drop(next);
    }
}
