//! The demo's stand-in for the internet: the sample spec's images, chart, tool archive and git
//! repository, generated here, deterministically, and written as an OCI layout that airgap's own
//! registry then serves on 127.0.0.1 the way the real upstreams would.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bundles::artifact::{
    Kind, HELM_CHART_LAYER_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, OCI_IMAGE_CONFIG_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE,
    OCI_LAYER_GZIP_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE,
};
use bundles::layout_writer::{descriptor, LayoutWriter, Stored};
use serde_json::json;

/// What the sample spec's `files` entry downloads, as served by the demo's upstream.
pub const TOOL_REFERENCE: &str = "downloads.airgap.example/tools:v1";
pub const TOOL_ARCHIVE: &str = "hello-cli-1.0-linux-amd64.tar.gz";

/// A gzip'd tar of `(path, mode, bytes)` with no times or owners, so it hashes the same every run.
fn tar_gz(files: &[(&str, u32, &[u8])]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, *data)?;
    }
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner()?)?;
    Ok(gz.finish()?)
}

fn image(w: &LayoutWriter, platform: &str, message: &str) -> Result<Stored> {
    let (os, arch) = platform.split_once('/').unwrap_or(("linux", "amd64"));
    let text = format!("{message} ({platform})\n");
    let layer_tar = {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("hello.txt")?;
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, text.as_bytes())?;
        tar.into_inner()?
    };
    let diff_id = format!("sha256:{}", bundles::digest::sha256_hex(&layer_tar));
    let layer = w.put_bytes(&tar_gz(&[("hello.txt", 0o644, text.as_bytes())])?)?;
    let config = w.put_bytes(&serde_json::to_vec(&json!({
        "architecture": arch, "os": os,
        "config": {"Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?)?;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": OCI_IMAGE_CONFIG_MEDIA_TYPE, "digest": config.digest.to_string(), "size": config.size},
        "layers": [{"mediaType": OCI_LAYER_GZIP_MEDIA_TYPE, "digest": layer.digest.to_string(), "size": layer.size}],
    });
    let d = w.put_manifest(OCI_MANIFEST_MEDIA_TYPE, &manifest)?;
    Ok(Stored { digest: d.digest().clone(), size: d.size() })
}

fn images(w: &mut LayoutWriter) -> Result<()> {
    let platforms = ["linux/amd64", "linux/arm64"];
    let mut entries = Vec::new();
    for p in platforms {
        let m = image(w, p, "hello from the air-gapped side")?;
        let (os, arch) = p.split_once('/').expect("os/arch");
        entries.push(json!({"mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": m.digest.to_string(), "size": m.size, "platform": {"os": os, "architecture": arch}}));
    }
    let index = w.put_manifest(
        OCI_INDEX_MEDIA_TYPE,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": entries}),
    )?;
    w.add("docker.io/airgap/hello:1.0", Kind::Image, index, &[]);
    let toolbox = image(w, "linux/amd64", "toolbox")?;
    w.add("quay.io/airgap/toolbox:2.1", Kind::Image, descriptor(OCI_MANIFEST_MEDIA_TYPE, &toolbox), &[]);
    Ok(())
}

fn chart(w: &mut LayoutWriter) -> Result<()> {
    let chart_yaml = "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.0\"\ndescription: The airgap demo's chart\ntype: application\n";
    let values = "replicaCount: 1\nimage: docker.io/airgap/hello:1.0\ntoolbox: quay.io/airgap/toolbox:2.1\n";
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-hello\nspec:\n  replicas: {{ .Values.replicaCount }}\n  selector:\n    matchLabels: {app: hello}\n  template:\n    metadata:\n      labels: {app: hello}\n    spec:\n      containers:\n        - name: hello\n          image: {{ .Values.image }}\n";
    // Hooks, as many charts have (database setup, certificates, clean-up): helm does not
    // post-render hooks, so the installer must run them itself.
    let hook = |name: &str, events: &str| {
        format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\n  annotations:\n    helm.sh/hook: {events}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: {name}\n          image: {{{{ .Values.toolbox }}}}\n")
    };
    let (welcome, goodbye) = (hook("welcome", "post-install,post-upgrade"), hook("goodbye", "pre-delete"));
    let tgz = tar_gz(&[
        ("hello/Chart.yaml", 0o644, chart_yaml.as_bytes()),
        ("hello/templates/welcome-hook.yaml", 0o644, welcome.as_bytes()),
        ("hello/templates/goodbye-hook.yaml", 0o644, goodbye.as_bytes()),
        ("hello/values.yaml", 0o644, values.as_bytes()),
        ("hello/templates/deployment.yaml", 0o644, deployment.as_bytes()),
    ])?;
    let layer = w.put_bytes(&tgz)?;
    let config = w.put_bytes(&serde_json::to_vec(&json!({
        "apiVersion": "v2", "name": "hello", "version": "0.1.0", "appVersion": "1.0",
        "description": "The airgap demo's chart", "type": "application",
    }))?)?;
    let manifest = w.put_manifest(
        OCI_MANIFEST_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": config.digest.to_string(), "size": config.size},
            "layers": [{"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "digest": layer.digest.to_string(), "size": layer.size}],
        }),
    )?;
    w.add("charts.airgap.example/stable/hello:0.1.0", Kind::Chart, manifest, &[]);
    Ok(())
}

/// The tool archive the sample spec names; its SHA-256 is written in the spec.
fn tool_archive() -> Result<Vec<u8>> {
    tar_gz(&[("hello-cli", 0o755, b"#!/bin/sh\necho hello from a carried tool\n")])
}

fn git(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2023-01-08T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2023-01-08T00:00:00Z")
        .output()
        .context("the demo's git repository needs the `git` command; install git and run again")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A bare repository with one commit, ready for git's dumb HTTP protocol, as a tar.
fn git_repository(work: &Path) -> Result<Vec<u8>> {
    let src = work.join("sample-config");
    std::fs::create_dir_all(&src)?;
    std::fs::write(
        src.join("application-default.properties"),
        "mosip.demo.greeting=hello from the carried config repository\n",
    )?;
    // What `manifests/sample/plan.yaml` applies from the repository.
    std::fs::create_dir_all(src.join("deploy"))?;
    std::fs::write(
        src.join("deploy/greeting.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  greeting: hello from the carried config repository\n",
    )?;
    git(&["init", "-q", "-b", "main"], &src)?;
    git(&["add", "."], &src)?;
    git(
        &[
            "-c",
            "user.name=airgap demo",
            "-c",
            "user.email=demo@airgap.example",
            "commit",
            "-q",
            "-m",
            "sample configuration",
        ],
        &src,
    )?;
    let bare = work.join("sample-config.git");
    git(&["clone", "-q", "--bare", src.to_str().expect("utf-8 path"), bare.to_str().expect("utf-8 path")], work)?;
    git(&["repack", "-a", "-d", "-q"], &bare)?;
    git(&["update-server-info"], &bare)?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(".", &bare)?;
    Ok(tar.into_inner()?)
}

/// Writes the upstream's content into an OCI layout at `dir`.
pub fn write(dir: &Path, scratch: &Path) -> Result<()> {
    let mut w = LayoutWriter::open(dir)?;
    images(&mut w)?;
    chart(&mut w)?;
    w.add_single_layer(TOOL_REFERENCE, Kind::File, TOOL_ARCHIVE, &tool_archive()?[..], None, None)?;
    let repo = git_repository(scratch)?;
    w.add_single_layer(
        "git.airgap.example/airgap/sample-config:main",
        Kind::Git,
        "sample-config.git",
        &repo[..],
        None,
        None,
    )?;
    w.finish()?;
    Ok(())
}
