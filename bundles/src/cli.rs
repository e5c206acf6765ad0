//! `airgap bundle pack|verify|inspect|extract|sbom`: the commands that work on a bundle that
//! already exists (or on an OCI layout to pack).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;

use crate::artifact::Artifact;
use crate::carried_binary::CarriedBinary;
use crate::pack::{pack, PackOptions};
use crate::reader::Bundle;
use crate::sbom::Format;
use crate::size::{human, parse_size, part_size_warning, FAT32_MAX};
use crate::text::printable;
use crate::verify::{verify, VerifyOptions};

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  skopeo copy docker://docker.io/library/busybox:1.36 oci:layout:docker.io/library/busybox:1.36\n  airgap bundle pack layout -o /media/usb/bundle --sign-key airgap.key"
)]
/// What `airgap bundle pack` is given.
pub struct PackArgs {
    /// An OCI image layout directory (what `skopeo copy ... oci:DIR:REF` writes).
    pub layout: PathBuf,
    /// The bundle directory to write; must not exist or be empty.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The largest part, in bytes.
    #[arg(long, value_parser = parse_size, default_value_t = FAT32_MAX, help = MAX_PART_SIZE_HELP)]
    pub max_part_size: u64,
    /// A minisign secret key; the bundle's SHA256SUMS is signed with it.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// A previous bundle directory or its lock: only blobs it lacks are carried.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// zstd level (1–19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// The airgap binary carried beside the parts.
    #[arg(long, value_name = "FILE", help = AIRGAP_BINARY_HELP)]
    pub airgap_binary: Option<PathBuf>,
}

/// The help of `--max-part-size`, the same for `pack` and `create`.
pub const MAX_PART_SIZE_HELP: &str = "Largest part, in bytes or with a unit (50MiB, 2GiB). The default, 4 GiB - 1 \
     bytes, is the largest file FAT32 holds; larger parts are written with a warning, for exFAT, NTFS or ext4 media";

/// The help of `--airgap-binary`, the same for `pack` and `create`.
pub const AIRGAP_BINARY_HELP: &str = "The airgap binary written beside the parts as airgap-<os>-<arch>, listed in \
     SHA256SUMS and the SBOMs, so the media carry the tool that reads them [default: this airgap]";

/// What `--airgap-binary` names, or else the airgap that is running: the media carry the tool
/// that reads them.
pub fn carried_airgap(given: Option<PathBuf>) -> std::io::Result<Option<PathBuf>> {
    given.map_or_else(std::env::current_exe, Ok).map(Some)
}

/// Prints the FAT32 warning for parts that may not fit it.
pub fn warn_about_part_size(max_part_size: u64) {
    if let Some(w) = part_size_warning(max_part_size) {
        eprintln!("warning: {w}");
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle verify /media/usb/bundle --key airgap.pub --report audit/verify\n\nExit status is 0 only when every check passes; each problem is printed on its own line.\nA signed bundle needs the signer's public key (--key), or --no-signature-check to check\neverything but who signed it; an unsigned bundle verifies without either."
)]
/// What `airgap bundle verify` is given.
pub struct VerifyArgs {
    /// The bundle directory: the parts and the files beside them.
    pub bundle: PathBuf,
    /// The minisign public key that must have signed SHA256SUMS.
    #[arg(long, conflicts_with = "no_signature_check")]
    pub key: Option<PathBuf>,
    /// Verify a signed bundle without its public key: every check but who signed it.
    #[arg(long)]
    pub no_signature_check: bool,
    /// Write evidence for auditors: FILE.json (machine) and FILE.txt (people); missing folders are made.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Bundles this delta is laid over.
    #[arg(long)]
    pub base: Vec<PathBuf>,
    /// Print the whole report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each artifact's SIZE is all it carries (manifests, configs, layers); the total counts a blob\nthat several artifacts share once, and the last line is what the bundle takes on the media.\n\nExample:\n  airgap bundle inspect /media/usb/bundle --json | jq '.artifacts[] | select(.kind==\"image\") | .reference'"
)]
/// What `airgap bundle inspect` is given.
pub struct InspectArgs {
    /// The bundle directory: the parts and the files beside them.
    pub bundle: PathBuf,
    /// One JSON document on stdout: the artifacts with their sizes, the total and the files on the media.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle extract /media/usb/bundle ./layout && skopeo inspect oci:./layout:docker.io/library/busybox:1.36"
)]
/// What `airgap bundle extract` is given.
pub struct ExtractArgs {
    /// The bundle directory: the parts and the files beside them.
    pub bundle: PathBuf,
    /// Where to write the OCI image layout; must not exist or be empty.
    pub dest: PathBuf,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle cat /media/usb/bundle index.json | jq .\n  airgap bundle cat /media/usb/bundle sha256:0123… > blob"
)]
/// What `airgap bundle cat` is given.
pub struct CatArgs {
    /// The bundle directory: the parts and the files beside them.
    pub bundle: PathBuf,
    /// A blob digest (`sha256:…`) or a member path inside the archive (`index.json`).
    pub what: String,
}

/// What `airgap bundle sbom` is given.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  airgap bundle sbom /media/usb/bundle --format cyclonedx > bundle.cdx.json")]
pub struct SbomArgs {
    /// The bundle directory: the parts and the files beside them.
    pub bundle: PathBuf,
    /// spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON; cdx for short).
    #[arg(long, value_parser = PossibleValuesParser::new(["spdx", "cyclonedx", "cdx"]).map(|s| s.parse::<Format>().expect("a listed format")))]
    pub format: Format,
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    pb.set_message(what.to_string());
    pb
}

impl PackArgs {
    /// Packs an OCI layout into a bundle, carrying the running airgap unless told another.
    pub fn run(mut self) -> Result<()> {
        self.airgap_binary = carried_airgap(self.airgap_binary)?;
        warn_about_part_size(self.max_part_size);
        let sign_key = self.sign_key.as_deref().map(crate::sign::load_secret_key).transpose()?;
        let base = self.base.as_deref().map(crate::lock::Lock::read).transpose()?;
        let pb = bar(0, "packing");
        let progress = |done: u64, total: u64| {
            pb.set_length(total);
            pb.set_position(done);
        };
        let opts = PackOptions {
            max_part_size: self.max_part_size,
            level: self.level,
            sign_key,
            base,
            progress: Some(&progress),
            airgap_binary: self.airgap_binary.as_deref().map(CarriedBinary::at),
            ..PackOptions::default()
        };
        let packed = pack(&self.layout, &self.output, &opts)?;
        pb.finish_and_clear();
        eprintln!("{}", packed.summary(&self.output));
        eprintln!("check a copy with: (cd {} && sha256sum -c SHA256SUMS)", self.output.display());
        Ok(())
    }
}

impl VerifyArgs {
    /// Verifies a bundle and writes its report; an error when anything failed.
    pub fn run(self) -> Result<()> {
        // A key that cannot be read is the key's problem, said before anything of the bundle.
        if let Some(key) = &self.key {
            crate::sign::load_public_key(key).with_context(|| format!("--key {}", key.display()))?;
        }
        let bases = self.base.iter().map(|b| Bundle::open(b)).collect::<Result<Vec<_>, _>>()?;
        let mut report = verify(&self.bundle, &VerifyOptions { key: self.key.clone(), bases });
        if !self.no_signature_check {
            report.require_signature();
        }
        // The report is written before the verdict is returned, and a report that cannot be written
        // is said beside the verdict, never instead of it.
        let written = self.report.as_deref().map(|r| write_report(&report, r)).transpose();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        let problems = report.problem_lines();
        for p in &problems {
            eprintln!("FAILED {p}");
        }
        if !report.ok {
            let unwritten = written.err().map(|e| format!("; the report was not written: {e:#}")).unwrap_or_default();
            bail!("{} problem(s) found in {}{unwritten}", problems.len().max(1), self.bundle.display());
        }
        let skipped: Vec<_> = report.checks.iter().filter(|c| c.status == crate::verify::Status::Skipped).collect();
        for s in skipped {
            eprintln!("note: {}: {}", s.subject, s.detail.as_deref().unwrap_or("skipped"));
        }
        let verdict =
            format!("OK {} ({} checks passed)", self.bundle.display(), report.counts.get("ok").copied().unwrap_or(0));
        if self.json {
            eprintln!("{verdict}");
        } else {
            println!("{verdict}");
        }
        written.context("the bundle verified, but its report was not written")?;
        Ok(())
    }
}

/// `FILE.json` and `FILE.txt`, in a folder made when missing.
fn write_report(report: &crate::verify::Report, base: &std::path::Path) -> Result<()> {
    let stem = base.to_string_lossy().trim_end_matches(".json").trim_end_matches(".txt").to_string();
    let json_path = PathBuf::from(format!("{stem}.json"));
    let txt_path = PathBuf::from(format!("{stem}.txt"));
    if let Some(parent) = json_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("--report: cannot make {}", parent.display()))?;
    }
    std::fs::write(&json_path, serde_json::to_vec_pretty(report)?).with_context(|| json_path.display().to_string())?;
    std::fs::write(&txt_path, report.to_text()).with_context(|| txt_path.display().to_string())?;
    eprintln!("report written to {} and {}", json_path.display(), txt_path.display());
    Ok(())
}

/// Every artifact the bundle carries, from its lock.
pub fn artifacts(bundle: &Bundle) -> Result<Vec<Artifact>> {
    Ok(bundle.lock()?.artifacts)
}

impl InspectArgs {
    /// Prints what a bundle carries and what it takes on the media.
    pub fn run(self) -> Result<()> {
        let bundle = Bundle::open(&self.bundle)?;
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, &crate::footprint::of(&bundle)?)?;
            writeln!(out)?;
            return Ok(());
        }
        out.write_all(inspect_table(&bundle)?.as_bytes())?;
        Ok(())
    }
}

/// What `inspect` prints for people. Names come from the bundle: escape codes in them are shown,
/// not acted on.
pub fn inspect_table(bundle: &Bundle) -> Result<String> {
    let footprint = crate::footprint::of(bundle)?;
    let mut out = format!("{:<6} {:<70} {:<20} {:>10}  PLATFORM\n", "KIND", "REFERENCE", "DIGEST", "SIZE");
    for s in &footprint.artifacts {
        let a = &s.artifact;
        out.push_str(&format!(
            "{:<6} {:<70} {:<20} {:>10}  {}\n",
            a.kind.to_string(),
            printable(&a.reference),
            printable(&a.digest.as_ref().chars().take(19).collect::<String>()),
            human(s.carried_size),
            printable(&a.platforms.join(",")),
        ));
    }
    let total =
        format!("{} artifacts, {} blobs (a shared blob counted once)", footprint.artifacts.len(), footprint.blobs);
    out.push_str(&format!("{:<6} {:<91} {:>10}\n", "TOTAL", total, human(footprint.total_size)));
    let parts = footprint.on_media.iter().filter(|f| crate::parts::is_part_name(&f.name)).count();
    out.push_str(&format!(
        "on media: {} ({} bytes) in {} files, {parts} of them parts\n",
        human(footprint.on_media_size),
        footprint.on_media_size,
        footprint.on_media.len(),
    ));
    if let Some(base) = &bundle.meta().base {
        out.push_str(&format!(
            "\ndelta over the bundle whose lock has sha256 {}; {} of the total is in that base\n",
            printable(&base.lock_sha256),
            human(footprint.in_base.unwrap_or(0)),
        ));
    }
    Ok(out)
}

impl ExtractArgs {
    /// Unpacks the archive into a folder.
    pub fn run(self) -> Result<()> {
        let done = crate::extract::extract(&self.bundle, &self.dest)?;
        eprintln!("extracted {} files ({}) to {}", done.files, human(done.bytes), self.dest.display());
        Ok(())
    }
}

impl SbomArgs {
    /// Writes one of the bundle's SBOMs to stdout.
    pub fn run(self) -> Result<()> {
        let bundle = Bundle::open(&self.bundle)?;
        let name = format!("{}/{}", crate::pack::INNER_DIR, self.format.file_name());
        let bytes = bundle.read_member(&name)?;
        std::io::stdout().lock().write_all(&bytes)?;
        Ok(())
    }
}

impl CatArgs {
    /// Streams one blob or member to stdout straight from the parts, one frame in memory at a time.
    pub fn run(self) -> Result<()> {
        let bundle = Bundle::open(&self.bundle)?;
        let member = match crate::digest::parse_sha256(&self.what) {
            Ok(d) => crate::digest::blob_path(&d),
            Err(_) if self.what.starts_with("sha256:") => bail!("'{}' is not a valid sha256 digest", self.what),
            Err(_) => self.what.clone(),
        };
        let mut reader = bundle.open_member(&member)?;
        let mut out = std::io::stdout().lock();
        std::io::copy(&mut reader, &mut out)
            .with_context(|| format!("reading {member} from {}", self.bundle.display()))?;
        Ok(())
    }
}
