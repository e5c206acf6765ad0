//! Progress for three audiences: bars for people at a terminal, plain lines for logs, and one
//! JSON object per line on stdout for machines (`--json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

enum Mode {
    Bars { bytes: ProgressBar, artifacts: ProgressBar, multi: MultiProgress },
    Plain,
    Json,
    Quiet,
}

pub struct Progress {
    mode: Mode,
    stdout: Mutex<()>,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let artifacts = multi.add(ProgressBar::new(0));
            artifacts.set_style(
                ProgressStyle::with_template("artifacts {bar:30} {pos}/{len} {wide_msg}").expect("a valid template"),
            );
            let bytes = multi.add(ProgressBar::new(0));
            bytes.set_style(
                ProgressStyle::with_template("{msg:9} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("a valid template"),
            );
            bytes.set_message("download");
            Mode::Bars { bytes, artifacts, multi }
        } else {
            Mode::Plain
        };
        Progress { mode, stdout: Mutex::new(()) }
    }

    /// A reporter that says nothing, for library callers and tests.
    pub fn quiet() -> Progress {
        Progress { mode: Mode::Quiet, stdout: Mutex::new(()) }
    }

    fn emit(&self, event: Value) {
        let _guard = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{event}");
    }

    fn line(&self, text: String) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            Mode::Plain => eprintln!("{text}"),
            Mode::Json | Mode::Quiet => {}
        }
    }

    /// Bytes that will be downloaded: a blob shared by several images is announced once.
    pub fn plan_bytes(&self, blobs: usize, bytes: u64) {
        match &self.mode {
            Mode::Bars { bytes: b, .. } => b.inc_length(bytes),
            Mode::Plain => eprintln!("downloading {blobs} blob(s), {}", bundles::size::human(bytes)),
            Mode::Json => self.emit(json!({"event": "plan", "blobs": blobs, "bytes": bytes})),
            Mode::Quiet => {}
        }
    }

    pub fn plan_artifacts(&self, n: u64) {
        if let Mode::Bars { artifacts, .. } = &self.mode {
            artifacts.inc_length(n);
        }
    }

    pub fn bytes(&self, n: u64) {
        if let Mode::Bars { bytes, .. } = &self.mode {
            bytes.inc(n);
        }
    }

    pub fn blob_done(&self, digest: &str, size: u64, what: &str) {
        match &self.mode {
            Mode::Bars { .. } | Mode::Quiet => {}
            Mode::Plain => eprintln!("fetched {digest} ({}) for {what}", bundles::size::human(size)),
            Mode::Json => self.emit(json!({"event": "blob", "digest": digest, "size": size, "for": what})),
        }
    }

    pub fn artifact_done(&self, kind: &str, reference: &str, digest: &str) {
        match &self.mode {
            Mode::Bars { artifacts, .. } => {
                artifacts.inc(1);
                artifacts.set_message(reference.to_string());
            }
            Mode::Plain => eprintln!("{kind} {reference} {digest}"),
            Mode::Json => {
                self.emit(json!({"event": "artifact", "kind": kind, "reference": reference, "digest": digest}))
            }
            Mode::Quiet => {}
        }
    }

    /// Writing the bundle: (bytes done, bytes total) of the archive.
    pub fn packing(&self, done: u64, total: u64) {
        if let Mode::Bars { bytes, .. } = &self.mode {
            if bytes.message() != "pack" {
                bytes.set_message("pack");
                bytes.reset();
            }
            bytes.set_length(total);
            bytes.set_position(done);
        }
    }

    pub fn discovered(&self, chart: &str, image: &str, carried: bool) {
        match &self.mode {
            Mode::Json => self.emit(json!({"event": "discovered", "chart": chart, "image": image, "carried": carried})),
            _ => self.line(format!("{chart}: uses {image}{}", if carried { "" } else { " (not carried)" })),
        }
    }

    pub fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Json => self.emit(json!({"event": "warning", "message": message})),
            _ => self.line(format!("warning: {message}")),
        }
    }

    pub fn done(&self, summary: Value) {
        match &self.mode {
            Mode::Bars { bytes, artifacts, .. } => {
                bytes.finish_and_clear();
                artifacts.finish_and_clear();
            }
            Mode::Plain | Mode::Quiet => {}
            Mode::Json => self.emit(json!({"event": "done", "summary": summary})),
        }
    }
}
