//! Property tests of the parsers that read what a bundle or an upstream says: image references,
//! digests, indexes and manifests (walked for their blobs), the coreutils checksum format, tar
//! member names, the zstd seek table, bundle.json and the lock. None may panic on any input, and
//! each that has a printer reads back what it printed.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path};

use bundles::artifact::{list_artifacts, Reference};
use bundles::checksums;
use bundles::digest::{blob_path, from_blob_path, parse_sha256, sha256_digest, sha256_hex, Digest};
use bundles::layout::{parse_index, BlobStore, Walk};
use bundles::lock::Lock;
use bundles::safe_path::{check_bundle_member, check_member_name};
use bundles::seekable::{FrameEntry, SeekTable};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A path component; without dots, so that a first one is never taken for a registry host.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]+([_-][a-z0-9]+)*".prop_filter("not a host name", |c| c != "localhost")
}

fn reference_parts() -> impl Strategy<Value = (Option<String>, Vec<String>, Option<String>, Option<String>)> {
    (
        proptest::option::of(prop_oneof![
            "[a-z0-9]+(\\.[a-z0-9]+)+",
            "[a-z0-9]+(\\.[a-z0-9]+)*:[0-9]{1,5}",
            Just("localhost".to_string())
        ]),
        proptest::collection::vec(component(), 1..4),
        proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        proptest::option::of(any::<[u8; 32]>().prop_map(|b| format!("sha256:{}", hex::encode(b)))),
    )
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::hash_map("[a-zA-Z]{0,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Blobs in memory, by digest.
struct Blobs(HashMap<String, Vec<u8>>);

impl BlobStore for Blobs {
    fn blob_len(&self, d: &Digest) -> bundles::Result<Option<u64>> {
        Ok(self.0.get(&d.to_string()).map(|b| b.len() as u64))
    }

    fn open_blob(&self, d: &Digest) -> bundles::Result<Box<dyn Read + Send + '_>> {
        let b = self.0.get(&d.to_string()).ok_or_else(|| bundles::Error::invalid(blob_path(d), "missing"))?;
        Ok(Box::new(&b[..]))
    }
}

/// A descriptor of one of `docs` (by index) or of a digest nothing holds, with a size that may lie.
fn descriptor(docs: &[Vec<u8>], pick: usize, size_skew: i64, extra: &Value) -> Value {
    let (digest, size) = match docs.get(pick % (docs.len() + 1)) {
        Some(d) => (format!("sha256:{}", sha256_hex(d)), d.len() as i64 + size_skew),
        None => (format!("sha256:{}", "0".repeat(64)), size_skew),
    };
    let mut v =
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size.max(0)});
    if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
        o.extend(e.clone());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_reference_never_panics_and_what_it_prints_parses_to_itself(text in ".{0,80}") {
        if let Ok(r) = Reference::parse(&text) {
            prop_assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
        }
    }

    #[test]
    fn a_well_formed_reference_keeps_its_registry_path_tag_and_digest(
        (registry, path, tag, digest) in reference_parts()
    ) {
        let mut text = path.join("/");
        if let Some(r) = &registry {
            text = format!("{r}/{text}");
        }
        if let Some(t) = &tag {
            text = format!("{text}:{t}");
        }
        if let Some(d) = &digest {
            text = format!("{text}@{d}");
        }
        let r = Reference::parse(&text).unwrap();
        prop_assert_eq!(&r.tag, &tag);
        prop_assert_eq!(r.digest.as_ref().map(ToString::to_string), digest);
        match &registry {
            Some(host) if host != "docker.io" && host != "index.docker.io" && host != "registry-1.docker.io" => {
                prop_assert_eq!(&r.registry, host);
                prop_assert_eq!(&r.repository, &path.join("/"));
            }
            _ => prop_assert_eq!(r.registry.as_str(), "docker.io"),
        }
        prop_assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
    }

    #[test]
    fn a_digest_never_panics_and_a_sha256_round_trips(text in ".{0,80}", bytes in any::<[u8; 32]>()) {
        let _ = parse_sha256(&text);
        let _ = from_blob_path(&text);
        let hex = hex::encode(bytes);
        let d = parse_sha256(&format!("sha256:{hex}")).unwrap();
        prop_assert_eq!(d.to_string(), format!("sha256:{hex}"));
        prop_assert_eq!(&from_blob_path(&blob_path(&d)).unwrap(), &d);
        prop_assert_eq!(sha256_digest(&hex), d);
    }

    #[test]
    fn an_index_of_any_bytes_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200), v in json_value()) {
        let _ = parse_index(&raw, Path::new("index.json"));
        let _ = parse_index(&serde_json::to_vec(&v).unwrap(), Path::new("index.json"));
    }

    /// Indexes and manifests that point at each other, at blobs nothing holds, with sizes that
    /// lie and fields of any shape: listing their artifacts and walking their blobs ends, Ok or
    /// Err, and never panics.
    #[test]
    fn walking_any_graph_of_manifests_never_panics(
        shapes in proptest::collection::vec((json_value(), proptest::collection::vec((0usize..8, -2i64..3), 0..4)), 1..6),
        roots in proptest::collection::vec((0usize..8, -2i64..3, json_value()), 1..4),
    ) {
        let mut docs: Vec<Vec<u8>> = Vec::new();
        for (extra, links) in &shapes {
            let children: Vec<Value> = links.iter().map(|(p, s)| descriptor(&docs, *p, *s, &Value::Null)).collect();
            let doc = match docs.len() % 3 {
                0 => json!({"schemaVersion": 2, "manifests": children, "extra": extra}),
                1 => json!({"schemaVersion": 2, "config": children.first(), "layers": children, "extra": extra}),
                _ => extra.clone(),
            };
            docs.push(serde_json::to_vec(&doc).unwrap());
        }
        let manifests: Vec<Value> = roots
            .iter()
            .enumerate()
            .map(|(i, (p, s, ann))| {
                let annotations = json!({"annotations": {"org.opencontainers.image.ref.name": format!("r{i}"), "x": ann.to_string()}});
                descriptor(&docs, *p, *s, &annotations)
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        let store = Blobs(docs.iter().map(|d| (format!("sha256:{}", sha256_hex(d)), d.clone())).collect());
        if let Ok(index) = parse_index(&serde_json::to_vec(&index).unwrap(), Path::new("index.json")) {
            for elsewhere in [false, true] {
                let f = move |_: &Digest| elsewhere;
                let mut walk = Walk::new(&store, &f);
                let _ = list_artifacts(&store, &index, &mut walk);
            }
        }
    }

    #[test]
    fn a_checksum_file_never_panics(text in "(.{0,70}\n?){0,6}") {
        let _ = checksums::parse(&text, "SHA256SUMS");
    }

    #[test]
    fn checksums_read_back_what_was_written(
        entries in proptest::collection::vec(("[^\n\r]{1,40}", any::<[u8; 32]>()), 0..8)
    ) {
        let entries: Vec<(String, String)> = entries.into_iter().map(|(n, h)| (n, hex::encode(h))).collect();
        prop_assert_eq!(checksums::parse(&checksums::render(&entries), "SHA256SUMS").unwrap(), entries);
    }

    /// A member name a bundle may hold is spelled one way: its components are plain and joined
    /// by single slashes, so no two accepted names are one file.
    #[test]
    fn an_accepted_member_name_is_its_one_spelling(
        name in prop_oneof![".{0,90}", "(\\.{0,2}/)?(airgap|blobs|sha256|\\.|index\\.json|[a-f0-9]{64})(/{1,2}(\\.|airgap|sha256|[a-f0-9]{64}|x))*"]
    ) {
        let _ = check_member_name(&name);
        if check_bundle_member(&name).is_ok() {
            let parts: Vec<&str> = Path::new(&name)
                .components()
                .map(|c| match c {
                    Component::Normal(p) => p.to_str().unwrap(),
                    _ => "<not plain>",
                })
                .collect();
            prop_assert_eq!(parts.join("/"), name);
        }
    }

    #[test]
    fn a_seek_table_never_panics_and_reads_back(
        raw in proptest::collection::vec(any::<u8>(), 0..64),
        frames in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..16),
    ) {
        let _ = SeekTable::parse(&raw);
        if raw.len() >= 9 {
            let _ = SeekTable::frame_len_from_footer(&raw[raw.len() - 9..]);
        }
        let table = SeekTable { frames: frames.into_iter().map(|(c, d)| FrameEntry { compressed: c, decompressed: d }).collect() };
        prop_assert_eq!(SeekTable::parse(&table.to_bytes()).unwrap(), table);
    }

    #[test]
    fn bundle_metadata_and_locks_of_any_json_never_panic(v in json_value(), raw in proptest::collection::vec(any::<u8>(), 0..100)) {
        let dir = tempfile::tempdir().unwrap();
        let text = serde_json::to_vec(&v).unwrap();
        for bytes in [&text, &raw] {
            std::fs::write(dir.path().join("bundle.json"), bytes).unwrap();
            let _ = bundles::meta::BundleMeta::read(dir.path());
            let _ = Lock::from_json(bytes, Path::new("lock"));
        }
    }
}
