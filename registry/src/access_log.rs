//! One line per request: `METHOD URI STATUS BYTES` (`-` when the length is not known up front).

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub enum AccessLog {
    #[default]
    Stderr,
    Off,
    Writer(Arc<Mutex<dyn Write + Send>>),
}

impl AccessLog {
    pub fn record(&self, method: &str, uri: &str, status: u16, bytes: Option<u64>) {
        let bytes = bytes.map_or("-".to_string(), |b| b.to_string());
        let line = format!("{method} {uri} {status} {bytes}\n");
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
