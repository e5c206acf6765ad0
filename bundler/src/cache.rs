//! The download cache: blobs by digest, shared by every run. A blob appears under `blobs/` only
//! once its digest has been checked; until then it grows in `partial/`, where a later run (after
//! a crash, Ctrl-C or a dropped connection) resumes it with an HTTP range request.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use bundles::digest::{sha256_digest, Digest, HashingWriter};
use bundles::size::human;
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use crate::http::{backoff, error_chain, ATTEMPTS};
use crate::progress::Progress;

pub struct Cache {
    root: PathBuf,
    /// One download per digest at a time in this process (two images share a config, two file
    /// entries the same archive); another process is kept out by a lock on the partial file.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Cache {
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("airgap")
    }

    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["blobs/sha256", "partial", "runs"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("cache: cannot create {}", d.display()))?;
        }
        let cache = Cache { root: root.to_path_buf(), inflight: Mutex::new(HashMap::new()) };
        cache.remove_leftovers();
        Ok(cache)
    }

    /// Staging layouts, git work trees and temporary files of runs that were killed: their
    /// names carry the process id, and a process that is gone needs them no more. Partial
    /// downloads are kept: they are what the next run resumes.
    fn remove_leftovers(&self) {
        let gone = |pid: &str| {
            !pid.is_empty() && pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists()
        };
        let owner = |dir: &str, name: &str| -> Option<String> {
            match dir {
                // `<pid>-<nanos>`, `git-<pid>-<nanos>`
                "runs" => name.trim_start_matches("git-").split('-').next().map(str::to_string),
                // `<stem>.<pid>-<n>.tmp`
                _ => name.strip_suffix(".tmp")?.rsplit('.').next()?.split('-').next().map(str::to_string),
            }
        };
        for dir in ["runs", "partial"] {
            let Ok(entries) = fs::read_dir(self.root.join(dir)) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if owner(dir, &name).is_some_and(|pid| gone(&pid)) {
                    let _ = if e.path().is_dir() { fs::remove_dir_all(e.path()) } else { fs::remove_file(e.path()) };
                }
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.digest())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).with_context(|| format!("cache: {}", p.display()))
    }

    /// Stores bytes already in memory (manifests, configs), refusing a digest mismatch.
    pub fn put_bytes(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let d = sha256_digest(&hex::encode(Sha256::digest(bytes)));
        if let Some(want) = expected {
            if want != &d {
                bail!("content hashes to {d}, expected {want}; nothing stored");
            }
        }
        if !self.has(&d) {
            self.check_space(bytes.len() as u64)?;
            let tmp = self.temp_path(d.digest());
            fs::write(&tmp, bytes).with_context(|| format!("cache: writing {}", tmp.display()))?;
            fs::rename(&tmp, self.blob_path(&d)).with_context(|| format!("cache: storing {d}"))?;
        }
        Ok(d)
    }

    /// A name no other writer (task or process) uses.
    fn temp_path(&self, stem: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root.join("partial").join(format!("{stem}.{}-{n}.tmp", std::process::id()))
    }

    /// Refuses to start writing `need` more bytes where they cannot fit, rather than filling
    /// the disk and failing half-way.
    pub fn check_space(&self, need: u64) -> Result<()> {
        let st = rustix::fs::statvfs(&self.root).map_err(|e| anyhow!("cache: statvfs {}: {e}", self.root.display()))?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < need {
            bail!(
                "not enough space in the cache {}: {} needed, {} free (free some space or pass --cache on a larger disk)",
                self.root.display(),
                human(need),
                human(free)
            );
        }
        Ok(())
    }

    /// A fresh directory for one run's OCI layout, beside the blobs so they can be hard-linked.
    pub fn staging(&self) -> Result<Staging> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = self.root.join("runs").join(format!("{}-{nanos}", std::process::id()));
        fs::create_dir_all(dir.join("blobs/sha256")).with_context(|| format!("cache: {}", dir.display()))?;
        Ok(Staging { dir })
    }

    /// Builds a blob by writing it (a tar of a git repository), then stores it by its digest.
    pub fn put_with(&self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<Digest> {
        let tmp = self.temp_path("build");
        let file = File::create(&tmp).with_context(|| format!("cache: {}", tmp.display()))?;
        let mut w = HashingWriter::new(std::io::BufWriter::new(file));
        let written = write(&mut w);
        let (buf, hex, _) = w.finish();
        let flushed = written.and_then(|_| Ok(buf.into_inner().map_err(|e| e.into_error())?.sync_all()?));
        if let Err(e) = flushed {
            let _ = fs::remove_file(&tmp);
            return Err(e.context(format!("cache: writing {}", tmp.display())));
        }
        let d = sha256_digest(&hex);
        fs::rename(&tmp, self.blob_path(&d)).with_context(|| format!("cache: storing {d}"))?;
        Ok(d)
    }

    /// Downloads a blob into the cache unless it is there already. `open(offset)` sends the
    /// request (with its own retries for connection errors and 429/5xx) and asks for
    /// `Range: bytes=offset-` when the offset is not zero.
    pub async fn download(
        &self,
        d: &Digest,
        size: Option<u64>,
        what: &str,
        progress: &Progress,
        open: impl AsyncFn(u64) -> Result<reqwest::Response>,
    ) -> Result<()> {
        if self.has(d) {
            return Ok(());
        }
        let slot = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).entry(d.to_string()).or_default().clone();
        let _one_at_a_time = slot.lock().await;
        if self.has(d) {
            return Ok(());
        }
        let partial = self.root.join("partial").join(d.digest());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .with_context(|| format!("cache: {}", partial.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
            anyhow!("{what}: another airgap run is downloading {d} into the cache {}", self.root.display())
        })?;
        let (mut hasher, mut have) =
            hash_existing(&mut file).with_context(|| format!("cache: {}", partial.display()))?;
        if size.is_some_and(|s| have > s) {
            (hasher, have) = restart(&mut file, &partial)?;
        }
        if let Some(s) = size {
            self.check_space(s - have)?;
        }
        progress.bytes(have);
        let mut attempt = 0;
        'attempts: loop {
            let mut resp = open(have).await.with_context(|| what.to_string())?;
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if have > 0 && content_range_start(&resp) == Some(have) => {}
                StatusCode::OK if have > 0 => {
                    (hasher, have) = restart(&mut file, &partial)?;
                }
                StatusCode::OK => {}
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    (hasher, have) = restart(&mut file, &partial)?;
                    continue;
                }
                s => bail!("{what}: {} answered {s}", resp.url()),
            }
            if size.is_none() {
                if let Some(len) = resp.content_length() {
                    self.check_space(len)?;
                }
            }
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if size.is_some_and(|s| have + chunk.len() as u64 > s) {
                            drop(file);
                            let _ = fs::remove_file(&partial);
                            bail!(
                                "{what}: upstream sent more than the {} bytes its descriptor declares; nothing stored",
                                size.unwrap_or(0)
                            );
                        }
                        file.write_all(&chunk)
                            .with_context(|| format!("cache: writing {} (kept for resuming)", partial.display()))?;
                        hasher.update(&chunk);
                        have += chunk.len() as u64;
                        progress.bytes(chunk.len() as u64);
                    }
                    Ok(None) => break 'attempts,
                    Err(e) if attempt + 1 < ATTEMPTS => {
                        progress.warn(&format!("{what}: {} after {} bytes; resuming", error_chain(&e), have));
                        attempt += 1;
                        backoff(attempt).await;
                        continue 'attempts;
                    }
                    Err(e) => bail!("{what}: {} (the {have} bytes received are kept for resuming)", error_chain(&e)),
                }
            }
        }
        file.sync_all().with_context(|| format!("cache: {}", partial.display()))?;
        drop(file);
        let got = sha256_digest(&hex::encode(hasher.finalize()));
        if &got != d || size.is_some_and(|s| s != have) {
            let _ = fs::remove_file(&partial);
            bail!("{what}: upstream content hashes to {got} ({have} bytes), expected {d}; nothing stored");
        }
        fs::rename(&partial, self.blob_path(d)).with_context(|| format!("cache: storing {d}"))?;
        Ok(())
    }
}

fn hash_existing(file: &mut File) -> std::io::Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    file.seek(SeekFrom::Start(0))?;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher, total))
}

fn restart(file: &mut File, path: &Path) -> Result<(Sha256, u64)> {
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .with_context(|| format!("cache: {}", path.display()))?;
    Ok((Sha256::new(), 0))
}

fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Puts a cached blob into the layout. Only what the run carries is linked: `bundles`
    /// walks whatever children of an index the layout holds.
    pub fn link(&self, cache: &Cache, d: &Digest) -> Result<()> {
        let dest = self.dir.join("blobs/sha256").join(d.digest());
        if dest.exists() {
            return Ok(());
        }
        let src = cache.blob_path(d);
        fs::hard_link(&src, &dest)
            .or_else(|_| fs::copy(&src, &dest).map(|_| ()))
            .with_context(|| format!("staging {}", src.display()))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
