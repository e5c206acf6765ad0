//! The airgap binary carried beside the parts as `airgap-<os>-<arch>`, so the media hold the
//! tool that reads them. It is listed in `SHA256SUMS`, signed with the rest and named in the
//! SBOMs; its name comes from the binary's own header, so a linux/amd64 build given on another
//! machine is named for the site it will run on.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Architecture, BinaryFormat, Object, ReadCache};

use crate::error::{Error, IoContext, Result};

/// What `pack` is asked to carry.
#[derive(Debug, Clone)]
pub struct CarriedBinary {
    /// Where the binary is.
    pub path: PathBuf,
    /// The binary's version when it is known (the running airgap's); otherwise the SBOMs say
    /// NOASSERTION and its SHA-256 identifies it.
    pub version: Option<String>,
}

impl CarriedBinary {
    /// The binary at `path`; its version is known when it is the airgap running now.
    pub fn at(path: &Path) -> CarriedBinary {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        let running = std::env::current_exe().ok().and_then(|p| canonical(&p));
        let version = (running.is_some() && running == canonical(path)).then(|| env!("CARGO_PKG_VERSION").to_string());
        CarriedBinary { path: path.to_path_buf(), version }
    }
}

/// The carried binary as the SBOMs and `SHA256SUMS` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// Its name beside the parts (`airgap-linux-amd64`).
    pub file_name: String,
    /// Its version when known.
    pub version: Option<String>,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `airgap-<os>-<arch>`, from the executable's format and machine, in Go's and OCI's words.
pub fn file_name(path: &Path) -> Result<String> {
    let file = File::open(path).at(path)?;
    let cache = ReadCache::new(file);
    let parsed = object::File::parse(&cache)
        .map_err(|e| Error::invalid(path, format!("not an executable airgap can name a platform for: {e}")))?;
    let os = match parsed.format() {
        BinaryFormat::Elf => "linux",
        BinaryFormat::MachO => "darwin",
        BinaryFormat::Pe => "windows",
        other => return Err(Error::invalid(path, format!("{other:?} executables are not carried"))),
    };
    let arch = match parsed.architecture() {
        Architecture::X86_64 => "amd64",
        Architecture::Aarch64 => "arm64",
        Architecture::I386 => "386",
        Architecture::Arm => "arm",
        Architecture::PowerPc64 => "ppc64le",
        Architecture::S390x => "s390x",
        Architecture::Riscv64 => "riscv64",
        other => return Err(Error::invalid(path, format!("the {other:?} architecture is not carried"))),
    };
    Ok(format!("airgap-{os}-{arch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_named_for_this_platform() {
        let exe = std::env::current_exe().unwrap();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(file_name(&exe).unwrap(), format!("airgap-{}-{arch}", std::env::consts::OS));
    }

    #[test]
    fn a_file_that_is_no_executable_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a program").unwrap();
        let err = file_name(&text).unwrap_err().to_string();
        assert!(err.contains("notes.txt") && err.contains("not an executable"), "{err}");
    }
}
