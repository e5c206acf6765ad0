//! One conformance test for every storage driver, after distribution's
//! `registry/storage/driver/testsuites`: the directory driver on a temporary directory and the
//! S3 driver on a real MinIO (testkit). The registry's layout is written once above them, so
//! what it relies on is what this checks.

mod common;

use std::io::{Read, Write};

use common::s3_location;
use registry::storage::{DirObjects, Entry, ObjectStore, S3Objects};
use testkit::MinioServer;

fn read(o: &dyn ObjectStore, key: &str, start: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    o.read(key, start, len).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// The keys listed under `prefix`, a directory's ending in `/`.
fn listed(o: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    o.list(prefix).unwrap().into_iter().map(|e| e.key).collect()
}

fn conformance(o: &dyn ObjectStore) {
    // Nothing is there until it is written.
    assert_eq!(o.get("t/absent").unwrap(), None);
    assert_eq!(o.head("t/absent").unwrap(), None);
    assert!(!o.delete("t/absent").unwrap(), "deleting what is not there says so");
    assert!(o.list("t/").unwrap().is_empty());

    // A put replaces the whole object, whatever it held.
    o.put("t/a/one", b"the first content").unwrap();
    o.put("t/a/one", b"second").unwrap();
    assert_eq!(o.get("t/a/one").unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(o.head("t/a/one").unwrap(), Some(6));
    o.put("t/empty", b"").unwrap();
    assert_eq!((o.get("t/empty").unwrap(), o.head("t/empty").unwrap()), (Some(Vec::new()), Some(0)));

    // Ranges.
    assert_eq!(read(o, "t/a/one", 0, 6), b"second");
    assert_eq!(read(o, "t/a/one", 2, 3), b"con");
    assert_eq!(read(o, "t/a/one", 5, 1), b"d");
    assert_eq!(read(o, "t/empty", 0, 0), b"");

    // Listing: one level below the prefix, sorted, directories ending in `/`; a prefix that is
    // not a directory matches the names that start with it.
    o.put("t/a/two", b"2").unwrap();
    o.put("t/a/deep/three", b"3").unwrap();
    o.put("t/ab", b"ab").unwrap();
    o.put("t/a.1", b"dot").unwrap();
    assert_eq!(listed(o, "t/a/"), ["t/a/deep/", "t/a/one", "t/a/two"]);
    assert_eq!(listed(o, "t/a"), ["t/a.1", "t/a/", "t/ab"]);
    assert_eq!(listed(o, "t/a."), ["t/a.1"]);
    assert_eq!(listed(o, "t/a/t"), ["t/a/two"]);
    assert_eq!(listed(o, "t/a/deep/"), ["t/a/deep/three"]);
    let entries = o.list("t/a/").unwrap();
    let Entry { dir, size, .. } = &entries[0];
    assert_eq!((*dir, *size), (true, 0));
    let one = &entries[1];
    assert_eq!((one.dir, one.size), (false, 6));
    assert!(one.modified.is_some(), "an object says when it was written");

    // Deleting.
    assert!(o.delete("t/a/two").unwrap());
    assert_eq!(o.get("t/a/two").unwrap(), None);
    assert_eq!(listed(o, "t/a/"), ["t/a/deep/", "t/a/one"]);

    // A streamed object, larger than a part of S3's multipart upload, appears only when committed.
    let big = testkit::images::noise(20 << 20, 5);
    let mut w = o.writer("t/w/big").unwrap();
    for chunk in big.chunks(3 << 20) {
        w.write_all(chunk).unwrap();
    }
    assert_eq!(o.head("t/w/big").unwrap(), None, "not visible before the commit");
    assert!(o.list("t/w/").unwrap().is_empty(), "nothing half-written is listed");
    w.commit().unwrap();
    assert_eq!(o.head("t/w/big").unwrap(), Some(big.len() as u64));
    assert!(o.get("t/w/big").unwrap().unwrap() == big, "the streamed object is whole");
    assert!(read(o, "t/w/big", 9 << 20, 4096) == big[9 << 20..(9 << 20) + 4096]);

    // A small streamed object, and writers that end without committing.
    let mut w = o.writer("t/w/small").unwrap();
    w.write_all(b"small").unwrap();
    w.commit().unwrap();
    assert_eq!(o.get("t/w/small").unwrap().as_deref(), Some(&b"small"[..]));
    let mut aborted = o.writer("t/w/aborted").unwrap();
    aborted.write_all(&big[..9 << 20]).unwrap();
    aborted.abort();
    let mut dropped = o.writer("t/w/dropped").unwrap();
    dropped.write_all(&big[..1 << 20]).unwrap();
    drop(dropped);
    assert_eq!(listed(o, "t/w/"), ["t/w/big", "t/w/small"], "an uncommitted writer leaves nothing");
    let mut replaced = o.writer("t/w/small").unwrap();
    replaced.write_all(b"replaced").unwrap();
    replaced.abort();
    assert_eq!(o.get("t/w/small").unwrap().as_deref(), Some(&b"small"[..]), "an aborted writer changes nothing");

    // A rename moves the whole object, into a new directory or over another object.
    o.put("t/r/from", b"moved").unwrap();
    o.rename("t/r/from", "t/r/new/to").unwrap();
    assert_eq!(o.get("t/r/new/to").unwrap().as_deref(), Some(&b"moved"[..]));
    assert_eq!(o.head("t/r/from").unwrap(), None, "the source is gone");
    o.rename("t/w/big", "t/r/new/to").unwrap();
    assert!(o.get("t/r/new/to").unwrap().unwrap() == big, "a rename replaces what was there");
    assert_eq!(listed(o, "t/r/new/"), ["t/r/new/to"]);
    assert_eq!(listed(o, "t/w/"), ["t/w/small"]);
    assert!(o.rename("t/r/absent", "t/r/elsewhere").is_err(), "a missing source is an error");
    assert_eq!(o.head("t/r/elsewhere").unwrap(), None);
}

#[test]
fn the_directory_driver_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    conformance(&DirObjects::open(tmp.path(), &[]).unwrap());
}

#[test]
fn the_s3_driver_conforms() {
    let s3 = MinioServer::start().unwrap();
    s3.create_bucket("drivers").unwrap();
    conformance(&S3Objects::open(&s3_location(&s3, "drivers", "under/a/prefix")).unwrap());
    // The prefix keeps the driver's objects apart from the rest of the bucket.
    let all = testkit::run(s3.mc().args(["ls", "--recursive", "testkit/drivers/"])).unwrap();
    assert!(all.lines().all(|l| l.contains("under/a/prefix/t/")), "{all}");
}
