//! The tool binaries the installer runs (helm, istioctl) come from the bundle, through the site
//! registry, checked against their digests and kept in a cache folder named by digest.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bundles::digest::sha256_reader;
use bundles::naming::FILES_HOST;

use crate::plan::Carried;
use crate::registry_client::RegistryClient;

/// `linux-amd64` for this machine, as the bundle tags platform-specific files.
pub fn host_platform() -> String {
    crate::tools::host_platform().replace('/', "-")
}

/// The bundle's reference for `name` on this platform (`files.airgap.local/helm:3.8.2-linux-amd64`).
pub fn reference_for(carried: &Carried, name: &str) -> Result<String> {
    let prefix = format!("{FILES_HOST}/{name}:");
    let platform = host_platform();
    let mut candidates = carried.files.iter().filter(|f| f.starts_with(&prefix));
    let all: Vec<&String> = candidates.clone().collect();
    match candidates.find(|f| f.ends_with(&format!("-{platform}"))) {
        Some(r) => Ok(r.clone()),
        None if all.is_empty() => bail!("the bundle spec carries no {name}: add it under files:"),
        None => bail!("the bundle carries {name} only as {all:?}, not for {platform}"),
    }
}

/// The tool's path in `cache`, named by digest: fetched only when the cache does not hold it.
pub async fn fetch(registry: &RegistryClient, carried: &Carried, name: &str, cache: &Path) -> Result<PathBuf> {
    let reference = reference_for(carried, name)?;
    let digest = registry.layer_digest(&reference).await.with_context(|| format!("resolving {name}"))?;
    let dir = cache.join(digest.replace(':', "-"));
    let path = dir.join(name);
    if path.is_file() && file_digest(&path)? == digest {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let staging = dir.join(format!(".{name}.download"));
    registry.fetch_layer(&reference, &staging).await.with_context(|| format!("fetching {name}"))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&staging, &path)?;
    Ok(path)
}

fn file_digest(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let (hex, _) = sha256_reader(file).with_context(|| path.display().to_string())?;
    Ok(format!("sha256:{hex}"))
}

/// Where fetched tools live: `$XDG_CACHE_HOME/airgap/tools`, else `~/.cache/airgap/tools`.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("airgap/tools")
}
