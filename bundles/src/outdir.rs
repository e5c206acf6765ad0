//! Output directories that are either finished or gone: a failed write removes what it made.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// A new or empty folder being written: what was written is removed again unless [`OutDir::keep`] is called.
pub struct OutDir {
    dir: PathBuf,
    created: bool,
    done: bool,
}

impl OutDir {
    /// Takes a directory that does not exist yet or is empty; anything else is refused, so
    /// nothing of the user's is ever overwritten or removed.
    pub fn prepare(dir: &Path) -> Result<OutDir> {
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::invalid(dir, "directory exists and is not empty: choose a new one"));
                }
                Ok(OutDir { dir: dir.to_path_buf(), created: false, done: false })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).at(dir)?;
                Ok(OutDir { dir: dir.to_path_buf(), created: true, done: false })
            }
            Err(e) => Err(Error::io(dir, e)),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The folder is complete: it stays.
    pub fn keep(mut self) {
        self.done = true;
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.created {
            let _ = fs::remove_dir_all(&self.dir);
        } else if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
    }
}

/// Writes `bytes` to `dir/name` through a temporary name, so a reader never sees half a file.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.partial"));
    fs::write(&tmp, bytes).at(&tmp)?;
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).at(&dest)
}
