//! MinIO as the S3-compatible store, driven by its own client.

use std::fs;
use std::process::Command;

use testkit::{run, tool, MinioServer};

#[test]
fn objects_round_trip_and_need_credentials() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("blobs").unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("object.bin");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(&file, &payload).unwrap();

    run(s3.mc().arg("cp").arg(&file).arg("testkit/blobs/dir/object.bin")).unwrap();
    let back = work.path().join("back.bin");
    run(s3.mc().args(["cp", "testkit/blobs/dir/object.bin"]).arg(&back)).unwrap();
    assert_eq!(fs::read(&back).unwrap(), payload);
    let listed = run(s3.mc().args(["ls", "--recursive", "testkit/blobs"])).unwrap();
    assert!(listed.contains("dir/object.bin"), "{listed}");

    // An anonymous request is refused: the bucket is private.
    let url = format!("{}/blobs/dir/object.bin", s3.endpoint());
    let status = run(Command::new(tool("curl")).args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])).unwrap();
    assert_eq!(status, "403");
}
