//! Writing the configuration folder: owner-only folders and files, each file replaced in one
//! rename so that a crash or a full disk never leaves half a key behind.

use std::fs::{self, DirBuilder, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Creates `dir` (and its parents) owner-only, or makes an existing one owner-only.
pub fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, Permissions::from_mode(0o700))
        .with_context(|| format!("cannot chmod 700 {}", dir.display()))
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the same folder
/// (created 0600, so the secret is never readable by others, even for a moment).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".airgap-")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Makes an existing file owner-only (a key copied in with looser permissions).
pub fn tighten(path: &Path) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod 600 {}", path.display()))
}
