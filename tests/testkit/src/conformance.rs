use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;
use tempfile::TempDir;

use crate::tools::tool;

/// The registry that the OCI distribution-spec conformance suite runs against.
pub struct ConformanceTarget<'a> {
    /// `host:port`.
    pub registry: &'a str,
    /// `None` for plain HTTP; otherwise the CA (PEM) that signed the registry's certificate.
    pub ca_pem: Option<&'a Path>,
    /// User and password for a registry that requires them; the suite pushes and deletes.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// What the suite wrote to `results.yaml`, plus its printed report.
pub struct ConformanceReport {
    /// Status of each API (`Pass`, `FAIL`, `Skip`, `Disabled`, `Error`) keyed by the suite's name
    /// for it, e.g. `Blob chunked`, `Manifest put by tag`, `Referrers`.
    pub apis: BTreeMap<String, String>,
    /// Status of each kind of test data (image, index, artifact, ...).
    pub data: BTreeMap<String, String>,
    /// Whether the suite exited 0 (nothing failed).
    pub passed: bool,
    /// The suite's printed report.
    pub output: String,
    results: TempDir,
}

impl ConformanceReport {
    /// The directory holding `results.yaml`, `junit.xml` and `report.html`.
    pub fn results_dir(&self) -> PathBuf {
        self.results.path().join("results")
    }

    /// One API's status by the suite's name for it; `None` when the suite ran no such test.
    pub fn api(&self, name: &str) -> Option<&str> {
        self.apis.get(name).map(String::as_str)
    }
}

#[derive(Deserialize)]
struct ResultsYaml {
    apis: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

/// Runs the distribution-spec conformance suite (`oci-conformance`, testing spec version 1.1)
/// with every API enabled. `env` adds or overrides the suite's `OCI_*` settings.
pub fn run_conformance(target: &ConformanceTarget, env: &[(&str, &str)]) -> Result<ConformanceReport> {
    let results = tempfile::Builder::new().prefix("testkit-conformance-").tempdir()?;
    let mut cmd = Command::new(tool("oci-conformance"));
    // The suite reads ./oci-conformance.yaml when present: run it where there is none.
    cmd.current_dir(results.path())
        .env("OCI_VERSION", "1.1")
        .env("OCI_REGISTRY", target.registry)
        .env("OCI_REPO1", "conformance/repo1")
        .env("OCI_REPO2", "conformance/repo2")
        .env("OCI_RESULTS_DIR", results.path().join("results"))
        .env("OCI_LOG", "warn");
    match target.ca_pem {
        Some(ca) => cmd.env("OCI_TLS", "enabled").env("SSL_CERT_FILE", ca),
        None => cmd.env("OCI_TLS", "disabled"),
    };
    if let Some((user, password)) = target.credentials {
        cmd.env("OCI_USERNAME", user).env("OCI_PASSWORD", password);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("cannot run oci-conformance")?;
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let yaml = results.path().join("results/results.yaml");
    let text =
        fs::read_to_string(&yaml).with_context(|| format!("oci-conformance wrote no {}:\n{output}", yaml.display()))?;
    let parsed: ResultsYaml = serde_yaml_ng::from_str(&text).context("results.yaml")?;
    Ok(ConformanceReport { apis: parsed.apis, data: parsed.data, passed: out.status.success(), output, results })
}
