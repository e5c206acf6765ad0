//! `airgap tools`: the tool binaries a bundle carries (kubectl, helm, istioctl, eksctl…), written
//! out for the operator, and for the installer, which runs the bundled helm and istioctl. Read
//! straight from the parts: nothing else of the archive is unpacked.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::{Content, ANNOTATION_EXECUTABLE, ANNOTATION_FILE_PLATFORM, ANNOTATION_KIND, ANNOTATION_REF};
use bundles::digest::{blob_path, HashingWriter};
use bundles::naming::FILES_HOST;
use bundles::safe_path::check_member_name;
use bundles::Bundle;
use serde::Serialize;

/// A tool binary written out by [`extract`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extracted {
    /// The file name it was written as (`kubectl`).
    pub name: String,
    /// The version the bundle carries it at.
    pub version: String,
    /// Its reference in the bundle (`files.airgap.local/kubectl:<version>`).
    pub reference: String,
    /// Where it was written, `<dir>/<name>`.
    pub path: PathBuf,
    /// The hex SHA-256 of its bytes, checked as it was written.
    pub sha256: String,
}

/// `tools`: which bundle's tools, for which platform, written where.
#[derive(Debug, Clone)]
pub struct ToolsOptions {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The folder to write the binaries into.
    pub out: PathBuf,
    /// The `os/arch` to take where a tool is carried per platform.
    pub platform: String,
    /// Print what was written as JSON.
    pub json: bool,
}

/// `airgap tools`: extracts and prints a table of what was written, or JSON.
pub fn run(opts: &ToolsOptions) -> Result<()> {
    let bundle = Bundle::open(&opts.bundle)?;
    let done = extract(&bundle, &opts.out, &opts.platform)?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    println!("{:<12} {:<14} {:<64}  PATH", "NAME", "VERSION", "SHA256");
    for t in &done {
        println!("{:<12} {:<14} {:<64}  {}", t.name, t.version, t.sha256, t.path.display());
    }
    if done.is_empty() {
        eprintln!("{} carries no executable files for {}", opts.bundle.display(), opts.platform);
    }
    Ok(())
}

/// `linux/amd64` on an x86-64 Linux machine: the names OCI platforms use.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// Writes every executable file artifact for `platform` (and every one carried without a
/// platform) into `dir` as `dir/<name>`, mode 0755, each checked against its digest as it is
/// written and renamed into place only when it matches.
pub fn extract(bundle: &Bundle, dir: &Path, platform: &str) -> Result<Vec<Extracted>> {
    let contents: HashMap<String, Content> =
        bundle.lock()?.artifacts.into_iter().filter_map(|a| Some((a.reference, a.content?))).collect();
    let mut chosen: BTreeMap<String, (String, String, Content)> = BTreeMap::new();
    for desc in bundle.index()?.manifests() {
        let Some(ann) = desc.annotations() else { continue };
        let get = |k: &str| ann.get(k).map(String::as_str);
        let Some(reference) =
            get(ANNOTATION_REF).filter(|r| r.strip_prefix(FILES_HOST).is_some_and(|p| p.starts_with('/')))
        else {
            continue;
        };
        if get(ANNOTATION_KIND) != Some("file") || get(ANNOTATION_EXECUTABLE) != Some("true") {
            continue;
        }
        let carried_for = get(ANNOTATION_FILE_PLATFORM);
        if carried_for.is_some_and(|p| p != platform) {
            continue;
        }
        let content = contents
            .get(reference)
            .cloned()
            .ok_or_else(|| anyhow!("{}: {reference} is in index.json but not in the lock", bundle.dir().display()))?;
        if content.name.contains('/') {
            bail!("{reference}: file name '{}' is not a plain name; refusing to write it", content.name);
        }
        check_member_name(&content.name).map_err(|e| anyhow!("{reference}: {e}; refusing to write it"))?;
        let tag = reference.rsplit_once(':').map_or("", |(_, t)| t);
        let version = match carried_for {
            Some(p) => tag.strip_suffix(&format!("-{}", p.replace('/', "-"))).unwrap_or(tag),
            None => tag,
        };
        if let Some((other, _, _)) = chosen.get(&content.name) {
            bail!(
                "{reference} and {other} would both be written as {}; the bundle carries two versions of one tool",
                content.name
            );
        }
        chosen.insert(content.name.clone(), (reference.to_string(), version.to_string(), content));
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = Vec::new();
    for (name, (reference, version, content)) in chosen {
        let path = dir.join(&name);
        write_checked(bundle, &content, dir, &path).with_context(|| format!("extracting {reference}"))?;
        let sha256 = content.digest.digest().to_string();
        out.push(Extracted { name, version, reference, path, sha256 });
    }
    Ok(out)
}

fn write_checked(bundle: &Bundle, content: &Content, dir: &Path, dest: &Path) -> Result<()> {
    let digest = &content.digest;
    if !bundle.has_blob(digest) {
        bail!("its blob {digest} is not in this bundle (a delta carries it in its base: extract from the base)");
    }
    let tmp = dir.join(format!(".{}.partial", content.name));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let written = (|| -> Result<()> {
        let mut w = HashingWriter::new(file);
        io::copy(&mut bundle.open_member(&blob_path(digest))?, &mut w)?;
        w.flush()?;
        let (file, hex, len) = w.finish();
        if hex != digest.digest() || len != content.size {
            bail!("the bundle gave {len} bytes with sha256:{hex}, expected {} bytes with {digest}", content.size);
        }
        file.sync_all()?;
        // The mode given at creation is cut by the umask; a tool must run for everyone it is for.
        file.set_permissions(fs::Permissions::from_mode(0o755))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", tmp.display())));
    }
    fs::rename(&tmp, dest).with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))
}
