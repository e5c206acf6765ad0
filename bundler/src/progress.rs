//! Progress for three audiences: bars for people at a terminal, plain lines for logs, and one
//! JSON object per line on stdout for machines (`--json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

enum Mode {
    Bars {
        bytes: ProgressBar,
        artifacts: ProgressBar,
        multi: MultiProgress,
    },
    Plain,
    /// One JSON object a line, on stdout (or a buffer, in tests).
    Json(Mutex<Box<dyn Write + Send>>),
    Quiet,
}

fn bars(target: ProgressDrawTarget) -> Mode {
    let multi = MultiProgress::with_draw_target(target);
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
}

/// How a run reports as it goes: bars on a terminal, lines otherwise, JSON events with `--json`.
pub struct Progress {
    mode: Mode,
    stdout: Mutex<()>,
}

impl Progress {
    /// JSON events on stdout when `json`, else bars on a terminal or plain lines on stderr.
    pub fn new(json: bool) -> Progress {
        let mode = if json {
            Mode::Json(Mutex::new(Box::new(std::io::stdout())))
        } else if std::io::stderr().is_terminal() {
            bars(ProgressDrawTarget::stderr())
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
        if let Mode::Json(out) = &self.mode {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{event}").and_then(|_| out.flush());
        }
    }

    /// A line for people; it may quote what an upstream says (a chart's rendered image), so its
    /// control characters are escaped.
    fn line(&self, text: String) {
        let text = bundles::text::printable(&text).into_owned();
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            Mode::Plain => eprintln!("{text}"),
            Mode::Json(_) | Mode::Quiet => {}
        }
    }

    /// Bytes that will be downloaded: a blob shared by several images is announced once.
    pub fn plan_bytes(&self, blobs: usize, bytes: u64) {
        match &self.mode {
            Mode::Bars { bytes: b, .. } => b.inc_length(bytes),
            Mode::Plain => eprintln!("downloading {blobs} blob(s), {}", bundles::size::human(bytes)),
            Mode::Json(_) => self.emit(json!({"event": "plan", "blobs": blobs, "bytes": bytes})),
            Mode::Quiet => {}
        }
    }

    /// `n` more artifacts are to be fetched.
    pub fn plan_artifacts(&self, n: u64) {
        if let Mode::Bars { artifacts, .. } = &self.mode {
            artifacts.inc_length(n);
        }
    }

    /// `n` more bytes have been downloaded.
    pub fn bytes(&self, n: u64) {
        if let Mode::Bars { bytes, .. } = &self.mode {
            // Manifests, configs, charts and files arrive before the layers are planned: the
            // total grows with them, so the bar never shows more done than its total.
            let _one_at_a_time = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
            let done = bytes.position() + n;
            if done > bytes.length().unwrap_or(0) {
                bytes.set_length(done);
            }
            bytes.set_position(done);
        }
    }

    /// A blob is in the cache, fetched for the artifact `what`.
    pub fn blob_done(&self, digest: &str, size: u64, what: &str) {
        match &self.mode {
            Mode::Bars { .. } | Mode::Quiet => {}
            Mode::Plain => eprintln!("fetched {digest} ({}) for {what}", bundles::size::human(size)),
            Mode::Json(_) => self.emit(json!({"event": "blob", "digest": digest, "size": size, "for": what})),
        }
    }

    /// An artifact is resolved and all its blobs are in the cache.
    pub fn artifact_done(&self, kind: &str, reference: &str, digest: &str) {
        match &self.mode {
            Mode::Bars { artifacts, .. } => {
                artifacts.inc(1);
                artifacts.set_message(reference.to_string());
            }
            Mode::Plain => eprintln!("{kind} {reference} {digest}"),
            Mode::Json(_) => {
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

    /// Rendering `chart` found `image`; `carried` says whether the bundle will hold it.
    pub fn discovered(&self, chart: &str, image: &str, carried: bool) {
        match &self.mode {
            Mode::Json(_) => {
                self.emit(json!({"event": "discovered", "chart": chart, "image": image, "carried": carried}))
            }
            _ => self.line(format!("{chart}: uses {image}{}", if carried { "" } else { " (not carried)" })),
        }
    }

    /// Something the operator should know that does not stop the run.
    pub fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Json(_) => self.emit(json!({"event": "warning", "message": message})),
            _ => self.line(format!("warning: {message}")),
        }
    }

    /// A run's result, said on stdout too in `--json` mode when it failed: an `error` event is
    /// then the last line, so a machine reading the events learns why. People read stderr.
    pub fn outcome<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if let (Mode::Json(_), Err(e)) = (&self.mode, &result) {
            self.emit(json!({"event": "error", "message": bundles::text::error_chain(e.as_ref())}));
        }
        result
    }

    /// The run succeeded: clears the bars and, in `--json` mode, ends with a `done` event carrying `summary`.
    pub fn done(&self, summary: Value) {
        match &self.mode {
            Mode::Bars { bytes, artifacts, .. } => {
                bytes.finish_and_clear();
                artifacts.finish_and_clear();
            }
            Mode::Plain | Mode::Quiet => {}
            Mode::Json(_) => self.emit(json!({"event": "done", "summary": summary})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a test's events go, read back after.
    #[derive(Clone, Default)]
    struct Events(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Events {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// `lock` and `create` hand their result to `outcome`: a failure is the last event.
    #[test]
    fn a_failed_run_ends_its_json_events_with_the_error() {
        let events = Events::default();
        let p = Progress { mode: Mode::Json(Mutex::new(Box::new(events.clone()))), stdout: Mutex::new(()) };
        p.warn("slow upstream");
        assert!(p.outcome(Ok(())).is_ok());
        let err = anyhow::anyhow!("connection refused").context("GET http://127.0.0.1:9/v2/");
        assert!(p.outcome::<()>(Err(err)).is_err());
        let text = String::from_utf8(events.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            lines,
            [
                json!({"event": "warning", "message": "slow upstream"}),
                json!({"event": "error", "message": "GET http://127.0.0.1:9/v2/: connection refused"}),
            ]
        );
    }

    /// A config fetched before the layers were planned read `1.58 KiB/348 B`.
    #[test]
    fn the_download_bar_never_shows_more_done_than_its_total() {
        let p = Progress { mode: bars(ProgressDrawTarget::hidden()), stdout: Mutex::new(()) };
        let Mode::Bars { bytes, .. } = &p.mode else { unreachable!() };
        p.bytes(1620);
        p.plan_bytes(1, 348);
        p.bytes(348);
        assert_eq!((bytes.position(), bytes.length()), (1968, Some(1968)));
        p.bytes(100);
        assert_eq!((bytes.position(), bytes.length()), (2068, Some(2068)));
    }
}
