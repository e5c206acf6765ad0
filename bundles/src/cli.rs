//! `airgap bundle pack|verify|inspect|extract|sbom`: the commands that work on a bundle that
//! already exists (or on an OCI layout to pack).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::artifact::Artifact;
use crate::pack::{pack, PackOptions};
use crate::reader::Bundle;
use crate::sbom::Format;
use crate::size::{human, parse_size, FAT32_MAX};
use crate::verify::{verify, VerifyOptions};

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  skopeo copy docker://docker.io/library/busybox:1.36 oci:layout:docker.io/library/busybox:1.36\n  airgap bundle pack layout -o /media/usb/bundle --max-part-size 4GiB --sign-key airgap.key"
)]
pub struct PackArgs {
    /// An OCI image layout directory (what `skopeo copy ... oci:DIR:REF` writes).
    pub layout: PathBuf,
    /// The bundle directory to write; must not exist or be empty.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Largest part, in bytes or with a unit (4GiB, 50MiB); the default fits FAT32.
    #[arg(long, value_parser = parse_size, default_value_t = FAT32_MAX)]
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
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle verify /media/usb/bundle --key airgap.pub --report audit/verify\n\nExit status is 0 only when every check passes; each problem is printed on its own line."
)]
pub struct VerifyArgs {
    pub bundle: PathBuf,
    /// The minisign public key that must have signed SHA256SUMS.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Write evidence for auditors: FILE.json (machine) and FILE.txt (people).
    #[arg(long)]
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
    after_help = "Example:\n  airgap bundle inspect /media/usb/bundle --json | jq '.[] | select(.kind==\"image\") | .reference'"
)]
pub struct InspectArgs {
    pub bundle: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle extract /media/usb/bundle ./layout && skopeo inspect oci:./layout:docker.io/library/busybox:1.36"
)]
pub struct ExtractArgs {
    pub bundle: PathBuf,
    /// Where to write the OCI image layout; must not exist or be empty.
    pub dest: PathBuf,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  airgap bundle cat /media/usb/bundle index.json | jq .\n  airgap bundle cat /media/usb/bundle sha256:0123… > blob"
)]
pub struct CatArgs {
    pub bundle: PathBuf,
    /// A blob digest (`sha256:…`) or a member path inside the archive (`index.json`).
    pub what: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  airgap bundle sbom /media/usb/bundle --format cyclonedx > bundle.cdx.json")]
pub struct SbomArgs {
    pub bundle: PathBuf,
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
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

pub fn run_pack(args: PackArgs) -> Result<()> {
    let sign_key = args.sign_key.as_deref().map(crate::sign::load_secret_key).transpose()?;
    let base = args.base.as_deref().map(crate::lock::Lock::read).transpose()?;
    let pb = bar(0, "packing");
    let progress = |done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let opts = PackOptions {
        max_part_size: args.max_part_size,
        level: args.level,
        sign_key,
        base,
        progress: Some(&progress),
        ..PackOptions::default()
    };
    let packed = pack(&args.layout, &args.output, &opts)?;
    pb.finish_and_clear();
    eprintln!("{}", packed.summary(&args.output));
    eprintln!("check a copy with: (cd {} && sha256sum -c SHA256SUMS)", args.output.display());
    Ok(())
}

pub fn run_verify(args: VerifyArgs) -> Result<()> {
    let bases = args.base.iter().map(|b| Bundle::open(b)).collect::<Result<Vec<_>, _>>()?;
    let report = verify(&args.bundle, &VerifyOptions { key: args.key.clone(), bases });
    if let Some(base) = &args.report {
        let stem = base.to_string_lossy().trim_end_matches(".json").trim_end_matches(".txt").to_string();
        let json_path = PathBuf::from(format!("{stem}.json"));
        let txt_path = PathBuf::from(format!("{stem}.txt"));
        std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| json_path.display().to_string())?;
        std::fs::write(&txt_path, report.to_text()).with_context(|| txt_path.display().to_string())?;
        eprintln!("report written to {} and {}", json_path.display(), txt_path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    let problems = report.problem_lines();
    for p in &problems {
        eprintln!("FAILED {p}");
    }
    if !report.ok {
        bail!("{} problem(s) found in {}", problems.len().max(1), args.bundle.display());
    }
    if !args.json {
        let skipped: Vec<_> = report.checks.iter().filter(|c| c.status == crate::verify::Status::Skipped).collect();
        for s in skipped {
            eprintln!("note: {}: {}", s.subject, s.detail.as_deref().unwrap_or("skipped"));
        }
        println!("OK {} ({} checks passed)", args.bundle.display(), report.counts.get("ok").copied().unwrap_or(0));
    }
    Ok(())
}

pub fn artifacts(bundle: &Bundle) -> Result<Vec<Artifact>> {
    Ok(bundle.lock()?.artifacts)
}

pub fn run_inspect(args: InspectArgs) -> Result<()> {
    let bundle = Bundle::open(&args.bundle)?;
    let list = artifacts(&bundle)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{:<6} {:<70} {:<20} {:>10}  PLATFORM", "KIND", "REFERENCE", "DIGEST", "SIZE")?;
    for a in &list {
        writeln!(
            out,
            "{:<6} {:<70} {:<20} {:>10}  {}",
            a.kind.to_string(),
            a.reference,
            &a.digest[..a.digest.len().min(19)],
            human(a.content.as_ref().map_or(a.size, |c| c.size)),
            a.platforms.join(","),
        )?;
    }
    if let Some(base) = &bundle.meta().base {
        writeln!(out, "\ndelta over the bundle whose lock has sha256 {}", base.lock_sha256)?;
    }
    Ok(())
}

pub fn run_extract(args: ExtractArgs) -> Result<()> {
    let done = crate::extract::extract(&args.bundle, &args.dest)?;
    eprintln!("extracted {} files ({}) to {}", done.files, human(done.bytes), args.dest.display());
    Ok(())
}

pub fn run_sbom(args: SbomArgs) -> Result<()> {
    let bundle = Bundle::open(&args.bundle)?;
    let name = format!("{}/{}", crate::pack::INNER_DIR, args.format.file_name());
    let bytes = bundle.read_member(&name)?;
    std::io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

/// Streams one blob or member to stdout straight from the parts, one frame in memory at a time.
pub fn run_cat(args: CatArgs) -> Result<()> {
    let bundle = Bundle::open(&args.bundle)?;
    let member = match crate::digest::parse_sha256(&args.what) {
        Ok(d) => crate::digest::blob_path(&d),
        Err(_) if args.what.starts_with("sha256:") => bail!("'{}' is not a valid sha256 digest", args.what),
        Err(_) => args.what.clone(),
    };
    let mut reader = bundle.open_member(&member)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut reader, &mut out).with_context(|| format!("reading {member} from {}", args.bundle.display()))?;
    Ok(())
}
