//! The store that accepts pushes, written once over any [`ObjectStore`] driver (a directory, an
//! S3-compatible bucket), in the layout both have always had:
//!
//! ```text
//! blobs/sha256/<hex>                          content, written only after its digest is checked
//! uploads/<id>.repo                           an upload session, and the repository it is for
//! uploads/<id>.<offset, 20 digits>            the bytes it has received, a piece per chunk part
//! repositories/<name>/_blobs/<hex>            the blobs a repository may serve (holds the size)
//! repositories/<name>/_manifests/<hex>        its manifests (holds the media type)
//! repositories/<name>/_tags/<tag>             tag → digest
//! repositories/<name>/_referrers/<subject>/<hex>  descriptor JSON, kept on push for the referrers API
//! ```
//!
//! Name components never start with `_` (see `names`), so the `_` directories cannot collide
//! with nested repositories. Everything a request needs is in the store, so replicas sharing a
//! bucket can serve one registry: an upload started on one may be continued and finished on
//! another. Objects cannot be appended to, so each chunk is stored as pieces of its own;
//! finishing streams the pieces through the hash into the blob's writer, committed only when
//! the digest matches; an upload of one piece (most blobs) is hashed and then moved into place. Two clients racing on one blob both succeed, and a killed upload leaves
//! only its session.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bundles::digest::{blob_path, Digest};
use serde_json::Value;

use super::dir::DirObjects;
use super::objects::{random_id, ObjectStore};
use super::s3::{S3Location, S3Objects};
use super::{subject_of, NewManifest, Storage, StoredManifest, WritableStorage};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{hash_reader, parse_digest};

/// A request body is stored in pieces of at most this size: it bounds the memory of one upload.
const PIECE: usize = 8 << 20;
const UPLOADS: &str = "uploads/";

/// Where each thing lives, the one place that says so.
mod paths {
    use bundles::digest::Digest;

    pub fn repo(repo: &str) -> String {
        format!("repositories/{repo}/")
    }

    /// `kind` is `_blobs` or `_manifests`.
    pub fn link(repo: &str, kind: &str, d: &Digest) -> String {
        format!("repositories/{repo}/{kind}/{}", d.digest())
    }

    pub fn tags(repo: &str) -> String {
        format!("repositories/{repo}/_tags/")
    }

    pub fn tag(repo: &str, tag: &str) -> String {
        format!("{}{tag}", tags(repo))
    }

    pub fn referrers(repo: &str, subject: &Digest) -> String {
        format!("repositories/{repo}/_referrers/{}/", subject.digest())
    }

    pub fn referrer(repo: &str, subject: &Digest, d: &Digest) -> String {
        format!("{}{}", referrers(repo, subject), d.digest())
    }

    /// Every object of a session starts with this.
    pub fn session(id: &str) -> String {
        format!("{}{id}", super::UPLOADS)
    }

    pub fn session_owner(id: &str) -> String {
        format!("{}.repo", session(id))
    }

    pub fn piece(id: &str, offset: u64) -> String {
        // Zero-padded offsets list in order.
        format!("{}.{offset:020}", session(id))
    }
}

/// The writable store: the registry's layout over a driver.
pub struct LayoutStore {
    objects: Box<dyn ObjectStore>,
}

impl LayoutStore {
    /// The layout over any driver.
    pub fn new(objects: impl ObjectStore + 'static) -> LayoutStore {
        LayoutStore { objects: Box::new(objects) }
    }

    /// Over a directory, whose top folders are made now so an unwritable root fails at start-up.
    pub fn dir(root: &Path) -> anyhow::Result<LayoutStore> {
        let tops = ["blobs/sha256", "blobs/sha512", UPLOADS, "repositories"];
        Ok(LayoutStore::new(DirObjects::open(root, &tops)?))
    }

    /// Over a bucket, checked at once (see [`S3Objects::open`]).
    pub fn s3(location: &S3Location) -> anyhow::Result<LayoutStore> {
        Ok(LayoutStore::new(S3Objects::open(location)?))
    }

    fn check_upload_id(id: &str) -> ApiResult<()> {
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(ApiError::new(Code::BlobUploadUnknown, format!("'{id}' is not an upload session")))
        }
    }

    fn unknown_upload(repo: &str, id: &str) -> ApiError {
        ApiError::new(Code::BlobUploadUnknown, format!("no upload {id} in progress for {repo}"))
    }

    /// The session's pieces (key, size) in order, after checking that it belongs to `repo`.
    fn pieces(&self, repo: &str, id: &str) -> ApiResult<Option<Vec<(String, u64)>>> {
        Self::check_upload_id(id)?;
        if self.objects.get(&paths::session_owner(id))?.as_deref() != Some(repo.as_bytes()) {
            return Ok(None);
        }
        let owner = paths::session_owner(id);
        let listed = self.objects.list(&format!("{}.", paths::session(id)))?;
        Ok(Some(listed.into_iter().filter(|e| !e.dir && e.key != owner).map(|e| (e.key, e.size)).collect()))
    }

    /// Removes the session's objects, its owner last: a session cut short here is still found
    /// and expired.
    fn end_session(&self, id: &str) -> ApiResult<()> {
        let owner = paths::session_owner(id);
        for e in self.objects.list(&paths::session(id))? {
            if e.key != owner {
                self.objects.delete(&e.key)?;
            }
        }
        self.objects.delete(&owner)?;
        Ok(())
    }

    /// Streams the pieces in order through `sink`, returning their digest under `algorithm`.
    fn hash_pieces(&self, pieces: &[(String, u64)], algorithm: &str, sink: &mut dyn Write) -> ApiResult<Digest> {
        let mut reader = PiecesReader { objects: self.objects.as_ref(), pieces: pieces.iter(), current: None };
        let mut tee = Tee { inner: &mut reader, sink };
        hash_reader(algorithm, &mut tee).map_err(|e| ApiError::io("reading an upload back", e))
    }

    /// Puts the body's pieces from `at`; stops at the body's end or the first failure.
    fn put_pieces(&self, id: &str, mut at: u64, data: &mut dyn Read, put: &mut Vec<String>) -> ApiResult<u64> {
        let mut buf = Vec::with_capacity(PIECE);
        loop {
            read_piece(data, &mut buf).map_err(|e| ApiError::request_body(format!("upload {id}"), e))?;
            if buf.is_empty() {
                return Ok(at);
            }
            let key = paths::piece(id, at);
            self.objects.put(&key, &buf)?;
            put.push(key);
            at += buf.len() as u64;
        }
    }

    fn collect_repos(&self, dir: &str, name: &str, out: &mut Vec<String>) -> ApiResult<()> {
        for sub in self.objects.list(dir)?.into_iter().filter(|e| e.dir) {
            let child = sub.key[dir.len()..].trim_end_matches('/');
            if child == "_manifests" && !name.is_empty() {
                if !self.objects.list(&sub.key)?.is_empty() {
                    out.push(name.to_string());
                }
            } else if !child.starts_with('_') {
                let full = if name.is_empty() { child.to_string() } else { format!("{name}/{child}") };
                self.collect_repos(&sub.key, &full, out)?;
            }
        }
        Ok(())
    }

    fn get_text(&self, key: &str) -> ApiResult<Option<String>> {
        Ok(self.objects.get(key)?.map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    fn link_blob(&self, repo: &str, d: &Digest, size: u64) -> ApiResult<()> {
        self.objects.put(&paths::link(repo, "_blobs", d), size.to_string().as_bytes())
    }
}

/// The pieces of an upload, read one after the other as a single stream.
struct PiecesReader<'a> {
    objects: &'a dyn ObjectStore,
    pieces: std::slice::Iter<'a, (String, u64)>,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for PiecesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                match r.read(buf)? {
                    0 => self.current = None,
                    n => return Ok(n),
                }
            }
            let Some((key, size)) = self.pieces.next() else { return Ok(0) };
            self.current = Some(self.objects.read(key, 0, *size).map_err(io::Error::other)?);
        }
    }
}

/// Copies what is read into `sink` as well.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    sink: &'a mut dyn Write,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Fills `buf` from `r` up to [`PIECE`], stopping early only at the end of the stream.
fn read_piece(r: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut chunk = vec![0u8; 256 << 10];
    while buf.len() < PIECE {
        let want = chunk.len().min(PIECE - buf.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Storage for LayoutStore {
    fn repositories(&self) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        self.collect_repos("repositories/", "", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn tags(&self, repo: &str) -> ApiResult<Option<Vec<String>>> {
        let base = paths::repo(repo);
        let known = self.objects.list(&base)?.iter().any(|e| {
            let child = &e.key[base.len()..];
            e.dir && (child == "_manifests/" || child == "_tags/")
        });
        if !known {
            return Ok(None);
        }
        let tags = paths::tags(repo);
        let listed = self.objects.list(&tags)?.into_iter().filter(|e| !e.dir);
        Ok(Some(listed.map(|e| e.key[tags.len()..].to_string()).collect()))
    }

    fn resolve_tag(&self, repo: &str, tag: &str) -> ApiResult<Option<Digest>> {
        let key = paths::tag(repo, tag);
        match self.get_text(&key)? {
            None => Ok(None),
            Some(text) => parse_digest(&text)
                .map(Some)
                .map_err(|e| ApiError::new(Code::Internal, format!("{key}: {}", e.message))),
        }
    }

    fn manifest(&self, repo: &str, d: &Digest) -> ApiResult<Option<StoredManifest>> {
        let Some(media_type) = self.get_text(&paths::link(repo, "_manifests", d))? else { return Ok(None) };
        let bytes = self.objects.get(&blob_path(d))?.ok_or_else(|| {
            ApiError::new(Code::Internal, format!("{}: the blob of manifest {d} in {repo} is missing", blob_path(d)))
        })?;
        Ok(Some(StoredManifest { bytes, media_type }))
    }

    fn blob_len(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        let key = paths::link(repo, "_blobs", d);
        match self.get_text(&key)? {
            None => Ok(None),
            // A link written before links held the size.
            Some(size) if size.is_empty() => self.objects.head(&blob_path(d)),
            Some(size) => size
                .parse()
                .map(Some)
                .map_err(|_| ApiError::new(Code::Internal, format!("{key}: '{size}' is not a size"))),
        }
    }

    fn open_blob(&self, _repo: &str, d: &Digest, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>> {
        self.objects.read(&blob_path(d), start, len)
    }

    fn referrers(&self, repo: &str, d: &Digest) -> ApiResult<Vec<Value>> {
        let mut out = Vec::new();
        for e in self.objects.list(&paths::referrers(repo, d))?.into_iter().filter(|e| !e.dir) {
            if let Some(bytes) = self.objects.get(&e.key)? {
                out.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|err| ApiError::new(Code::Internal, format!("{}: {err}", e.key)))?,
                );
            }
        }
        Ok(out)
    }

    fn writable(&self) -> Option<&dyn WritableStorage> {
        Some(self)
    }
}

impl WritableStorage for LayoutStore {
    fn start_upload(&self, repo: &str) -> ApiResult<String> {
        let id = random_id();
        self.objects.put(&paths::session_owner(&id), repo.as_bytes())?;
        Ok(id)
    }

    fn upload_len(&self, repo: &str, id: &str) -> ApiResult<Option<u64>> {
        Ok(self.pieces(repo, id)?.map(|p| p.iter().map(|(_, size)| size).sum()))
    }

    fn append_upload(&self, repo: &str, id: &str, offset: u64, data: &mut dyn Read) -> ApiResult<u64> {
        let len = self.upload_len(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        if offset != len {
            return Err(ApiError::new(
                Code::RangeInvalid,
                format!("upload {id} has {len} bytes; a chunk starting at {offset} does not follow on"),
            ));
        }
        let mut put = Vec::new();
        let appended = self.put_pieces(id, len, data, &mut put);
        if appended.is_err() {
            // A chunk is kept whole or not at all, so the session's length stays true.
            for key in &put {
                self.objects.delete(key)?;
            }
        }
        appended
    }

    fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> ApiResult<()> {
        let pieces = self.pieces(repo, id)?.ok_or_else(|| Self::unknown_upload(repo, id))?;
        let result = (|| {
            let size: u64 = pieces.iter().map(|(_, s)| s).sum();
            let dest = blob_path(digest);
            let algorithm = digest.algorithm().as_ref().to_string();
            let check = |got: Digest| {
                if &got == digest {
                    Ok(())
                } else {
                    Err(ApiError::new(Code::DigestInvalid, format!("upload {id} hashes to {got}, not {digest}")))
                }
            };
            if self.objects.head(&dest)?.is_some() {
                // Already stored by another push: check this upload all the same.
                check(self.hash_pieces(&pieces, &algorithm, &mut io::sink())?)?;
            } else if let [(piece, _)] = pieces.as_slice() {
                // The one piece is the blob: checked, then moved into place rather than copied.
                check(self.hash_pieces(&pieces, &algorithm, &mut io::sink())?)?;
                self.objects.rename(piece, &dest)?;
            } else {
                // A writer dropped uncommitted leaves nothing.
                let mut writer = self.objects.writer(&dest)?;
                check(self.hash_pieces(&pieces, &algorithm, &mut writer)?)?;
                writer.commit()?;
            }
            self.link_blob(repo, digest, size)
        })();
        self.end_session(id)?;
        result
    }

    fn cancel_upload(&self, repo: &str, id: &str) -> ApiResult<bool> {
        if self.pieces(repo, id)?.is_none() {
            return Ok(false);
        }
        self.end_session(id)?;
        Ok(true)
    }

    fn expire_uploads(&self, idle_for: Duration) -> ApiResult<usize> {
        // Every piece is written once, so a session's newest object says when it was last used.
        let mut newest: BTreeMap<String, Option<SystemTime>> = BTreeMap::new();
        for e in self.objects.list(UPLOADS)?.into_iter().filter(|e| !e.dir) {
            let id = e.key[UPLOADS.len()..].split('.').next().unwrap_or_default().to_string();
            let latest = newest.entry(id).or_default();
            *latest = (*latest).max(e.modified);
        }
        let mut ended = 0;
        for (id, touched) in newest {
            if touched.and_then(|t| t.elapsed().ok()).is_some_and(|idle| idle > idle_for) {
                self.end_session(&id)?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn mount_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        let Some(size) = self.objects.head(&blob_path(d))? else { return Ok(false) };
        self.link_blob(repo, d, size)?;
        Ok(true)
    }

    fn put_manifest(&self, repo: &str, m: NewManifest<'_>) -> ApiResult<()> {
        let dest = blob_path(m.digest);
        if self.objects.head(&dest)?.is_none() {
            self.objects.put(&dest, m.bytes)?;
        }
        // The manifest is also a blob of the repository, as distribution serves it.
        self.link_blob(repo, m.digest, m.bytes.len() as u64)?;
        self.objects.put(&paths::link(repo, "_manifests", m.digest), m.media_type.as_bytes())?;
        if let Some((subject, desc)) = &m.referrer {
            let desc = serde_json::to_vec(desc).expect("a descriptor serializes");
            self.objects.put(&paths::referrer(repo, subject, m.digest), &desc)?;
        }
        for tag in m.tags {
            self.objects.put(&paths::tag(repo, tag), m.digest.to_string().as_bytes())?;
        }
        Ok(())
    }

    fn delete_manifest(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        let Some(m) = self.manifest(repo, d)? else { return Ok(false) };
        for tag in self.tags(repo)?.unwrap_or_default() {
            if self.resolve_tag(repo, &tag)?.as_ref() == Some(d) {
                self.objects.delete(&paths::tag(repo, &tag))?;
            }
        }
        if let Some(s) = subject_of(&m.bytes) {
            self.objects.delete(&paths::referrer(repo, &s, d))?;
        }
        self.objects.delete(&paths::link(repo, "_manifests", d))
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> ApiResult<bool> {
        self.objects.delete(&paths::tag(repo, tag))
    }

    fn delete_blob(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        self.objects.delete(&paths::link(repo, "_blobs", d))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        hash_reader("sha256", bytes).unwrap()
    }

    fn dir_store() -> (tempfile::TempDir, LayoutStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LayoutStore::dir(tmp.path()).unwrap();
        (tmp, store)
    }

    #[test]
    fn a_blob_appears_only_after_its_digest_checks() {
        let (tmp, store) = dir_store();
        let good = digest_of(b"hello");
        let id = store.start_upload("a/b").unwrap();
        assert_eq!(store.append_upload("a/b", &id, 0, &mut &b"hel"[..]).unwrap(), 3);
        assert_eq!(store.append_upload("a/b", &id, 2, &mut &b"lo"[..]).unwrap_err().code, Code::RangeInvalid);
        assert_eq!(store.append_upload("a/b", &id, 3, &mut &b"lo"[..]).unwrap(), 5);
        assert!(store.upload_len("other", &id).unwrap().is_none(), "a session belongs to its repository");
        let wrong = digest_of(b"other");
        assert_eq!(store.finish_upload("a/b", &id, &wrong).unwrap_err().code, Code::DigestInvalid);
        assert!(!tmp.path().join(blob_path(&wrong)).exists() && store.blob_len("a/b", &good).unwrap().is_none());
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
        assert!(fs::read_dir(tmp.path().join("uploads")).unwrap().next().is_none(), "finished sessions leave nothing");
    }

    /// An upload of one piece becomes the blob by a rename: the blob is the very file the piece
    /// was written to. One of two pieces is copied, so its file stays apart until the session ends.
    #[test]
    fn a_one_piece_upload_is_moved_into_place() {
        use std::os::unix::fs::MetadataExt;
        let (tmp, store) = dir_store();
        let inode = |key: &str| fs::metadata(tmp.path().join(key)).unwrap().ino();
        let one = digest_of(b"one piece");
        let id = store.start_upload("a/b").unwrap();
        store.append_upload("a/b", &id, 0, &mut &b"one piece"[..]).unwrap();
        let piece = inode(&paths::piece(&id, 0));
        store.finish_upload("a/b", &id, &one).unwrap();
        assert_eq!(inode(&blob_path(&one)), piece, "the piece itself is the blob");
        assert_eq!(store.blob_len("a/b", &one).unwrap(), Some(9));

        let two = digest_of(b"two pieces");
        let id = store.start_upload("a/b").unwrap();
        store.append_upload("a/b", &id, 0, &mut &b"two "[..]).unwrap();
        store.append_upload("a/b", &id, 4, &mut &b"pieces"[..]).unwrap();
        let first = inode(&paths::piece(&id, 0));
        store.finish_upload("a/b", &id, &two).unwrap();
        assert_ne!(inode(&blob_path(&two)), first);
        assert_eq!(fs::read(tmp.path().join(blob_path(&two))).unwrap(), b"two pieces");
        assert!(fs::read_dir(tmp.path().join("uploads")).unwrap().next().is_none(), "finished sessions leave nothing");
    }

    #[test]
    fn a_directory_written_before_still_serves() {
        // The layout as the directory store wrote it before links held sizes.
        let tmp = tempfile::tempdir().unwrap();
        let (config, manifest) = (b"{}".as_slice(), br#"{"schemaVersion":2}"#.as_slice());
        let (dc, dm) = (digest_of(config), digest_of(manifest));
        let repo = tmp.path().join("repositories/team/app");
        for (path, content) in [
            (tmp.path().join(blob_path(&dc)), config),
            (tmp.path().join(blob_path(&dm)), manifest),
            (repo.join("_blobs").join(dc.digest()), b"".as_slice()),
            (repo.join("_blobs").join(dm.digest()), b"".as_slice()),
            (repo.join("_manifests").join(dm.digest()), b"application/vnd.oci.image.manifest.v1+json".as_slice()),
            (repo.join("_tags/1.0"), dm.to_string().as_bytes()),
        ] {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        let store = LayoutStore::dir(tmp.path()).unwrap();
        assert_eq!(store.repositories().unwrap(), ["team/app"]);
        assert_eq!(store.tags("team/app").unwrap().unwrap(), ["1.0"]);
        assert_eq!(store.resolve_tag("team/app", "1.0").unwrap(), Some(dm.clone()));
        assert_eq!(store.manifest("team/app", &dm).unwrap().unwrap().bytes, manifest);
        assert_eq!(store.blob_len("team/app", &dc).unwrap(), Some(2));
        assert_eq!(store.tags("team").unwrap(), None);
    }

    #[test]
    fn idle_uploads_expire() {
        let (tmp, store) = dir_store();
        let (old, fresh, cut) =
            (store.start_upload("a").unwrap(), store.start_upload("a").unwrap(), store.start_upload("a").unwrap());
        store.append_upload("a", &old, 0, &mut &b"abc"[..]).unwrap();
        let hour = Duration::from_secs(3600);
        let long_ago = SystemTime::now() - 2 * hour;
        let uploads = tmp.path().join("uploads");
        for name in [format!("{old}.repo"), format!("{old}.{:020}", 0), format!("{cut}.repo")] {
            File::options().write(true).open(uploads.join(name)).unwrap().set_modified(long_ago).unwrap();
        }
        // A piece of a session whose owner was removed while it ended.
        fs::write(uploads.join(format!("{cut}.{:020}", 0)), b"x").unwrap();
        fs::remove_file(uploads.join(format!("{cut}.repo"))).unwrap();
        File::options()
            .write(true)
            .open(uploads.join(format!("{cut}.{:020}", 0)))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(store.expire_uploads(hour).unwrap(), 2);
        assert!(store.upload_len("a", &old).unwrap().is_none());
        let left: Vec<String> =
            fs::read_dir(&uploads).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(left, [format!("{fresh}.repo")]);
        assert_eq!(store.upload_len("a", &fresh).unwrap(), Some(0));
    }

    #[test]
    fn a_chunk_that_fails_half_way_is_not_kept() {
        let (_tmp, store) = dir_store();
        let id = store.start_upload("a").unwrap();
        store.append_upload("a", &id, 0, &mut &b"abc"[..]).unwrap();
        let more = vec![7u8; PIECE + 5];
        let mut cut = (&more[..]).chain(FailingRead);
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
        let (_tmp, store) = dir_store();
        assert_eq!(store.upload_len("a", "../../etc/passwd").unwrap_err().code, Code::BlobUploadUnknown);
    }
}
