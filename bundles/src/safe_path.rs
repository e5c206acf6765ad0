//! Member names that may be written under a destination: relative, no `..`, no root, no drive;
//! and, inside a bundle's archive, only the names a bundle holds, each in one spelling.

use std::path::{Component, Path};

use crate::digest::from_blob_path;
use crate::error::{Error, Result};
use crate::layout::{INDEX_FILE, LAYOUT_FILE};
use crate::pack::{INNER_DIR, SUMS_FILE};

/// Checks an archive member name before anything is written for it.
pub fn check_member_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::malformed("empty member name"));
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(Error::malformed(format!("member '{name}' has a forbidden character")));
    }
    let p = Path::new(name);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(Error::malformed(format!("member '{name}' climbs out of the destination with '..'")))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::malformed(format!("member '{name}' is an absolute path")))
            }
        }
    }
    Ok(())
}

/// Checks a member of a bundle's archive: a safe name, and one of the names a bundle holds
/// (`SHA256SUMS`, `oci-layout`, `index.json`, `airgap/<file>`, `blobs/sha256/<hex>`) written as
/// pack writes it. Another spelling of a checked name (`./index.json`, `blobs/sha256/./<hex>`,
/// `a//b`) would land on the same file after the check, so it is refused.
pub fn check_bundle_member(name: &str) -> Result<()> {
    check_member_name(name)?;
    let plain = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains('/');
    let known = [SUMS_FILE, LAYOUT_FILE, INDEX_FILE].contains(&name)
        || name.strip_prefix(INNER_DIR).and_then(|r| r.strip_prefix('/')).is_some_and(plain)
        || from_blob_path(name).is_some_and(|d| name == format!("blobs/sha256/{}", d.digest()));
    if known {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "member '{name}' is not a name a bundle holds ({SUMS_FILE}, {LAYOUT_FILE}, {INDEX_FILE}, {INNER_DIR}/<file>, \
             blobs/sha256/<64 hex digits>, each written once and in that spelling)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes() {
        assert!(check_member_name("blobs/sha256/abc").is_ok());
        assert!(check_member_name("../x").unwrap_err().to_string().contains(".."));
        assert!(check_member_name("a/../../x").is_err());
        assert!(check_member_name("/etc/passwd").unwrap_err().to_string().contains("absolute"));
        assert!(check_member_name("").is_err());
    }

    #[test]
    fn a_bundle_member_has_one_spelling() {
        let hex = "a".repeat(64);
        for ok in ["SHA256SUMS", "oci-layout", "index.json", "airgap/bundle.lock.json", &format!("blobs/sha256/{hex}")]
        {
            assert!(check_bundle_member(ok).is_ok(), "{ok}");
        }
        for bad in [
            "./index.json".to_string(),
            format!("blobs/sha256/./{hex}"),
            format!("blobs//sha256/{hex}"),
            format!("blobs/sha256/{}", "A".repeat(64)),
            "blobs/sha256/abc".into(),
            "airgap/./x".into(),
            "airgap/.x".into(),
            "airgap/a/b".into(),
            "index.json/".into(),
            "other".into(),
        ] {
            let err = check_bundle_member(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }
}
