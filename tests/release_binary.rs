//! The portable release, built as the README says (`release/build.sh`): stripped, at most 30 MB,
//! no glibc symbol newer than 2.17 (so it starts on RHEL 7 and every later distribution), and it
//! runs. The symbol versions are read with binutils' readelf from the binary's dynamic symbols.
//!
//! The build is a full release build with zig as the linker: about 10 minutes cold on 2 cores,
//! seconds when the target folder has it.

use std::process::Command;

const MAX_BYTES: u64 = 30_000_000;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// `GLIBC_2.17` → (2, 17).
fn version(v: &str) -> (u32, u32) {
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    (major.parse().unwrap(), minor.split('.').next().unwrap().parse().unwrap())
}

#[test]
fn the_release_binary_is_small_stripped_and_starts_on_glibc_2_17() {
    let dist = tempfile::tempdir().unwrap();
    run(Command::new("bash").arg(testkit::workspace_root().join("release/build.sh")).arg(dist.path()));
    let bin = dist.path().join("airgap-linux-amd64");

    let size = std::fs::metadata(&bin).unwrap().len();
    assert!(size <= MAX_BYTES, "{size} bytes, more than {MAX_BYTES}");

    let sections = run(Command::new("readelf").arg("--section-headers").arg("--wide").arg(&bin));
    assert!(!sections.contains(".symtab") && !sections.contains(".debug_"), "the binary is stripped:\n{sections}");

    let symbols = run(Command::new("readelf").arg("--dyn-syms").arg("--wide").arg(&bin));
    let glibc: Vec<&str> = symbols
        .split(|c: char| c.is_whitespace() || c == '@')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(!glibc.is_empty(), "readelf lists the glibc symbols it needs:\n{symbols}");
    let newest = glibc.iter().copied().max_by_key(|v| version(v)).unwrap();
    assert!(version(newest) <= (2, 17), "needs GLIBC_{newest}, newer than 2.17");

    let v = run(Command::new(&bin).arg("--version"));
    assert!(v.starts_with("airgap ") && v.contains("commit"), "{v}");
    eprintln!("release binary: {size} bytes, newest glibc symbol GLIBC_{newest}");
}
