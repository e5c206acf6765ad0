//! `-v` and `-q`, for every command: how much goes to stderr. stdout, where commands print
//! their results, is the same either way.

use std::fs::File;
use std::io::Write;

/// Where the final error goes: stderr as the command was started with.
#[derive(Default)]
pub struct Errors {
    verbose: bool,
    /// The original stderr, kept while `-q` points fd 2 at /dev/null.
    saved: Option<File>,
}

/// With `verbose`, errors with their causes and a backtrace; with `quiet`, nothing on stderr
/// but the final error.
pub fn apply(verbose: bool, quiet: bool) -> Errors {
    if verbose {
        // anyhow captures a backtrace when an error is made only if this is set.
        std::env::set_var("RUST_BACKTRACE", "1");
    }
    let saved = if quiet { silence_stderr() } else { None };
    Errors { verbose, saved }
}

/// Points fd 2 at /dev/null, for this process and what it starts; returns the original stderr.
/// Where that cannot be done, stderr stays as it was.
fn silence_stderr() -> Option<File> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
    let original = rustix::io::dup(std::io::stderr()).ok()?;
    rustix::stdio::dup2_stderr(&null).ok()?;
    Some(File::from(original))
}

impl Errors {
    pub fn print(mut self, e: &anyhow::Error) {
        let text = if self.verbose {
            format!("error: {e:?}")
        } else {
            // Each cause once (`{e:#}` repeats an I/O error its path already quotes).
            format!("error: {}", bundles::text::error_chain(e.as_ref()))
        };
        // Names read from bundles and upstreams are printed with their control characters escaped.
        let line = format!("{}\n", bundles::text::printable(&text));
        let _ = match &mut self.saved {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}
