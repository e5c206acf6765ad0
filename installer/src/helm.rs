//! The bundled helm, run with its own empty configuration (no repositories, no cache outside the
//! work folder) so nothing a user configured can send it to the internet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::postrender;

pub struct Helm {
    pub binary: PathBuf,
    /// HELM_{CACHE,CONFIG,DATA}_HOME live here.
    pub home: PathBuf,
}

/// A release as the plan gives it, with everything resolved to local files.
pub struct ReleaseInput<'a> {
    pub release: &'a str,
    pub namespace: &'a str,
    pub chart: &'a Path,
    pub values: &'a [PathBuf],
    pub set: &'a BTreeMap<String, String>,
    /// `--set-file` values: key → a file holding the value, taken as one string (no comma or
    /// brace in it is parsed), for values read from the cluster.
    pub set_files: &'a BTreeMap<String, PathBuf>,
}

impl Helm {
    fn command(&self, kubeconfig: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (var, sub) in [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")] {
            cmd.env(var, self.home.join(sub));
        }
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        cmd
    }

    fn args(cmd: &mut Command, r: &ReleaseInput<'_>) {
        cmd.arg(r.release).arg(r.chart).args(["--namespace", r.namespace]);
        for v in r.values {
            cmd.arg("--values").arg(v);
        }
        for (k, v) in r.set {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (k, file) in r.set_files {
            cmd.arg("--set-file").arg(format!("{k}={}", file.display()));
        }
    }

    fn run(mut cmd: Command, what: &str) -> Result<String> {
        let out = cmd.output().with_context(|| format!("cannot run helm for {what}"))?;
        if !out.status.success() {
            bail!("helm {what}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `helm template`, as an install or (`is_upgrade`) an upgrade: test hooks are left out (a
    /// site never runs `helm test`).
    /// `api_versions` are what the cluster serves (`group/version` and `group/version/Kind`), which
    /// charts test with `.Capabilities.APIVersions.Has`; helm adds them to its own defaults.
    pub fn template(
        &self,
        r: &ReleaseInput<'_>,
        kube_version: Option<&str>,
        api_versions: &[String],
        is_upgrade: bool,
    ) -> Result<String> {
        let mut cmd = self.command(None);
        cmd.args(["template", "--skip-tests", "--include-crds"]);
        if is_upgrade {
            cmd.arg("--is-upgrade");
        }
        if let Some(v) = kube_version {
            cmd.args(["--kube-version", v]);
        }
        for v in api_versions {
            cmd.args(["--api-versions", v]);
        }
        Helm::args(&mut cmd, r);
        Helm::run(cmd, &format!("template {}", r.release))
    }

    /// `helm upgrade --install` with the airgap binary as post-renderer and without the chart's
    /// hooks, which helm would not post-render: the installer runs them (see `hooks`).
    pub fn upgrade_install(&self, r: &ReleaseInput<'_>, kubeconfig: &Path, post_render: &Path) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the airgap binary for helm's post-renderer")?;
        let mut cmd = self.command(Some(kubeconfig));
        cmd.args(["upgrade", "--install", "--no-hooks"])
            .arg("--post-renderer")
            .arg(exe)
            .env(postrender::ENV, post_render);
        Helm::args(&mut cmd, r);
        Helm::run(cmd, &format!("upgrade --install {}", r.release)).map(drop)
    }

    /// The release's status (`deployed`, `pending-install`, …), None when there is none.
    pub fn status(&self, release: &str, namespace: &str, kubeconfig: &Path) -> Result<Option<String>> {
        let mut cmd = self.command(Some(kubeconfig));
        cmd.args(["status", release, "--namespace", namespace, "--output", "json"]);
        let out = cmd.output().context("cannot run helm status")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("not found") {
                return Ok(None);
            }
            bail!("helm status {release}: {}", err.trim());
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("helm status output")?;
        Ok(v["info"]["status"].as_str().map(str::to_string))
    }

    /// `helm uninstall` without hooks: the installer runs them (see `hooks`).
    pub fn uninstall(&self, release: &str, namespace: &str, kubeconfig: &Path) -> Result<()> {
        let mut cmd = self.command(Some(kubeconfig));
        cmd.args(["uninstall", release, "--namespace", namespace, "--wait", "--no-hooks"]);
        Helm::run(cmd, &format!("uninstall {release}")).map(drop)
    }

    /// The hooks helm keeps with the installed release, as YAML.
    pub fn release_hooks(&self, release: &str, namespace: &str, kubeconfig: &Path) -> Result<String> {
        let mut cmd = self.command(Some(kubeconfig));
        cmd.args(["get", "hooks", release, "--namespace", namespace]);
        Helm::run(cmd, &format!("get hooks {release}"))
    }

    pub fn rollback(&self, release: &str, namespace: &str, kubeconfig: &Path) -> Result<()> {
        let mut cmd = self.command(Some(kubeconfig));
        // Without hooks, which helm would not post-render: this only undoes a half-done upgrade.
        cmd.args(["rollback", release, "--namespace", namespace, "--no-hooks"]);
        Helm::run(cmd, &format!("rollback {release}")).map(drop)
    }

    /// An install that was killed half way leaves the release pending, and helm then refuses
    /// every operation on it: undo the half-done operation so the step can run again.
    pub fn recover(&self, release: &str, namespace: &str, kubeconfig: &Path) -> Result<()> {
        match self.status(release, namespace, kubeconfig)?.as_deref() {
            Some("pending-install") => self.uninstall(release, namespace, kubeconfig),
            Some("pending-upgrade" | "pending-rollback") => self.rollback(release, namespace, kubeconfig),
            _ => Ok(()),
        }
    }
}
