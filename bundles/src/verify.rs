//! Verification an auditor can keep as evidence: every part, every file beside it, the
//! signature, every member of the archive, every blob digest, every artifact's blobs, and the
//! lock and SBOMs against what the archive holds. Nothing stops at the first problem; each check
//! is recorded with what it compared.

mod members;
mod ties;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::artifact::list_artifacts;
use crate::checksums;
use crate::digest::{from_blob_path, sha256_reader, Digest};
use crate::layout::{BlobStore, Walk};
use crate::lock::{Lock, LOCK_FILE};
use crate::meta::META_FILE;
use crate::pack::{INNER_DIR, SUMS_FILE};
use crate::parts::is_part_name;
use crate::reader::Bundle;
use crate::regular_file;
use crate::sign::{self, SIGNATURE_SUFFIX};
use crate::text::printable;

/// `SHA256SUMS` beside the parts names a thousand parts at most and a few files.
const MAX_SUMS_SIZE: u64 = 1 << 20;
const MAX_SIGNATURE_SIZE: u64 = 64 << 10;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Ok,
    /// It does not.
    Failed,
    /// It could not be made (no key given, say).
    Skipped,
}

/// One check of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub check: &'static str,
    /// What it is checked on: a part, file or member.
    pub subject: String,
    /// How it ended.
    pub status: Status,
    /// What was expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn new(check: &'static str, subject: impl Into<String>, status: Status) -> Check {
        Check { check, subject: subject.into(), status, expected: None, actual: None, detail: None }
    }

    fn ok(check: &'static str, subject: impl Into<String>) -> Check {
        Check::new(check, subject, Status::Ok)
    }

    fn failed(check: &'static str, subject: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { detail: Some(detail.into()), ..Check::new(check, subject, Status::Failed) }
    }

    fn compared(check: &'static str, subject: impl Into<String>, expected: &str, actual: &str) -> Check {
        let status = if expected == actual { Status::Ok } else { Status::Failed };
        let mut c = Check::new(check, subject, status);
        c.expected = Some(expected.to_string());
        c.actual = Some(actual.to_string());
        if status == Status::Failed {
            c.detail = Some("content differs from its recorded SHA-256".into());
        }
        c
    }
}

/// Everything verification checked, for people (text) and machines (JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The airgap that verified.
    pub generator: String,
    /// The bundle's directory.
    pub bundle: String,
    /// When verification started.
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// The public key the signature was checked with.
    pub public_key: Option<String>,
    /// Whether every check held.
    pub ok: bool,
    /// Checks per status.
    pub counts: BTreeMap<String, usize>,
    /// Every check.
    pub checks: Vec<Check>,
}

impl Report {
    fn recount(&mut self) {
        self.counts.clear();
        for c in &self.checks {
            let key = match c.status {
                Status::Ok => "ok",
                Status::Failed => "failed",
                Status::Skipped => "skipped",
            };
            *self.counts.entry(key.to_string()).or_insert(0) += 1;
        }
        self.ok = self.checks.iter().all(|c| c.status != Status::Failed) && !self.checks.is_empty();
    }

    /// A signed bundle checked without the signer's key says nothing of who made it: the
    /// skipped signature check becomes a failure that says what to give.
    pub fn require_signature(&mut self) {
        let sig_name = format!("{SUMS_FILE}{SIGNATURE_SUFFIX}");
        if self.public_key.is_some() || !Path::new(&self.bundle).join(&sig_name).exists() {
            return;
        }
        for c in self.checks.iter_mut().filter(|c| c.check == "signature" && c.status == Status::Skipped) {
            c.status = Status::Failed;
            c.detail = Some(
                "the bundle is signed but no key was given: give the signer's public key with --key, \
                 or --no-signature-check to check everything but who signed it"
                    .into(),
            );
        }
        self.recount();
    }

    /// The checks that failed.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Failed)
    }

    /// One line per problem, naming the part, file or member, with control characters escaped:
    /// names come from the bundle.
    pub fn problem_lines(&self) -> Vec<String> {
        self.problems()
            .map(|c| {
                let mut line = format!("{}: {}", c.subject, c.detail.as_deref().unwrap_or("failed"));
                if let (Some(e), Some(a)) = (&c.expected, &c.actual) {
                    line.push_str(&format!(" (expected {e}, found {a})"));
                }
                printable(&line).into_owned()
            })
            .collect()
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "airgap bundle verification report\n\nbundle:     {}\nverified by: {}\nstarted:    {}\nfinished:   {}\npublic key: {}\nresult:     {}\n\n",
            self.bundle,
            self.generator,
            self.started,
            self.finished,
            self.public_key.as_deref().unwrap_or("(none given: signature not checked)"),
            if self.ok { "PASS" } else { "FAIL" },
        );
        for (k, v) in &self.counts {
            out.push_str(&format!("{k:>10}: {v}\n"));
        }
        out.push('\n');
        for c in &self.checks {
            let status = match c.status {
                Status::Ok => "ok     ",
                Status::Failed => "FAILED ",
                Status::Skipped => "skipped",
            };
            out.push_str(&format!("{status} {:<14} {}", c.check, c.subject));
            if let Some(e) = &c.expected {
                out.push_str(&format!("  expected {e}"));
            }
            if let Some(a) = &c.actual {
                if c.status == Status::Failed {
                    out.push_str(&format!("  found {a}"));
                }
            }
            if let Some(d) = &c.detail {
                out.push_str(&format!("  ({d})"));
            }
            out.push('\n');
        }
        printable(&out).into_owned()
    }
}

/// How to verify.
pub struct VerifyOptions {
    /// The minisign public key to check the signature with.
    pub key: Option<PathBuf>,
    /// Bundles a delta is laid over: blobs they hold count as present.
    pub bases: Vec<Bundle>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Checks the bundle in `dir`: parts, checksums, signature, metadata, every member and blob.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Report {
    let started = now();
    let mut checks = Vec::new();
    let outer = outer_checks(dir, opts, &mut checks);
    if let Some(outer_sums) = outer {
        let (file_checks, content_checks) =
            rayon::join(|| outer_file_checks(dir, &outer_sums), || archive_checks(dir, opts, &outer_sums));
        checks.extend(file_checks);
        checks.extend(content_checks);
    }
    let mut counts = BTreeMap::new();
    for c in &checks {
        let key = match c.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        *counts.entry(key.to_string()).or_insert(0) += 1;
    }
    Report {
        generator: crate::GENERATOR.to_string(),
        bundle: dir.display().to_string(),
        started,
        finished: now(),
        public_key: opts.key.as_ref().map(|k| k.display().to_string()),
        ok: checks.iter().all(|c| c.status != Status::Failed) && !checks.is_empty(),
        counts,
        checks,
    }
}

/// Reads `SHA256SUMS` and checks its signature; returns its entries when it could be read.
fn outer_checks(dir: &Path, opts: &VerifyOptions, checks: &mut Vec<Check>) -> Option<Vec<(String, String)>> {
    let sums_path = dir.join(SUMS_FILE);
    let text = match regular_file::read_bounded(&sums_path, MAX_SUMS_SIZE, SUMS_FILE)
        .and_then(|raw| String::from_utf8(raw).map_err(|_| crate::Error::invalid(&sums_path, "not text")))
    {
        Ok(t) => t,
        Err(e) => {
            checks.push(Check::failed("checksums", SUMS_FILE, format!("cannot read it: {e}")));
            return None;
        }
    };
    let entries = match checksums::parse(&text, SUMS_FILE) {
        Ok(e) => e,
        Err(e) => {
            checks.push(Check::failed("checksums", SUMS_FILE, e.to_string()));
            return None;
        }
    };
    if let Some(bad) = entries.iter().find(|(n, _)| n.contains('/') || n.starts_with('.')) {
        checks.push(Check::failed(
            "checksums",
            SUMS_FILE,
            format!("names a file outside the bundle directory: {}", bad.0),
        ));
        return None;
    }
    let sig_name = format!("{SUMS_FILE}{SIGNATURE_SUFFIX}");
    let sig_path = dir.join(&sig_name);
    match &opts.key {
        Some(key_path) => {
            let result = sign::load_public_key(key_path).and_then(|key| {
                let sig = regular_file::read_bounded(&sig_path, MAX_SIGNATURE_SIZE, "signature")
                    .and_then(|raw| String::from_utf8(raw).map_err(|_| crate::Error::invalid(&sig_path, "not text")))
                    .map_err(|e| crate::Error::invalid(&sig_path, format!("signature missing or unreadable: {e}")))?;
                sign::verify(text.as_bytes(), &sig, &key, &sig_path)
            });
            checks.push(match result {
                Ok(comment) => {
                    Check { detail: Some(format!("trusted comment: {comment}")), ..Check::ok("signature", &sig_name) }
                }
                Err(e) => Check::failed("signature", &sig_name, e.to_string()),
            });
        }
        None => {
            let detail =
                if sig_path.exists() { "signature present; give --key to check it" } else { "bundle is not signed" };
            checks.push(Check { detail: Some(detail.into()), ..Check::new("signature", &sig_name, Status::Skipped) });
        }
    }
    let listed: BTreeSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    if let Ok(rd) = fs::read_dir(dir) {
        let mut strays: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_part_name(n) && !listed.contains(n.as_str()))
            .collect();
        strays.sort();
        for s in strays {
            checks.push(Check::failed("part", s, "not listed in SHA256SUMS: a part of another bundle? remove it"));
        }
    }
    Some(entries)
}

/// Each file `SHA256SUMS` names, hashed; one that is not a regular file (a FIFO, a device) is
/// named and not read.
fn outer_file_checks(dir: &Path, entries: &[(String, String)]) -> Vec<Check> {
    entries
        .par_iter()
        .map(|(name, expected)| {
            let kind = if is_part_name(name) { "part" } else { "file" };
            let path = dir.join(name);
            match regular_file::open(&path).and_then(sha256_reader) {
                Ok((hex, size)) => {
                    let mut c = Check::compared(kind, name, expected, &hex);
                    if c.status == Status::Failed {
                        c.detail = Some(format!("{size} bytes; damaged or incomplete copy: copy this {kind} again"));
                    }
                    c
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Check::failed(kind, name, e.to_string()),
                Err(e) => Check::failed(kind, name, format!("missing or unreadable ({e}): copy it again")),
            }
        })
        .collect()
}

fn archive_checks(dir: &Path, opts: &VerifyOptions, outer_sums: &[(String, String)]) -> Vec<Check> {
    let bundle = match Bundle::open(dir) {
        Ok(b) => b,
        Err(e) => return vec![Check::failed("archive", META_FILE, e.to_string())],
    };
    let mut checks = Vec::new();
    let listed: BTreeSet<&str> = outer_sums.iter().map(|(n, _)| n.as_str()).collect();
    for p in &bundle.meta().archive.parts {
        if !listed.contains(p.name.as_str()) {
            checks.push(Check::failed("part", &p.name, "named by bundle.json but not by SHA256SUMS"));
        }
    }
    checks.extend(members::header_checks(&bundle));
    // Without the archive's own SHA256SUMS, members are still read, so each damaged one is named.
    let inner_sums = match bundle.read_member(SUMS_FILE).map_err(|e| e.to_string()).and_then(|raw| {
        let text = String::from_utf8(raw).map_err(|_| "SHA256SUMS inside the archive is not text".to_string())?;
        checksums::parse(&text, "archive SHA256SUMS").map_err(|e| e.to_string())
    }) {
        Ok(s) => Some(s),
        Err(e) => {
            checks.push(Check::failed("archive", format!("archive:{SUMS_FILE}"), e));
            None
        }
    };
    let expected: BTreeMap<&str, &str> = inner_sums.iter().flatten().map(|(n, h)| (n.as_str(), h.as_str())).collect();
    let members: Vec<_> = bundle.meta().members.iter().filter(|m| m.path != SUMS_FILE).collect();
    let hashed = members::hash(&bundle, &members);
    let mut seen = BTreeSet::new();
    for (path, result) in hashed {
        seen.insert(path);
        let subject = format!("archive:{path}");
        let hex = match result {
            Ok(hex) => hex,
            Err(e) => {
                checks.push(Check::failed("member", subject, e));
                continue;
            }
        };
        if let Some(d) = from_blob_path(path) {
            checks.push(Check::compared("blob-digest", subject.clone(), d.digest(), &hex));
        }
        match expected.get(path) {
            Some(want) => checks.push(Check::compared("member", subject, want, &hex)),
            None if inner_sums.is_some() => {
                checks.push(Check::failed("member", subject, "not listed in the archive's SHA256SUMS"))
            }
            None => {}
        }
    }
    for name in expected.keys().filter(|n| !seen.contains(**n)) {
        checks.push(Check::failed(
            "member",
            format!("archive:{name}"),
            "listed in the archive's SHA256SUMS but missing",
        ));
    }
    // The copies beside the parts must be the ones inside the archive.
    for (name, hex) in outer_sums {
        if let Some(inner) = expected.get(format!("{INNER_DIR}/{name}").as_str()) {
            checks.push(Check::compared("copy", name.clone(), inner, hex));
        }
    }
    checks.extend(content_checks(&bundle, &opts.bases, outer_sums));
    checks
}

/// Several bundles read as one store: a delta first, then its bases.
pub struct Layered<'a> {
    /// The bundles, the delta first.
    pub layers: Vec<&'a Bundle>,
}

impl BlobStore for Layered<'_> {
    fn blob_len(&self, d: &Digest) -> crate::Result<Option<u64>> {
        for b in &self.layers {
            if let Some(n) = b.blob_len(d)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    fn open_blob(&self, d: &Digest) -> crate::Result<Box<dyn Read + Send + '_>> {
        self.holder(d)?.open_blob(d)
    }

    fn read_whole(&self, d: &Digest) -> crate::Result<Vec<u8>> {
        self.holder(d)?.read_whole(d)
    }
}

impl Layered<'_> {
    /// The first layer that holds the blob.
    fn holder(&self, d: &Digest) -> crate::Result<&Bundle> {
        let found = self.layers.iter().find(|b| b.has_blob(d)).copied();
        found.ok_or_else(|| crate::Error::invalid(crate::digest::blob_path(d), "blob is missing"))
    }
}

/// The artifacts of index.json with all their blobs, and the lock and SBOMs against them.
fn content_checks(bundle: &Bundle, bases: &[Bundle], outer_sums: &[(String, String)]) -> Vec<Check> {
    let index = match bundle.index() {
        Ok(i) => i,
        Err(e) => return vec![Check::failed("artifacts", "index.json", e.to_string())],
    };
    let lock_name = format!("{INNER_DIR}/{LOCK_FILE}");
    let lock_raw = match bundle.read_member(&lock_name) {
        Ok(raw) => raw,
        Err(e) => return vec![Check::failed("artifacts", "lock", e.to_string())],
    };
    let lock = match Lock::from_json(&lock_raw, Path::new(&lock_name)) {
        Ok(l) => l,
        Err(e) => return vec![Check::failed("artifacts", "lock", e.to_string())],
    };
    let mut checks = Vec::new();
    // The artifacts as pack listed them: from this bundle alone, a delta's blobs that it does not
    // carry taken as its base's.
    let delta = lock.base.is_some();
    let in_base = |d: &Digest| delta && !bundle.has_blob(d);
    let mut walk = Walk::new(bundle, &in_base);
    let listed = list_artifacts(bundle, &index, &mut walk);
    if bases.is_empty() {
        checks.push(match &listed {
            Ok(a) => Check {
                detail: Some(if delta {
                    format!("{} artifacts; blobs not carried are expected in the base (not given)", a.len())
                } else {
                    format!("{} artifacts, {} blobs, all present", a.len(), walk.blobs.len())
                }),
                ..Check::ok("artifacts", "index.json")
            },
            Err(e) => Check::failed("artifacts", "index.json", e.to_string()),
        });
    } else {
        checks.push(layered_graph_check(bundle, bases, &index));
    }
    match &listed {
        Ok(artifacts) => checks.extend(ties::lock_checks(bundle, bases, artifacts, &walk.blobs, &lock)),
        Err(_) if bases.is_empty() => {}
        Err(e) => checks.push(Check::failed("lock", lock_name.as_str(), format!("cannot list the artifacts: {e}"))),
    }
    if bundle.meta().base != lock.base {
        checks.push(Check::failed("lock", META_FILE, "bundle.json and the lock name different bases"));
    }
    checks.extend(ties::sbom_checks(bundle, &lock_raw, &lock, outer_sums));
    checks
}

/// A delta laid over its bases: every blob of every artifact present in one of them.
fn layered_graph_check(bundle: &Bundle, bases: &[Bundle], index: &oci_spec::image::ImageIndex) -> Check {
    let mut layers = vec![bundle];
    layers.extend(bases.iter());
    let store = Layered { layers };
    let nowhere = |_: &Digest| false;
    let mut walk = Walk::new(&store, &nowhere);
    match list_artifacts(&store, index, &mut walk) {
        Ok(a) => Check {
            detail: Some(format!("{} artifacts, {} blobs, all present", a.len(), walk.blobs.len())),
            ..Check::ok("artifacts", "index.json")
        },
        Err(e) => Check::failed("artifacts", "index.json", e.to_string()),
    }
}
