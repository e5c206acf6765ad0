//! What ties the lock and the SBOMs to the content: an auditor reads them to know what was carried,
//! so each must say exactly what index.json and the archive hold, not merely hash to what
//! SHA256SUMS says.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Check, Layered};
use crate::artifact::{Artifact, Kind};
use crate::digest::{blob_path, parse_sha256, sha256_hex};
use crate::layout::BlobStore;
use crate::lock::{Lock, LOCK_FILE};
use crate::pack::INNER_DIR;
use crate::reader::Bundle;
use crate::sbom::{self, CYCLONEDX_FILE, SPDX_FILE};

/// The lock's artifacts are the ones index.json gives (kind, reference, digest, size, platforms,
/// content, sources); every blob it lists is carried (or, in a delta, in the base) at its size and
/// needed by an artifact; every blob carried is listed.
pub(super) fn lock_checks(
    bundle: &Bundle,
    bases: &[Bundle],
    listed: &[Artifact],
    walked: &BTreeMap<String, u64>,
    lock: &Lock,
) -> Vec<Check> {
    let subject = format!("{INNER_DIR}/{LOCK_FILE}");
    let mut checks = Vec::new();
    let key = |a: &Artifact| (a.kind, a.reference.clone());
    let from_index: BTreeMap<(Kind, String), &Artifact> = listed.iter().map(|a| (key(a), a)).collect();
    let mut from_lock: BTreeMap<(Kind, String), &Artifact> = BTreeMap::new();
    for a in &lock.artifacts {
        if from_lock.insert(key(a), a).is_some() {
            checks.push(Check::failed("lock", format!("lock:{}", a.reference), "listed twice"));
        }
    }
    for (k, a) in &from_lock {
        match from_index.get(k) {
            None => checks.push(Check::failed(
                "lock",
                format!("lock:{}", a.reference),
                format!("the lock names a {} that index.json does not hold", a.kind),
            )),
            Some(actual) if actual != a => checks.push(Check {
                expected: Some(describe(actual)),
                actual: Some(describe(a)),
                ..Check::failed("lock", format!("lock:{}", a.reference), "the lock does not say what index.json holds")
            }),
            Some(_) => {}
        }
    }
    for (k, a) in &from_index {
        if !from_lock.contains_key(k) {
            checks.push(Check::failed(
                "lock",
                format!("lock:{}", a.reference),
                format!("index.json holds this {} but the lock does not name it", a.kind),
            ));
        }
    }

    let delta = lock.base.is_some();
    let mut layers = vec![bundle];
    layers.extend(bases);
    let store = Layered { layers };
    let mut locked = BTreeSet::new();
    for b in &lock.blobs {
        let at = format!("lock:{}", b.digest);
        let d = match parse_sha256(&b.digest) {
            Ok(d) => d,
            Err(e) => {
                checks.push(Check::failed("lock", at, e.to_string()));
                continue;
            }
        };
        if !locked.insert(d.to_string()) {
            checks.push(Check::failed("lock", at, "listed twice"));
            continue;
        }
        match store.blob_len(&d) {
            Ok(Some(size)) if size == b.size => {}
            Ok(Some(size)) => checks.push(Check {
                expected: Some(format!("{size} bytes")),
                actual: Some(format!("{} bytes", b.size)),
                ..Check::failed("lock", at.clone(), "the lock gives this blob another size than the one carried")
            }),
            Ok(None) if delta && bases.is_empty() => {}
            Ok(None) => checks.push(Check::failed(
                "lock",
                at.clone(),
                if delta {
                    "listed in the lock but neither in this delta nor in its base"
                } else {
                    "listed in the lock but not carried"
                },
            )),
            Err(e) => checks.push(Check::failed("lock", at.clone(), e.to_string())),
        }
        // A delta's walk stops at manifests its base holds, so it cannot vouch for their children.
        if !delta && !walked.contains_key(&b.digest) {
            checks.push(Check::failed("lock", at, "listed in the lock but no artifact in index.json needs it"));
        }
    }
    for m in &bundle.meta().members {
        if let Some(d) = crate::digest::from_blob_path(&m.path) {
            if !locked.contains(&d.to_string()) {
                checks.push(Check::failed("lock", format!("archive:{}", blob_path(&d)), "carried but not in the lock"));
            }
        }
    }
    if checks.is_empty() {
        checks.push(Check {
            detail: Some(format!(
                "{} artifacts and {} blobs, as index.json and the archive hold them",
                lock.artifacts.len(),
                lock.blobs.len()
            )),
            ..Check::ok("lock", subject)
        });
    }
    checks
}

fn describe(a: &Artifact) -> String {
    serde_json::to_string(a).expect("an artifact serializes")
}

/// An artifact as an SBOM names it: its purl and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    purl: String,
    sha256: String,
}

/// Each SBOM names exactly the lock's artifacts, by purl and SHA-256, and the lock itself (its
/// document id is the lock's SHA-256); a carried airgap binary it names is the file
/// `SHA256SUMS` lists beside the parts, with that SHA-256.
pub(super) fn sbom_checks(
    bundle: &Bundle,
    lock_raw: &[u8],
    lock: &Lock,
    outer_sums: &[(String, String)],
) -> Vec<Check> {
    let doc_id = sha256_hex(lock_raw);
    let mut want: Vec<Entry> =
        lock.artifacts.iter().map(|a| Entry { purl: sbom::purl(a), sha256: sbom::checksum(a).to_string() }).collect();
    want.sort();
    let beside: BTreeMap<&str, &str> = outer_sums.iter().map(|(n, h)| (n.as_str(), h.as_str())).collect();
    let mut checks = Vec::new();
    for file in [SPDX_FILE, CYCLONEDX_FILE] {
        let name = format!("{INNER_DIR}/{file}");
        let read = bundle.read_member(&name).map_err(|e| e.to_string()).and_then(|raw| {
            let doc: Value = serde_json::from_slice(&raw).map_err(|e| format!("not JSON: {e}"))?;
            if file == SPDX_FILE {
                spdx_entries(&doc, &doc_id)
            } else {
                cyclonedx_entries(&doc, &doc_id)
            }
        });
        let (mut got, binaries) = match read {
            Ok(entries) => entries,
            Err(e) => {
                checks.push(Check::failed("sbom", name, e));
                continue;
            }
        };
        got.sort();
        let mut problems = Vec::new();
        for (file_name, sha256) in &binaries {
            match beside.get(file_name.as_str()) {
                Some(h) if h == sha256 => {}
                _ => problems
                    .push(format!("names a binary {file_name} with SHA-256 {sha256} that SHA256SUMS does not list")),
            }
        }
        problems.extend(difference(&want, &got).map(|e| format!("does not name {} ({})", e.purl, e.sha256)));
        problems.extend(
            difference(&got, &want).map(|e| format!("names {} ({}), which the lock does not", e.purl, e.sha256)),
        );
        if problems.is_empty() {
            checks.push(Check {
                detail: Some(format!("{} artifacts, as the lock names them", want.len())),
                ..Check::ok("sbom", name)
            });
        } else {
            checks.extend(problems.into_iter().map(|p| Check::failed("sbom", name.clone(), p)));
        }
    }
    checks
}

/// What `a` has beyond `b`, each entry counted as often as it appears.
fn difference<'a>(a: &'a [Entry], b: &'a [Entry]) -> impl Iterator<Item = &'a Entry> {
    let mut left: BTreeMap<&Entry, usize> = BTreeMap::new();
    for e in b {
        *left.entry(e).or_default() += 1;
    }
    a.iter().filter(move |e| match left.get_mut(e) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    })
}

type Entries = (Vec<Entry>, Vec<(String, String)>);

/// The first object of the array `list` whose `key` is `value`.
fn find<'a>(list: Option<&'a Value>, key: &str, value: &str) -> Option<&'a Value> {
    list?.as_array()?.iter().find(|o| o.get(key).and_then(Value::as_str) == Some(value))
}

/// The string at `field` of `v`, or empty.
fn text(v: Option<&Value>, field: &str) -> String {
    v.and_then(|v| v.get(field)).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn spdx_entries(doc: &Value, doc_id: &str) -> Result<Entries, String> {
    let namespace = text(Some(doc), "documentNamespace");
    if !namespace.ends_with(&format!("-{doc_id}")) {
        return Err(format!("its documentNamespace '{namespace}' is not the lock's (sha256 {doc_id})"));
    }
    let packages = doc.get("packages").and_then(Value::as_array).ok_or("no packages")?;
    let mut entries = Vec::new();
    let mut binaries = Vec::new();
    for p in packages {
        let sha256 = text(find(p.get("checksums"), "algorithm", "SHA256"), "checksumValue");
        if p.get("SPDXID").and_then(Value::as_str) == Some(sbom::BINARY_SPDX_ID) {
            binaries.push((text(Some(p), "name"), sha256));
        } else {
            let purl = text(find(p.get("externalRefs"), "referenceType", "purl"), "referenceLocator");
            entries.push(Entry { purl, sha256 });
        }
    }
    Ok((entries, binaries))
}

fn cyclonedx_entries(doc: &Value, doc_id: &str) -> Result<Entries, String> {
    let version = text(doc.pointer("/metadata/component"), "version");
    if version != doc_id {
        return Err(format!("its metadata.component.version '{version}' is not the lock's sha256 {doc_id}"));
    }
    let components = doc.get("components").and_then(Value::as_array).ok_or("no components")?;
    let mut entries = Vec::new();
    let mut binaries = Vec::new();
    for c in components {
        let sha256 = text(find(c.get("hashes"), "alg", "SHA-256"), "content");
        let kind = text(find(c.get("properties"), "name", "airgap:kind"), "value");
        if kind == sbom::BINARY_KIND {
            binaries.push((text(Some(c), "name"), sha256));
        } else {
            entries.push(Entry { purl: text(Some(c), "purl"), sha256 });
        }
    }
    Ok((entries, binaries))
}
