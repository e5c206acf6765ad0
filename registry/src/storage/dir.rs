//! The directory driver: a key is a path below the root. Objects are written through a
//! temporary file and a rename, so a reader never sees half of one and a failure (a full disk)
//! leaves nothing behind; temporary names start with `.` and are never listed.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::objects::{random_id, Entry, ObjectStore, ObjectWriter};
use crate::error::{ApiError, ApiResult};

/// The directory driver, rooted at the registry's storage directory.
pub struct DirObjects {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ApiError + '_ {
    move |e| ApiError::io(path.display(), e)
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl DirObjects {
    /// Makes `dirs` below `root` up front, so a root that cannot be written fails at start-up.
    pub fn open(root: &Path, dirs: &[&str]) -> anyhow::Result<DirObjects> {
        for sub in dirs {
            let p = root.join(sub);
            fs::create_dir_all(&p)
                .map_err(|e| anyhow::anyhow!("cannot create storage directory {}: {e}", p.display()))?;
        }
        Ok(DirObjects { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// A new temporary file beside the object, its directory made if need be. With `sync` (a
    /// streamed object: an uploaded blob), the content is on the disk before the rename shows it.
    fn open_writer(&self, key: &str, sync: bool) -> ApiResult<DirWriter> {
        let dest = self.path(key);
        let dir = dest.parent().expect("object keys have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(".tmp-{}", random_id()));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(DirWriter { file, tmp, dest, sync, done: false })
    }
}

impl ObjectStore for DirObjects {
    fn get(&self, key: &str) -> ApiResult<Option<Vec<u8>>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(ApiError::io(path.display(), e)),
        }
    }

    fn read(&self, key: &str, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        let path = self.path(key);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
        Ok(Box::new(f.take(len)))
    }

    fn head(&self, key: &str) -> ApiResult<Option<u64>> {
        let path = self.path(key);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(ApiError::io(path.display(), e)),
        }
    }

    fn list(&self, prefix: &str) -> ApiResult<Vec<Entry>> {
        let (dir_key, start) = prefix.rsplit_once('/').map_or(("", prefix), |(d, s)| (d, s));
        let dir = self.path(dir_key);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
            Err(e) => return Err(ApiError::io(dir.display(), e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.starts_with(start) {
                continue;
            }
            let meta = match e.metadata() {
                Ok(m) => m,
                // Deleted since the directory was read.
                Err(err) if not_found(&err) => continue,
                Err(err) => return Err(ApiError::io(e.path().display(), err)),
            };
            let key = if dir_key.is_empty() { name } else { format!("{dir_key}/{name}") };
            out.push(if meta.is_dir() {
                Entry { key: format!("{key}/"), dir: true, size: 0, modified: None }
            } else {
                Entry { key, dir: false, size: meta.len(), modified: meta.modified().ok() }
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> ApiResult<()> {
        let mut w = self.open_writer(key, false)?;
        w.write_all(bytes).map_err(io_err(&w.tmp))?;
        Box::new(w).commit()
    }

    fn delete(&self, key: &str) -> ApiResult<bool> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(ApiError::io(path.display(), e)),
        }
    }

    fn writer<'a>(&'a self, key: &str) -> ApiResult<Box<dyn ObjectWriter + 'a>> {
        Ok(Box::new(self.open_writer(key, true)?))
    }

    /// A rename of the file, synced first as a streamed object is: what `to` shows (a blob) is on
    /// the disk before it shows.
    fn rename(&self, from: &str, to: &str) -> ApiResult<()> {
        let (src, dest) = (self.path(from), self.path(to));
        File::open(&src).and_then(|f| f.sync_all()).map_err(io_err(&src))?;
        let dir = dest.parent().expect("object keys have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::rename(&src, &dest).map_err(io_err(&dest))
    }
}

struct DirWriter {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    sync: bool,
    done: bool,
}

impl Write for DirWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl ObjectWriter for DirWriter {
    fn commit(mut self: Box<Self>) -> ApiResult<()> {
        if self.sync {
            self.file.sync_all().map_err(io_err(&self.tmp))?;
        }
        fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest))?;
        self.done = true;
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}

impl Drop for DirWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
