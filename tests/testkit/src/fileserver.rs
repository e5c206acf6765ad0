use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Result};

/// A request the server saw, for tests that check how a client fetched (e.g. that it resumed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path asked for, prefix included.
    pub path: String,
    /// The `Range` header, when one was sent: a resumed download sends one.
    pub range: Option<String>,
}

/// A static HTTP/1.1 server over a directory: GET and HEAD, single byte ranges (`Range`,
/// `If-Range` against the ETag), one request per connection.
pub struct FileServer {
    port: u16,
    prefix: String,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

struct State {
    root: PathBuf,
    prefix: String,
    stop: AtomicBool,
    drop_after: Mutex<Option<u64>>,
    requests: Mutex<Vec<RequestRecord>>,
}

impl FileServer {
    /// Serves `dir` at `/`.
    pub fn start(dir: impl AsRef<Path>) -> Result<FileServer> {
        FileServer::start_at(dir, "/")
    }

    /// Serves `dir` under the URL path `prefix` (e.g. `/mosip-helm`).
    pub fn start_at(dir: impl AsRef<Path>, prefix: &str) -> Result<FileServer> {
        let root = dir.as_ref().canonicalize()?;
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        let prefix = format!("/{}", prefix.trim_matches('/'));
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            root,
            prefix: prefix.clone(),
            stop: AtomicBool::new(false),
            drop_after: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        });
        let accept_state = state.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let state = accept_state.clone();
                    thread::spawn(move || {
                        let _ = serve(&state, stream);
                    });
                }
            }
        });
        Ok(FileServer { port, prefix, state, accept: Some(accept) })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/PREFIX`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.prefix.trim_end_matches('/'))
    }

    /// The URL of a file given by its path relative to the served directory.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.url(), relative.trim_start_matches('/'))
    }

    /// The next GET that has a body longer than `bytes` sends the full headers and only `bytes`
    /// bytes of the body, then closes the connection. Later requests are served whole.
    pub fn drop_connection_after_once(&self, bytes: u64) {
        *self.state.drop_after.lock().unwrap() = Some(bytes);
    }

    /// Every request so far, in the order they came.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(state: &State, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => return Ok(()),
    };
    let mut range = None;
    let mut if_range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(value.trim().to_string()),
                "if-range" => if_range = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("").to_string();
    state.requests.lock().unwrap().push(RequestRecord {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
    });
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(&mut out, "405 Method Not Allowed", &[("Allow", "GET, HEAD".into())]);
    }
    let Some(file_path) = resolve(state, &path) else {
        return respond(&mut out, "404 Not Found", &[]);
    };
    let mut file = File::open(&file_path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let mtime = meta.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let etag = format!("\"{len:x}-{mtime:x}\"");
    let range = range.filter(|_| if_range.as_deref().is_none_or(|v| v == etag));
    let (status, start, end) = match range.as_deref().map(|r| parse_range(r, len)) {
        None | Some(RangeSpec::Ignored) => ("200 OK", 0, len),
        Some(RangeSpec::Unsatisfiable) => {
            return respond(&mut out, "416 Range Not Satisfiable", &[("Content-Range", format!("bytes */{len}"))]);
        }
        Some(RangeSpec::Bytes(s, e)) => ("206 Partial Content", s, e),
    };
    let mut headers = vec![
        ("Content-Length", (end - start).to_string()),
        ("Content-Type", content_type(&file_path).to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("ETag", etag),
    ];
    if status.starts_with("206") {
        headers.push(("Content-Range", format!("bytes {start}-{}/{len}", end - 1)));
    }
    write_head(&mut out, status, &headers)?;
    if method == "HEAD" {
        return out.flush();
    }
    let mut body_len = end - start;
    let cut = {
        let mut drop_after = state.drop_after.lock().unwrap();
        match *drop_after {
            Some(n) if n < body_len => {
                *drop_after = None;
                body_len = n;
                true
            }
            _ => false,
        }
    };
    file.seek(SeekFrom::Start(start))?;
    io::copy(&mut (&mut file).take(body_len), &mut out)?;
    out.flush()?;
    if cut {
        out.shutdown(Shutdown::Both)?;
    }
    Ok(())
}

fn resolve(state: &State, path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix(&state.prefix)?;
    let rest = if state.prefix == "/" { rest } else { rest.strip_prefix('/')? };
    let decoded = percent_decode(rest)?;
    let relative = Path::new(&decoded);
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = state.root.join(relative);
    full.is_file().then_some(full)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

enum RangeSpec {
    /// Half-open byte range [start, end).
    Bytes(u64, u64),
    Unsatisfiable,
    /// Multiple ranges or another unit: RFC 9110 lets a server answer those with the whole file.
    Ignored,
}

fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.strip_prefix("bytes=") else {
        return RangeSpec::Ignored;
    };
    if spec.contains(',') {
        return RangeSpec::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = if first.is_empty() {
        last.parse::<u64>().ok().filter(|&n| n > 0 && len > 0).map(|n| (len.saturating_sub(n), len))
    } else {
        first.parse::<u64>().ok().filter(|&s| s < len).and_then(|s| {
            if last.is_empty() {
                Some((s, len))
            } else {
                last.parse::<u64>().ok().filter(|&e| e >= s).map(|e| (s, (e + 1).min(len)))
            }
        })
    };
    match parsed {
        Some((s, e)) => RangeSpec::Bytes(s, e),
        None => RangeSpec::Unsatisfiable,
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml") | Some("yml") => "application/x-yaml",
        Some("json") => "application/json",
        Some("tgz") | Some("gz") => "application/gzip",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn respond(out: &mut TcpStream, status: &str, headers: &[(&str, String)]) -> io::Result<()> {
    let mut all = headers.to_vec();
    all.push(("Content-Length", "0".to_string()));
    write_head(out, status, &all)?;
    out.flush()
}

fn write_head(out: &mut TcpStream, status: &str, headers: &[(&str, String)]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    out.write_all(head.as_bytes())
}
