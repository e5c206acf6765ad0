//! Git repositories, cloned with the real `git` and carried as a bare repository ready for git's
//! dumb HTTP protocol: only the requested ref, objects in one pack, `info/refs` written. The tar
//! has the repository at its root (`HEAD`, `objects/`, `refs/`…), sorted, with mtime 0 and
//! owner 0, so the same commit gives the same bytes.
//!
//! Named by [`bundles::naming`]. The source is recorded as SPDX writes VCS locations:
//! `git+<url>@<commit>`, which is also how a lock pins the commit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use bundles::digest::Digest;

use crate::cache::Cache;
use crate::spec::GitEntry;

pub struct Prepared {
    pub tar: Digest,
    pub commit: String,
}

pub fn reference(entry: &GitEntry) -> Result<String> {
    Ok(bundles::naming::git_reference(&entry.url, &entry.git_ref)?)
}

pub fn source(entry: &GitEntry, commit: &str) -> String {
    format!("git+{}@{commit}", entry.url)
}

/// The commit a lock recorded in the source, if any.
pub fn pinned_commit(source: &str) -> Option<&str> {
    source.rsplit_once('@').map(|(_, c)| c).filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Clones `fetch_url`, keeps only the entry's ref (at `commit` when a lock pins it), packs and
/// tars the result into the cache.
pub fn prepare(cache: &Cache, entry: &GitEntry, fetch_url: &str, commit: Option<&str>) -> Result<Prepared> {
    let work = tempdir_in(cache)?;
    let result = build(cache, &work.0, entry, fetch_url, commit);
    result.with_context(|| format!("git: {} {}", entry.url, entry.git_ref))
}

fn build(cache: &Cache, work: &Path, entry: &GitEntry, fetch_url: &str, commit: Option<&str>) -> Result<Prepared> {
    let repo = work.join("repo.git");
    git(work, &["clone", "--quiet", "--mirror", fetch_url, "repo.git"])?;
    let refs = git(&repo, &["for-each-ref", "--format=%(refname)"])?;
    let refs: Vec<&str> = refs.lines().collect();
    let r = &entry.git_ref;
    let kept = [format!("refs/heads/{r}"), format!("refs/tags/{r}"), r.to_string()]
        .into_iter()
        .find(|c| refs.contains(&c.as_str()))
        .unwrap_or_else(|| format!("refs/heads/{r}"));
    let resolved = git(&repo, &["rev-parse", "--verify", "--quiet", &format!("{}^{{commit}}", commit.unwrap_or(r))])
        .map_err(|_| anyhow!("no branch, tag or commit '{}' upstream", commit.unwrap_or(r)))?;
    let mut script = String::new();
    for other in refs.iter().filter(|x| **x != kept) {
        script += &format!("delete {other}\n");
    }
    let target = if kept.starts_with("refs/tags/") && commit.is_none() {
        git(&repo, &["rev-parse", &kept])?
    } else {
        resolved.clone()
    };
    script += &format!("update {kept} {target}\n");
    run_stdin(&repo, &["update-ref", "--no-deref", "--stdin"], &script)?;
    if kept.starts_with("refs/heads/") {
        git(&repo, &["symbolic-ref", "HEAD", &kept])?;
    } else {
        git(&repo, &["update-ref", "--no-deref", "HEAD", &resolved])?;
    }
    git(&repo, &["reflog", "expire", "--expire=now", "--all"])?;
    // One thread: delta search with several is not deterministic.
    git(&repo, &["-c", "pack.threads=1", "-c", "pack.writeReverseIndex=false", "repack", "-a", "-d", "-f", "-q"])?;
    git(&repo, &["prune", "--expire=now"])?;
    git(&repo, &["pack-refs", "--all", "--prune"])?;
    git(&repo, &["update-server-info"])?;
    for noise in ["hooks", "logs", "description", "FETCH_HEAD", "info/exclude", "ORIG_HEAD"] {
        let p = repo.join(noise);
        let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
    }
    // The clone's config names where it came from (a mirror, a temp path): not the repository's business.
    fs::write(repo.join("config"), "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n")?;
    let tar = cache.put_with(|w| write_tar(&repo, w))?;
    Ok(Prepared { tar, commit: resolved })
}

fn run_stdin(dir: &Path, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run git")?;
    child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn write_tar(root: &Path, w: &mut dyn std::io::Write) -> Result<()> {
    let mut paths = Vec::new();
    walk(root, root, &mut paths)?;
    paths.sort();
    let mut builder = tar::Builder::new(w);
    for rel in paths {
        let full = root.join(&rel);
        let meta = fs::symlink_metadata(&full)?;
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        let name = rel.to_string_lossy().to_string();
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            builder.append_data(&mut h, format!("{name}/"), std::io::empty())?;
        } else if meta.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(meta.len());
            builder.append_data(&mut h, &name, fs::File::open(&full)?)?;
        }
    }
    builder.finish()?;
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        out.push(p.strip_prefix(root)?.to_path_buf());
        if p.is_dir() {
            walk(root, &p, out)?;
        }
    }
    Ok(())
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tempdir_in(cache: &Cache) -> Result<TempDir> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let d = cache.root().join("runs").join(format!("git-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&d)?;
    Ok(TempDir(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_commits() {
        let e = GitEntry { url: "https://github.com/mosip/mosip-config.git".into(), git_ref: "release/1.2".into() };
        let c = "a".repeat(40);
        assert_eq!(pinned_commit(&source(&e, &c)), Some(c.as_str()));
    }
}
