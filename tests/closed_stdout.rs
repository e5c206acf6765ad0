//! `airgap bundle inspect … | head`: a reader that stops early is no failure. The bundle, made by
//! the test, carries enough file artifacts that inspect's table is larger than a pipe holds, so
//! airgap is still writing when the reader closes its end.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;

/// Linux's default pipe buffer; inspect must print more, or it could finish before the reader left.
const PIPE_BUFFER: usize = 64 << 10;
/// One table line each.
const ARTIFACTS: usize = 1000;

#[test]
fn inspect_into_a_reader_that_stops_early_succeeds_quietly() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    for i in 0..ARTIFACTS {
        let reference = format!("files.airgap.local/file-{i:05}:1");
        w.add_single_layer(&reference, Kind::File, "f.txt", format!("{i}\n").as_bytes(), None, None).unwrap();
    }
    w.finish().unwrap();
    let bundle = t.path().join("bundle");
    let packed = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(["bundle", "pack"])
        .arg(&layout)
        .arg("-o")
        .arg(&bundle)
        // Any executable will do; the airgap being built beside this test may change under it.
        .args(["--airgap-binary", "/bin/true"])
        .output()
        .unwrap();
    assert!(packed.status.success(), "{}", String::from_utf8_lossy(&packed.stderr));

    let whole = Command::new(env!("CARGO_BIN_EXE_airgap")).args(["bundle", "inspect"]).arg(&bundle).output().unwrap();
    assert!(whole.status.success() && whole.stdout.len() > PIPE_BUFFER, "{} bytes", whole.stdout.len());

    let mut child = Command::new(env!("CARGO_BIN_EXE_airgap"))
        .args(["bundle", "inspect"])
        .arg(&bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "inspect printed nothing");
    // The reader is dropped here, as `head -1` exits.
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "");
}
