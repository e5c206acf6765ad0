//! Member names that may be written under a destination: relative, no `..`, no root, no drive.

use std::path::{Component, Path};

/// Checks an archive member name before anything is written for it.
pub fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty member name".into());
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(format!("member '{name}' has a forbidden character"));
    }
    let p = Path::new(name);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("member '{name}' climbs out of the destination with '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(format!("member '{name}' is an absolute path")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes() {
        assert!(check_member_name("blobs/sha256/abc").is_ok());
        assert!(check_member_name("../x").unwrap_err().contains(".."));
        assert!(check_member_name("a/../../x").is_err());
        assert!(check_member_name("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(check_member_name("").is_err());
    }
}
