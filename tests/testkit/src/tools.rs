use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root Cargo.toml).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.join("../..").canonicalize().unwrap_or_else(|_| here.join("../.."))
}

/// The project's shared fixtures, which sit beside the checkout (`../shared/fixtures`).
/// `AIRGAP_SHARED_DIR` overrides the location of `shared/`.
pub fn shared_fixtures() -> PathBuf {
    match env::var_os("AIRGAP_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir).join("fixtures"),
        None => workspace_root().join("../shared/fixtures"),
    }
}

/// Where `tests/tools/install.sh` caches what it builds; `AIRGAP_TOOLS_DIR` overrides it.
pub fn tools_dir() -> PathBuf {
    match env::var_os("AIRGAP_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join(".cache/tools"),
    }
}

/// The directory of the binaries that `tests/tools/install.sh` builds.
pub fn tools() -> PathBuf {
    tools_dir().join("bin")
}

/// Finds a binary in the tools cache, then on PATH. Panics when it is in neither, naming the tool
/// and the script that installs it.
pub fn tool(name: &str) -> PathBuf {
    let cached = tools().join(name);
    if is_executable(&cached) {
        return cached;
    }
    if let Some(found) =
        env::var_os("PATH").iter().flat_map(env::split_paths).map(|dir| dir.join(name)).find(|p| is_executable(p))
    {
        return found;
    }
    let fix = "run tests/tools/install.sh to install it";
    if env::var_os("CI").is_some() {
        panic!("tool `{name}` is missing on this CI machine: .ci/run must {fix}");
    }
    panic!("tool `{name}` is missing (looked in {} and PATH): {fix}", tools().display());
}

fn is_executable(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
