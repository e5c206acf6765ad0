//! A small HTTP/1.1 server made by the tests to stand for a hostile upstream: each request is
//! answered by a handler given its path, one request per connection, and a body can be streamed
//! to any length without being held in memory.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of `x`, with a Content-Length saying so when `declared`, else until the
    /// connection closes.
    Endless {
        len: u64,
        declared: bool,
    },
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Reply {
    pub fn ok(content_type: &str, body: Body) -> Reply {
        Reply { status: 200, headers: vec![("Content-Type".into(), content_type.into())], body }
    }

    pub fn not_found() -> Reply {
        Reply { status: 404, headers: vec![], body: Body::Bytes(b"not found".to_vec()) }
    }
}

pub struct Upstream {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (handler, stopping) = (Arc::new(handler), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let handler = handler.clone();
                thread::spawn(move || stream.map(|s| answer(s, &*handler)));
            }
        });
        Upstream { port, stop }
    }

    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, handler: &dyn Fn(&str) -> Reply) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let reply = handler(&path);
    let mut out = std::io::BufWriter::new(stream);
    write!(out, "HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status)?;
    for (k, v) in &reply.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    match reply.body {
        Body::Bytes(b) => {
            write!(out, "Content-Length: {}\r\n\r\n", b.len())?;
            out.write_all(&b)?;
        }
        Body::Endless { len, declared } => {
            if declared {
                write!(out, "Content-Length: {len}\r\n")?;
            }
            out.write_all(b"\r\n")?;
            let chunk = vec![b'x'; 64 << 10];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
    }
    out.flush()
}
