//! A bundle larger than FAT32's largest file, packed with the default part size, as a field team
//! packs one: more than 4 GiB of compressed output, every part at most 4 GiB − 1 bytes, and the
//! blob that spans two parts read back across the cut. The layout is generated here: one file
//! artifact of counter-based pseudo-random bytes, which zstd cannot shrink (as gzip'd layers are),
//! streamed to disk and recomputed at any offset for the comparison.
//!
//! It writes about 8.6 GB and takes about a minute on 2 cores: to the temporary folder, or to
//! `/dev/shm` when that has more room (a shared test machine's disk is sometimes nearly full).

use std::io::Read;

use bundles::artifact::Kind;
use bundles::digest::blob_path;
use bundles::layout_writer::LayoutWriter;
use bundles::pack::{pack, PackOptions};
use bundles::size::FAT32_MAX;
use bundles::verify::{verify, VerifyOptions};
use bundles::Bundle;

/// More than 4 GiB once compressed.
const LEN: u64 = FAT32_MAX + (256 << 20);

/// The 8 bytes at word `i`: splitmix64 of the index, so any offset can be recomputed.
fn word(i: u64) -> [u8; 8] {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

fn expected(offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Noise { pos: offset }.read_exact(&mut v).unwrap();
    v
}

/// The bytes of `word`s up to `LEN`, streamed from `pos`.
struct Noise {
    pos: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(LEN - self.pos) as usize;
        let mut filled = 0;
        while filled < n {
            let p = self.pos + filled as u64;
            let (w, skip) = (word(p / 8), (p % 8) as usize);
            let take = (8 - skip).min(n - filled);
            buf[filled..filled + take].copy_from_slice(&w[skip..skip + take]);
            filled += take;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The layout and the parts, with a margin for metadata.
const NEEDED: u64 = 2 * LEN + (64 << 20);

/// A folder on whichever of the temporary folder and `/dev/shm` has the most room; a machine
/// with room for the test on neither fails here, saying how much each has.
fn roomy_temp_dir() -> tempfile::TempDir {
    let candidates = [std::env::temp_dir(), "/dev/shm".into()];
    let free = |p: &std::path::Path| rustix::fs::statvfs(p).map(|s| s.f_bavail * s.f_frsize).unwrap_or(0);
    let rooms: Vec<(u64, &std::path::PathBuf)> = candidates.iter().map(|p| (free(p), p)).collect();
    let &(room, place) = rooms.iter().max().unwrap();
    let seen: Vec<String> = rooms.iter().map(|(room, p)| format!("{}: {} MB free", p.display(), room >> 20)).collect();
    assert!(room >= NEEDED, "the test writes {} MB; no folder has room ({})", NEEDED >> 20, seen.join(", "));
    tempfile::tempdir_in(place).unwrap()
}

#[test]
fn a_bundle_over_4_gib_is_cut_into_parts_that_fit_fat32() {
    let tmp = roomy_temp_dir();
    let layout = tmp.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    w.add_single_layer("files.example/noise:1", Kind::File, "noise", Noise { pos: 0 }, None, None).unwrap();
    w.finish().unwrap();

    let out = tmp.path().join("bundle");
    // The default part size; level 1 only because this data cannot be compressed anyway.
    let opts = PackOptions { level: 1, ..PackOptions::default() };
    assert_eq!(opts.max_part_size, FAT32_MAX);
    let packed = pack(&layout, &out, &opts).unwrap();
    assert!(packed.archive_size() > 4 << 30, "more than 4 GiB of parts: {}", packed.archive_size());
    assert_eq!(packed.parts.len(), 2, "{:?}", packed.parts);
    for p in &packed.parts {
        let on_disk = std::fs::metadata(out.join(&p.name)).unwrap().len();
        assert_eq!(on_disk, p.size);
        assert!(on_disk <= FAT32_MAX, "{} is {on_disk} bytes, more than FAT32 holds", p.name);
    }
    assert_eq!(packed.parts[0].size, FAT32_MAX, "the first part is filled to the limit");

    // The blob crosses the cut: read a window around it straight from the parts.
    let bundle = Bundle::open(&out).unwrap();
    let lock = bundle.lock().unwrap();
    let content = lock.artifacts[0].content.clone().unwrap();
    let d = content.digest;
    let (start, size) = bundle.member(&blob_path(&d)).unwrap();
    assert_eq!(size, LEN);
    // The cut is at FAT32_MAX in the compressed stream; this data barely changes size in zstd,
    // so it lies within a few frames of the same offset in the archive.
    let window = 16 << 20;
    let around = FAT32_MAX - start - window / 2;
    let mut got = vec![0u8; window as usize];
    bundle.open_range(start + around, window).read_exact(&mut got).unwrap();
    assert!(got == expected(around, window as usize), "the bytes across the cut differ from what was packed");

    let report = verify(&out, &VerifyOptions { key: None, bases: Vec::new() });
    assert!(report.ok, "{:?}", report.problem_lines());
}
