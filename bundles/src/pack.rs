//! OCI layout → bundle directory: the deterministic archive in parts, with the lock, the SBOMs,
//! the member index, `SHA256SUMS` and, when a key is given, its minisign signature.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use oci_spec::image::{ImageIndex, ImageIndexBuilder};

use crate::archive::TarWriter;
use crate::artifact::{list_artifacts, Artifact, ANNOTATION_KIND, ANNOTATION_REF};
use crate::carried_binary::{self, CarriedBinary, Described};
use crate::checksums;
use crate::digest::{blob_path, parse_sha256};
use crate::error::{Error, IoContext, Result};
use crate::layout::{BlobStore, LayoutDir, Walk, INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE};
use crate::lock::{Lock, LockedBlob, LOCK_FILE};
use crate::meta::{ArchiveMeta, BaseRef, BundleMeta, PartMeta, META_FILE};
use crate::outdir::{write_atomic, OutDir};
use crate::parts::{PartWriter, WrittenPart};
use crate::sbom;
use crate::seekable::{FrameWriter, DEFAULT_FRAME_SIZE};
use crate::sign::{self, SIGNATURE_SUFFIX};
use crate::size::FAT32_MAX;

/// The checksums file beside the parts.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// Inside the archive, airgap's own files sit apart from the layout.
pub const INNER_DIR: &str = "airgap";

/// How `pack` writes a bundle.
pub struct PackOptions<'a> {
    /// The largest part, in bytes.
    pub max_part_size: u64,
    /// The zstd level.
    pub level: i32,
    /// The uncompressed size of each zstd frame.
    pub frame_size: usize,
    /// Compression threads.
    pub threads: usize,
    /// Signs `SHA256SUMS` when given.
    pub sign_key: Option<minisign::SecretKey>,
    /// Blobs the base has are left out; the bundle names the base.
    pub base: Option<Lock>,
    /// RFC 3339 time written into the SBOMs; fixed so rebuilds are byte-identical.
    pub created: String,
    /// Called with (bytes done, bytes total) as the archive is written.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// The airgap binary to carry beside the parts.
    pub airgap_binary: Option<CarriedBinary>,
}

impl Default for PackOptions<'_> {
    fn default() -> Self {
        PackOptions {
            max_part_size: FAT32_MAX,
            level: 3,
            frame_size: DEFAULT_FRAME_SIZE,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            sign_key: None,
            base: None,
            created: created_from_env(),
            progress: None,
            airgap_binary: None,
        }
    }
}

/// `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention), else the Unix epoch.
pub fn created_from_env() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// What `pack` wrote.
#[derive(Debug)]
pub struct Packed {
    /// The parts.
    pub parts: Vec<WrittenPart>,
    /// The lock written into the bundle.
    pub lock: Lock,
    /// How many blobs the bundle carries (a delta leaves out its base's).
    pub carried_blobs: usize,
    /// The size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The airgap binary beside the parts.
    pub binary: Option<Described>,
}

impl Packed {
    /// The size of all parts together.
    pub fn archive_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The line people read when a bundle is written.
    pub fn summary(&self, out: &Path) -> String {
        let beside = match &self.binary {
            Some(b) => format!("; {} ({}) beside them", b.file_name, crate::size::human(b.size)),
            None => String::new(),
        };
        format!(
            "wrote {} ({} artifacts, {} blobs, {} in {} part(s) from {} uncompressed{beside})",
            out.display(),
            self.lock.artifacts.len(),
            self.carried_blobs,
            crate::size::human(self.archive_size()),
            self.parts.len(),
            crate::size::human(self.uncompressed_size),
        )
    }
}

/// The index the bundle carries: artifacts in a stable order, each annotated with its kind.
fn normalized_index(index: &ImageIndex, artifacts: &[Artifact]) -> Result<Vec<u8>> {
    let mut manifests = Vec::new();
    for a in artifacts {
        let mut d = index
            .manifests()
            .iter()
            .find(|d| d.annotations().as_ref().and_then(|m| m.get(ANNOTATION_REF)) == Some(&a.reference))
            .cloned()
            .expect("every listed artifact comes from the index");
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_KIND.to_string(), a.kind.to_string());
        d.set_annotations(Some(ann));
        manifests.push(d);
    }
    let rebuilt = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| Error::invalid(INDEX_FILE, e.to_string()))?;
    let value = serde_json::to_value(&rebuilt).map_err(|e| Error::invalid(INDEX_FILE, e.to_string()))?;
    Ok(serde_json::to_vec(&sorted_keys(value)).expect("JSON serializes"))
}

/// Annotations are hash maps in memory; written with sorted keys, the same index gives the
/// same bytes in every run.
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

enum Source<'a> {
    Bytes(&'a [u8]),
    Blob(String),
}

/// Writes the bundle for the layout in `layout_dir` into `out`.
pub fn pack(layout_dir: &Path, out: &Path, opts: &PackOptions<'_>) -> Result<Packed> {
    let (layout, index, _) = LayoutDir::open(layout_dir)?;
    let base_blobs = opts.base.as_ref().map(Lock::blob_set).unwrap_or_default();
    let elsewhere = |d: &crate::digest::Digest| base_blobs.contains(&d.to_string());
    let mut walk = Walk::new(&layout, &elsewhere);
    let artifacts = list_artifacts(&layout, &index, &mut walk)?;
    if let Some(dup) = artifacts.windows(2).find(|w| w[0].reference == w[1].reference && w[0].kind == w[1].kind) {
        return Err(Error::invalid(layout_dir.join(INDEX_FILE), format!("{} is listed twice", dup[0].reference)));
    }
    let lock = Lock {
        schema_version: crate::SCHEMA_VERSION.to_string(),
        artifacts: artifacts.clone(),
        blobs: walk.blobs.iter().map(|(d, s)| LockedBlob { digest: d.clone(), size: *s }).collect(),
        base: opts.base.as_ref().map(|b| BaseRef { lock_sha256: b.sha256(), description: None }),
    };
    let doc_id = lock.sha256();
    let binary = opts.airgap_binary.as_ref().map(describe_binary).transpose()?;
    let spdx = sbom::to_bytes(&sbom::spdx(&artifacts, binary.as_ref(), &doc_id, &opts.created));
    let cdx = sbom::to_bytes(&sbom::cyclonedx(&artifacts, binary.as_ref(), &doc_id, &opts.created));
    let lock_json = lock.to_json();
    let index_json = normalized_index(&index, &artifacts)?;

    let mut members: BTreeMap<String, (u64, Source<'_>)> = BTreeMap::new();
    let inner = |name: &str| format!("{INNER_DIR}/{name}");
    members.insert(inner(LOCK_FILE), (lock_json.len() as u64, Source::Bytes(&lock_json)));
    members.insert(inner(sbom::SPDX_FILE), (spdx.len() as u64, Source::Bytes(&spdx)));
    members.insert(inner(sbom::CYCLONEDX_FILE), (cdx.len() as u64, Source::Bytes(&cdx)));
    members.insert(INDEX_FILE.into(), (index_json.len() as u64, Source::Bytes(&index_json)));
    members.insert(LAYOUT_FILE.into(), (LAYOUT_CONTENT.len() as u64, Source::Bytes(LAYOUT_CONTENT.as_bytes())));
    let mut carried = 0;
    for (digest, size) in &walk.blobs {
        if !base_blobs.contains(digest) {
            let d = parse_sha256(digest).map_err(|e| Error::invalid(layout_dir, e.to_string()))?;
            members.insert(blob_path(&d), (*size, Source::Blob(digest.clone())));
            carried += 1;
        }
    }
    let mut sums: Vec<(String, String)> = members
        .iter()
        .map(|(path, (_, src))| {
            let hex = match src {
                Source::Bytes(b) => crate::digest::sha256_hex(b),
                Source::Blob(d) => d.trim_start_matches("sha256:").to_string(),
            };
            (path.clone(), hex)
        })
        .collect();
    sums.sort();
    let inner_sums = checksums::render(&sums);
    members.insert(SUMS_FILE.into(), (inner_sums.len() as u64, Source::Bytes(inner_sums.as_bytes())));

    let guard = OutDir::prepare(out)?;
    let total: u64 = members.values().map(|(s, _)| s).sum();
    let parts = PartWriter::new(out, opts.max_part_size);
    let frames = FrameWriter::new(parts, opts.level, opts.frame_size, opts.threads);
    let mut tar = TarWriter::new(frames);
    let mut done = 0u64;
    for (path, (size, src)) in &members {
        let reader: Box<dyn Read> = match src {
            Source::Bytes(b) => Box::new(*b),
            Source::Blob(d) => layout.open_blob(&parse_sha256(d).expect("validated above"))?,
        };
        let hex = tar.append(path, *size, false, reader).map_err(|e| Error::io(layout_dir.join(path), e))?;
        if let Source::Blob(d) = src {
            if d.trim_start_matches("sha256:") != hex {
                return Err(Error::invalid(
                    layout_dir.join(path),
                    format!("content hashes to sha256:{hex}, not {d}: the layout is damaged"),
                ));
            }
        }
        done += size;
        if let Some(p) = opts.progress {
            p(done, total);
        }
    }
    let (frames, member_index, uncompressed_size) = tar.finish().at(out)?;
    let (parts, _) = frames.finish().at(out)?;
    let parts = parts.finish()?;

    let meta = BundleMeta {
        schema_version: crate::SCHEMA_VERSION.to_string(),
        generator: crate::GENERATOR.to_string(),
        archive: ArchiveMeta {
            parts: parts.iter().map(|p| PartMeta { name: p.name.clone(), size: p.size }).collect(),
            max_part_size: opts.max_part_size,
            uncompressed_size,
            frame_size: Some(opts.frame_size as u64),
        },
        base: lock.base.clone(),
        members: member_index,
    };
    let mut meta_json = serde_json::to_vec_pretty(&meta).expect("metadata serializes");
    meta_json.push(b'\n');
    let outer_files: [(&str, &[u8]); 4] =
        [(META_FILE, &meta_json), (LOCK_FILE, &lock_json), (sbom::SPDX_FILE, &spdx), (sbom::CYCLONEDX_FILE, &cdx)];
    let mut outer_sums: Vec<(String, String)> = Vec::new();
    for (name, bytes) in outer_files {
        write_atomic(out, name, bytes)?;
        outer_sums.push((name.to_string(), crate::digest::sha256_hex(bytes)));
    }
    outer_sums.extend(parts.iter().map(|p| (p.name.clone(), p.sha256.clone())));
    if let (Some(carried), Some(described)) = (&opts.airgap_binary, &binary) {
        copy_binary(&carried.path, out, described)?;
        outer_sums.push((described.file_name.clone(), described.sha256.clone()));
    }
    outer_sums.sort();
    let sums_text = checksums::render(&outer_sums);
    if let Some(key) = &opts.sign_key {
        let comment = format!("airgap bundle SHA256SUMS sha256:{}", crate::digest::sha256_hex(sums_text.as_bytes()));
        let sig = sign::sign(sums_text.as_bytes(), key, &comment)?;
        write_atomic(out, &format!("{SUMS_FILE}{SIGNATURE_SUFFIX}"), sig.as_bytes())?;
    }
    // Last, because its presence is what marks the bundle complete.
    write_atomic(out, SUMS_FILE, sums_text.as_bytes())?;
    guard.keep();
    Ok(Packed { parts, lock, carried_blobs: carried, uncompressed_size, binary })
}

fn describe_binary(b: &CarriedBinary) -> Result<Described> {
    let file_name = carried_binary::file_name(&b.path)?;
    let (sha256, size) = std::fs::File::open(&b.path).and_then(crate::digest::sha256_reader).at(&b.path)?;
    Ok(Described { file_name, version: b.version.clone(), sha256, size })
}

/// Copies the binary beside the parts, executable, through a temporary name; a binary that
/// changed since the SBOMs named it is refused.
fn copy_binary(from: &Path, out: &Path, described: &Described) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = out.join(format!(".{}.partial", described.file_name));
    std::fs::copy(from, &tmp).at(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).at(&tmp)?;
    let (sha256, _) = std::fs::File::open(&tmp).and_then(crate::digest::sha256_reader).at(&tmp)?;
    if sha256 != described.sha256 {
        return Err(Error::invalid(from, "the binary changed while the bundle was written: write the bundle again"));
    }
    let dest = out.join(&described.file_name);
    std::fs::rename(&tmp, &dest).at(&dest)
}
