//! A directory that accepts pushes.
//!
//! ```text
//! blobs/sha256/<hex>                          content, written once, by rename
//! uploads/<id>, uploads/<id>.repo             sessions in progress and the repository each is for
//! repositories/<name>/_blobs/<hex>            the blobs a repository may serve
//! repositories/<name>/_manifests/<hex>        its manifests (the file holds the media type)
//! repositories/<name>/_tags/<tag>             tag → digest
//! repositories/<name>/_referrers/<subject>/<hex>  descriptor JSON, kept on push for the referrers API
//! ```
//!
//! Name components never start with `_` (see `names`), so the `_` directories cannot collide
//! with nested repositories. A blob appears under `blobs/` only after its digest is checked, so
//! two clients racing on one blob both succeed and a killed upload leaves only its session file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bundles::digest::{blob_path, Digest};
use serde_json::Value;

use super::{subject_of, NewManifest, Storage, StoredManifest, WritableStorage};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{hash_reader, parse_digest};

pub struct DirStore {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ApiError + '_ {
    move |e| ApiError::io(path.display(), e)
}

/// `Ok(None)` for a missing file, so lookups read as lookups.
fn read_opt(path: &Path) -> ApiResult<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::io(path.display(), e)),
    }
}

fn remove_opt(path: &Path) -> ApiResult<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ApiError::io(path.display(), e)),
    }
}

/// Writes through a temporary file and a rename, so readers never see half a file, and a
/// failure (a full disk) leaves nothing behind.
fn write_atomic(path: &Path, bytes: &[u8]) -> ApiResult<()> {
    let dir = path.parent().expect("store paths have a parent");
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".tmp-{}", random_id()));
    let written =
        fs::write(&tmp, bytes).map_err(io_err(&tmp)).and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Copies a request body into the session file, telling the client's failures (the body) from
/// the server's (the disk).
fn copy_chunk(id: &str, data: &mut dyn Read, f: &mut File, file: &Path) -> ApiResult<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApiError::request_body(format!("upload {id}"), e)),
        };
        f.write_all(&buf[..n]).map_err(io_err(file))?;
        copied += n as u64;
    }
}

pub fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS provides randomness");
    hex::encode(b)
}

fn sorted_names(dir: &Path) -> ApiResult<Option<Vec<String>>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApiError::io(dir.display(), e)),
    };
    let mut names = Vec::new();
    for e in entries {
        let name = e.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(Some(names))
}

impl DirStore {
    pub fn open(root: &Path) -> anyhow::Result<DirStore> {
        for sub in ["blobs/sha256", "blobs/sha512", "uploads", "repositories"] {
            let p = root.join(sub);
            fs::create_dir_all(&p)
                .map_err(|e| anyhow::anyhow!("cannot create storage directory {}: {e}", p.display()))?;
        }
        Ok(DirStore { root: root.to_path_buf() })
    }

    fn repo(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo)
    }

    fn blob_file(&self, d: &Digest) -> PathBuf {
        self.root.join(blob_path(d))
    }

    fn upload_file(&self, id: &str) -> ApiResult<PathBuf> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::new(Code::BlobUploadUnknown, format!("'{id}' is not an upload session")));
        }
        Ok(self.root.join("uploads").join(id))
    }

    /// The session file, after checking that it belongs to `repo`.
    fn session(&self, repo: &str, id: &str) -> ApiResult<Option<PathBuf>> {
        let file = self.upload_file(id)?;
        match read_opt(&file.with_extension("repo"))? {
            Some(owner) if owner == repo.as_bytes() => Ok(Some(file)),
            _ => Ok(None),
        }
    }

    fn unknown_upload(repo: &str, id: &str) -> ApiError {
        ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {repo}"))
    }

    fn end_session(&self, file: &Path) {
        let _ = fs::remove_file(file);
        let _ = fs::remove_file(file.with_extension("repo"));
    }

    fn link(&self, repo: &str, kind: &str, d: &Digest, content: &[u8]) -> ApiResult<()> {
        write_atomic(&self.repo(repo).join(kind).join(d.digest()), content)
    }

    fn linked(&self, repo: &str, kind: &str, d: &Digest) -> PathBuf {
        self.repo(repo).join(kind).join(d.digest())
    }

    fn collect_repos(&self, dir: &Path, prefix: &str, out: &mut Vec<String>) -> ApiResult<()> {
        for name in sorted_names(dir)?.unwrap_or_default() {
            if name.starts_with('_') {
                continue;
            }
            let path = dir.join(&name);
            let full = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if sorted_names(&path.join("_manifests"))?.is_some_and(|m| !m.is_empty()) {
                out.push(full.clone());
            }
            if path.is_dir() {
                self.collect_repos(&path, &full, out)?;
            }
        }
        Ok(())
    }
}

impl Storage for DirStore {
    fn repositories(&self) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        self.collect_repos(&self.root.join("repositories"), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        if !self.repo(repo).join("_manifests").is_dir() {
            return Ok(None);
        }
        Ok(Some(sorted_names(&self.repo(repo).join("_tags"))?.unwrap_or_default()))
    }

    fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        let path = self.repo(repo).join("_tags").join(tag);
        match read_opt(&path)? {
            None => Ok(None),
            Some(b) => parse_digest(String::from_utf8_lossy(&b).trim())
                .map(Some)
                .map_err(|e| ApiError::new(Code::Internal, format!("{}: {}", path.display(), e.message))),
        }
    }

    fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>> {
        let Some(media_type) = read_opt(&self.linked(repo, "_manifests", d))? else { return Ok(None) };
        let file = self.blob_file(d);
        let bytes = fs::read(&file).map_err(io_err(&file))?;
        Ok(Some(StoredManifest { bytes, media_type: String::from_utf8_lossy(&media_type).into_owned() }))
    }

    fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        if !self.linked(repo, "_blobs", d).exists() {
            return Ok(None);
        }
        let file = self.blob_file(d);
        match fs::metadata(&file) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::io(file.display(), e)),
        }
    }

    fn open_blob(&self, _repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        let file = self.blob_file(d);
        let mut f = File::open(&file).map_err(io_err(&file))?;
        f.seek(SeekFrom::Start(start)).map_err(io_err(&file))?;
        Ok(Box::new(f.take(len)))
    }

    fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>> {
        let dir = self.repo(repo).join("_referrers").join(d.digest());
        let mut out = Vec::new();
        for name in sorted_names(&dir)?.unwrap_or_default() {
            let path = dir.join(name);
            if let Some(bytes) = read_opt(&path)? {
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::new(Code::Internal, format!("{}: {e}", path.display())))?,
                );
            }
        }
        Ok(out)
    }

    fn writable(&self) -> Option<&dyn WritableStorage> {
        Some(self)
    }
}

impl WritableStorage for DirStore {
    fn start_upload(&self, repo: &str) -> ApiResult<String> {
        let id = random_id();
        let file = self.upload_file(&id)?;
        File::create(&file).map_err(io_err(&file))?;
        fs::write(file.with_extension("repo"), repo).map_err(io_err(&file))?;
        Ok(id)
    }

    fn upload_len(&self, repo: &str, id: &str) -> ApiResult<Option<u64>> {
        match self.session(repo, id)? {
            Some(f) => Ok(Some(fs::metadata(&f).map_err(io_err(&f))?.len())),
            None => Ok(None),
        }
    }

    fn append_upload(&self, repo: &str, id: &str, offset: u64, data: &mut dyn Read) -> ApiResult<u64> {
        let file = self.session(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        let mut f = OpenOptions::new().append(true).open(&file).map_err(io_err(&file))?;
        let len = f.metadata().map_err(io_err(&file))?.len();
        if offset != len {
            return Err(ApiError::new(
                Code::RangeInvalid,
                format!("upload {id} has {len} bytes; a chunk starting at {offset} does not follow on"),
            ));
        }
        let copied = copy_chunk(id, data, &mut f, &file);
        if copied.is_err() {
            // A chunk is kept whole or not at all, so the session's length stays true.
            f.set_len(len).map_err(io_err(&file))?;
        }
        Ok(len + copied?)
    }

    fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> ApiResult<()> {
        let file = self.session(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        let result = (|| {
            let f = File::open(&file).map_err(io_err(&file))?;
            let got = hash_reader(digest.algorithm().as_ref(), &f).map_err(io_err(&file))?;
            if &got != digest {
                return Err(ApiError::new(Code::DigestInvalid, format!("upload {id} hashes to {got}, not {digest}")));
            }
            f.sync_all().map_err(io_err(&file))?;
            let dest = self.blob_file(digest);
            if !dest.exists() {
                fs::rename(&file, &dest).map_err(io_err(&dest))?;
            }
            self.link(repo, "_blobs", digest, b"")
        })();
        self.end_session(&file);
        result
    }

    fn expire_uploads(&self, idle_for: Duration) -> ApiResult<usize> {
        let dir = self.root.join("uploads");
        let mut ended = 0;
        for name in sorted_names(&dir)?.unwrap_or_default() {
            // The content file is touched by every chunk; its `.repo` companion only at the start,
            // and alone it is a session whose start was cut short.
            let content = dir.join(name.trim_end_matches(".repo"));
            let touched = fs::metadata(&content).or_else(|_| fs::metadata(dir.join(&name))).and_then(|m| m.modified());
            let idle = match touched {
                Ok(t) => t.elapsed().unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ApiError::io(content.display(), e)),
            };
            if idle > idle_for {
                self.end_session(&content);
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn cancel_upload(&self, repo: &str, id: &str) -> ApiResult<bool> {
        match self.session(repo, id)? {
            Some(f) => {
                self.end_session(&f);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn mount_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        if !self.blob_file(d).exists() {
            return Ok(false);
        }
        self.link(repo, "_blobs", d, b"")?;
        Ok(true)
    }

    fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> ApiResult<()> {
        let dest = self.blob_file(m.digest);
        if !dest.exists() {
            write_atomic(&dest, m.bytes)?;
        }
        // The manifest is also a blob of the repository, as distribution serves it.
        self.link(repo, "_blobs", m.digest, b"")?;
        self.link(repo, "_manifests", m.digest, m.media_type.as_bytes())?;
        if let Some((subject, desc)) = &m.referrer {
            let path = self.repo(repo).join("_referrers").join(subject.digest()).join(m.digest.digest());
            write_atomic(&path, &serde_json::to_vec(desc).expect("a descriptor serializes"))?;
        }
        for tag in m.tags {
            write_atomic(&self.repo(repo).join("_tags").join(tag), m.digest.to_string().as_bytes())?;
        }
        Ok(())
    }

    fn delete_manifest(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        let Some(m) = self.manifest(repo, d)? else { return Ok(false) };
        for tag in self.tags(repo)?.unwrap_or_default() {
            if self.resolve_tag(repo, &tag)?.as_ref() == Some(d) {
                remove_opt(&self.repo(repo).join("_tags").join(tag))?;
            }
        }
        if let Some(s) = subject_of(&m.bytes) {
            remove_opt(&self.repo(repo).join("_referrers").join(s.digest()).join(d.digest()))?;
        }
        remove_opt(&self.linked(repo, "_manifests", d))
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> ApiResult<bool> {
        remove_opt(&self.repo(repo).join("_tags").join(tag))
    }

    fn delete_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        remove_opt(&self.linked(repo, "_blobs", d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        hash_reader("sha256", bytes).unwrap()
    }

    #[test]
    fn a_blob_appears_only_after_its_digest_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        let good = digest_of(b"hello");
        let id = store.start_upload("a/b").unwrap();
        assert_eq!(store.append_upload("a/b", &id, 0, &mut &b"hel"[..]).unwrap(), 3);
        assert_eq!(store.append_upload("a/b", &id, 2, &mut &b"lo"[..]).unwrap_err().code, Code::RangeInvalid);
        assert_eq!(store.append_upload("a/b", &id, 3, &mut &b"lo"[..]).unwrap(), 5);
        assert!(store.upload_len("other", &id).unwrap().is_none(), "a session belongs to its repository");
        let wrong = digest_of(b"other");
        assert_eq!(store.finish_upload("a/b", &id, &wrong).unwrap_err().code, Code::DigestInvalid);
        assert!(!store.blob_file(&wrong).exists() && store.blob_len("a/b", &good).unwrap().is_none());
        assert!(store.upload_len("a/b", &id).unwrap().is_none(), "a failed finish ends the session");

        let id = store.start_upload("a/b").unwrap();
        store.append_upload("a/b", &id, 0, &mut &b"hello"[..]).unwrap();
        store.finish_upload("a/b", &id, &good).unwrap();
        assert_eq!(store.blob_len("a/b", &good).unwrap(), Some(5));
        assert_eq!(store.blob_len("c", &good).unwrap(), None, "blobs are per repository until mounted");
        assert!(store.mount_blob("c", &good).unwrap());
        let mut out = String::new();
        store.open_blob("c", &good, 1, 3).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "ell");
    }

    #[test]
    fn idle_uploads_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        let (old, fresh, cut) =
            (store.start_upload("a").unwrap(), store.start_upload("a").unwrap(), store.start_upload("a").unwrap());
        let hour = Duration::from_secs(3600);
        let long_ago = std::time::SystemTime::now() - 2 * hour;
        File::options().write(true).open(store.upload_file(&old).unwrap()).unwrap().set_modified(long_ago).unwrap();
        // A session whose start was cut short between its two files.
        let cut = store.upload_file(&cut).unwrap();
        fs::remove_file(&cut).unwrap();
        File::options().write(true).open(cut.with_extension("repo")).unwrap().set_modified(long_ago).unwrap();
        assert_eq!(store.expire_uploads(hour).unwrap(), 2);
        assert!(store.upload_len("a", &old).unwrap().is_none());
        assert!(!store.upload_file(&old).unwrap().with_extension("repo").exists());
        assert!(!cut.with_extension("repo").exists());
        assert_eq!(store.upload_len("a", &fresh).unwrap(), Some(0));
    }

    #[test]
    fn a_chunk_that_fails_half_way_is_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        let id = store.start_upload("a").unwrap();
        store.append_upload("a", &id, 0, &mut &b"abc"[..]).unwrap();
        let mut cut = (&b"def"[..]).chain(FailingRead);
        assert_eq!(store.append_upload("a", &id, 3, &mut cut).unwrap_err().code, Code::BlobUploadInvalid);
        assert_eq!(store.upload_len("a", &id).unwrap(), Some(3));
    }

    struct FailingRead;

    impl Read for FailingRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "the client went away"))
        }
    }

    #[test]
    fn uploads_ids_cannot_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        assert_eq!(store.upload_len("a", "../../etc/passwd").unwrap_err().code, Code::BlobUploadUnknown);
    }
}
