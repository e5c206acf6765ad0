//! Members read whole come from the frames a bundle keeps decompressed when they lie in one: in
//! any order, across frames, and after the frames kept are let go (22 MiB of members, more than
//! the bundle keeps), each is what was packed. The layout is generated here: one image of 2,500
//! small layers of pseudo-random bytes, 64 KiB frames.

mod common;

use std::io::Read;

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use bundles::pack::{pack, PackOptions};
use common::noise;
use serde_json::json;

#[test]
fn members_read_whole_in_any_order_are_what_was_packed() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let mut w = LayoutWriter::open(&layout).unwrap();
    let layers: Vec<_> =
        (0..2500u64).map(|i| w.put_bytes(&noise(8_000 + (i as usize * 37) % 2_000, i)).unwrap()).collect();
    let config = w.put_bytes(br#"{"architecture":"amd64","os":"linux"}"#).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
        "layers": layers.iter().map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest).unwrap();
    w.add("docker.io/library/many:1.0", Kind::Image, desc, &[]);
    w.finish().unwrap();
    let out = tmp.path().join("bundle");
    pack(&layout, &out, &PackOptions { frame_size: 64 << 10, ..PackOptions::default() }).unwrap();

    let bundle = bundles::Bundle::open(&out).unwrap();
    let mut members = bundle.meta().members.clone();
    members.sort_by_key(|m| std::cmp::Reverse(m.offset));
    let (mut within_one_frame, mut across) = (0, 0);
    for pass in 0..2 {
        for m in &members {
            let whole = bundle.read_member(&m.path).unwrap();
            let mut streamed = Vec::new();
            bundle.open_member(&m.path).unwrap().read_to_end(&mut streamed).unwrap();
            assert!(whole == streamed, "{} read whole differs from {} read streaming (pass {pass})", m.path, m.path);
            if let Some(hex) = m.path.strip_prefix("blobs/sha256/") {
                assert_eq!(std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap(), whole, "{}", m.path);
            }
            let frames = |at: u64| at / (64 << 10);
            if pass == 0 && m.size > 0 {
                if frames(m.offset) == frames(m.offset + m.size - 1) {
                    within_one_frame += 1
                } else {
                    across += 1
                }
            }
        }
    }
    assert!(within_one_frame > 1000 && across > 100, "{within_one_frame} members in one frame, {across} across frames");
}
