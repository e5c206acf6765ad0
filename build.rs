//! Puts the commit airgap is built from into `--version`; a build outside a git checkout (a
//! source archive) says so instead.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // A new commit moves HEAD or the branch it names (loose or packed): then the version is made again.
    let watched = ["HEAD", "packed-refs"].into_iter().map(str::to_string).chain(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A path that does not exist would make every build run this again.
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    let version = match commit {
        Some(c) => format!("{} (commit {c})", env!("CARGO_PKG_VERSION")),
        None => format!("{} (not built from a git checkout)", env!("CARGO_PKG_VERSION")),
    };
    println!("cargo:rustc-env=AIRGAP_VERSION={version}");
}
