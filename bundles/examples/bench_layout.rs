//! Writes a multi-GiB OCI layout shaped like a platform's images, for the pack and verify
//! benchmarks: mostly incompressible layers (as gzip'd layers are), some compressible text
//! layers (charts, configs, source), a long tail of small blobs, and images sharing layers.
//!
//! With `--small-files N` it writes N small file artifacts instead (three blobs each, one of
//! them shared), for the cost of verifying many small members.
//!
//! Usage: bench_layout DIR GIB | bench_layout DIR --small-files N

use std::io::{self, Read};

use bundles::artifact::Kind;
use bundles::layout_writer::LayoutWriter;
use serde_json::json;

/// xorshift bytes: incompressible, and fast enough not to dominate the set-up.
struct Noise {
    state: u64,
    left: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Log-like text that zstd compresses about as well as real configuration and source.
struct Text {
    line: u64,
    left: u64,
    pending: Vec<u8>,
}

impl Read for Text {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.len() < buf.len() && self.left > self.pending.len() as u64 {
            self.line += 1;
            let l = format!(
                "{{\"ts\":\"2023-01-08T10:{:02}:{:02}Z\",\"level\":\"INFO\",\"service\":\"svc-{}\",\"msg\":\"request {} handled in {} ms\"}}\n",
                self.line % 60,
                (self.line * 7) % 60,
                self.line % 37,
                self.line.wrapping_mul(2654435761) % 1_000_000,
                self.line % 997
            );
            self.pending.extend_from_slice(l.as_bytes());
        }
        let n = buf.len().min(self.pending.len()).min(self.left as usize);
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.left -= n as u64;
        Ok(n)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, gib): (&str, f64) = match args.as_slice() {
        [_, d, flag, n] if flag == "--small-files" => return small_files(d, n.parse()?),
        [_, d, g] => (d, g.parse()?),
        _ => return Err("usage: bench_layout DIR GIB | bench_layout DIR --small-files N".into()),
    };
    let total = (gib * (1u64 << 30) as f64) as u64;
    let mut w = LayoutWriter::open(std::path::Path::new(dir))?;
    let mut written = 0u64;
    let mut shared = Vec::new();
    let mut i = 0u64;
    while written < total {
        i += 1;
        // Sizes from 1 MiB to 384 MiB, most of them small, as in a real image set.
        let size = match i % 10 {
            0 => 384 << 20,
            1 | 2 => 96 << 20,
            3..=5 => 24 << 20,
            _ => 1 << 20,
        }
        .min(total - written)
        .max(1);
        let layer = if i % 7 == 0 {
            w.put_reader(Text { line: i * 1000, left: size, pending: Vec::new() }, None)?
        } else {
            w.put_reader(Noise { state: i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, left: size }, None)?
        };
        written += size;
        if shared.len() < 3 {
            shared.push(layer.clone());
        }
        let mut layers = vec![layer];
        layers.push(shared[(i % shared.len() as u64) as usize].clone());
        layers.dedup();
        let config = w.put_bytes(serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
        }))?.as_slice())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
            "layers": layers.iter().map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
        });
        let desc = w.put_manifest("application/vnd.oci.image.manifest.v1+json", &manifest)?;
        let reference = format!("docker.io/bench/image-{i:04}:1.0");
        w.add(&reference, Kind::Image, desc, &[]);
    }
    w.finish()?;
    eprintln!("wrote {i} images, {written} bytes of layers into {dir}");
    Ok(())
}

/// `n` file artifacts of 1 to 4 KiB of text each, as a platform's dashboards and scripts are.
fn small_files(dir: &str, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = LayoutWriter::open(std::path::Path::new(dir))?;
    for i in 0..n {
        let size = 1024 + (i * 997) % 3072;
        let text = Text { line: i * 1000, left: size, pending: Vec::new() };
        w.add_single_layer(&format!("files.airgap.local/small-{i:05}:1"), Kind::File, "small.txt", text, None, None)?;
    }
    w.finish()?;
    eprintln!("wrote {n} small files into {dir}");
    Ok(())
}
