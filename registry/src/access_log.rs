//! One line per request: `METHOD URI STATUS BYTES TIME` (`-` when the length is not known up
//! front; the time in UTC, RFC 3339, when the response started). The time goes last so that
//! what reads the first fields stays as it was.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where the access log goes.
#[derive(Clone, Default)]
pub enum AccessLog {
    /// Standard error, the default: a service manager's journal keeps it.
    #[default]
    Stderr,
    /// Nowhere: `airgap -q registry serve`, which quiets all of stderr.
    Off,
    /// A writer of the embedding program's, such as a test that reads the lines back.
    Writer(Arc<Mutex<dyn Write + Send>>),
}

impl AccessLog {
    /// Writes one request's line; a log that cannot be written never fails the request.
    pub fn record(&self, method: &str, uri: &str, status: u16, bytes: Option<u64>) {
        let bytes = bytes.map_or("-".to_string(), |b| b.to_string());
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let line = format!("{method} {uri} {status} {bytes} {time}\n");
        match self {
            AccessLog::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            AccessLog::Off => {}
            AccessLog::Writer(w) => {
                if let Ok(mut w) = w.lock() {
                    let _ = w.write_all(line.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_ends_with_its_time() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        AccessLog::Writer(buf.clone()).record("GET", "/v2/", 200, Some(2));
        let line = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let (start, time) = line.trim_end().rsplit_once(' ').unwrap();
        assert_eq!(start, "GET /v2/ 200 2");
        assert!(humantime::parse_rfc3339(time).is_ok(), "{line}");
    }
}
