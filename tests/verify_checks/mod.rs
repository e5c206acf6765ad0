//! What the `install verify` tests read of its `--json` report.

use std::collections::BTreeSet;

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
