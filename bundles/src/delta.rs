//! A delta names its base by the SHA-256 of the base's lock: read together, a set of bundles
//! must hold the base of every delta among them, or the delta's manifests point at blobs no one
//! has.

use crate::error::{Error, Result};
use crate::reader::Bundle;

/// Fails naming each delta whose base is not among `bundles`, and what to give instead.
pub fn check_bases(bundles: &[Bundle]) -> Result<()> {
    let mut locks = Vec::with_capacity(bundles.len());
    for b in bundles {
        locks.push(b.lock()?.sha256());
    }
    let missing: Vec<String> = bundles
        .iter()
        .filter_map(|b| b.meta().base.as_ref().map(|base| (b, base)))
        .filter(|(_, base)| !locks.contains(&base.lock_sha256))
        .map(|(b, base)| {
            format!(
                "{} is a delta over the bundle whose lock has sha256 {}{}",
                b.dir().display(),
                base.lock_sha256,
                base.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            )
        })
        .collect();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => {
            Err(Error::Usage(format!("{one}, which is not given: name the base bundle's directory before the delta's")))
        }
        many => Err(Error::Usage(format!(
            "{}; none of those bases is given: name each base bundle's directory before its delta's",
            many.join("; ")
        ))),
    }
}
