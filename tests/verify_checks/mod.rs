//! What the `install verify` tests read of its `--json` report, and a child process they stop.

use std::collections::BTreeSet;
use std::process::Child;

use serde_json::Value;

/// `(kind, subject)` of every failed check.
pub fn failed(checks: &[Value]) -> BTreeSet<(String, String)> {
    checks
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["subject"].as_str().unwrap().to_string()))
        .collect()
}

/// The detail of the one check of that kind and subject.
pub fn detail<'a>(checks: &'a [Value], kind: &str, subject: &str) -> &'a str {
    let c = checks.iter().find(|c| c["kind"] == kind && c["subject"] == subject);
    c.unwrap_or_else(|| panic!("no {kind} check of {subject}: {checks:#?}"))["detail"].as_str().unwrap()
}

/// A child process (a registry) killed when the test ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
