//! One check's result: what was checked, on which cluster and for which step, and whether it
//! passed, failed (with the reason) or was skipped (with why). Every other part of `verify`
//! produces these; the report prints them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Failed,
    Skipped,
    Ok,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub cluster: String,
    /// The plan step whose objects the check is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What kind of check: `cluster`, `apiservice`, `step`, `objects`, `workload`, `pods`, `volume`, `service`, `webhook`,
    /// `references`, `route`, `health`, `certificate`, `keycloak`, `config`, `mirror`, `rancher`,
    /// `testrig`.
    pub kind: &'static str,
    /// The object or thing checked, e.g. `Deployment hello/hello-hello`.
    pub subject: String,
    pub status: Status,
    /// What was seen when it passed; the reason when it failed; why when it was skipped.
    pub detail: String,
}

/// Builds the checks of one cluster (and step), so each part says only what it found.
#[derive(Debug, Clone)]
pub struct Checks {
    cluster: String,
    step: Option<String>,
    pub found: Vec<Check>,
}

impl Checks {
    pub fn new(cluster: &str) -> Checks {
        Checks { cluster: cluster.to_string(), step: None, found: Vec::new() }
    }

    /// The step that the following checks belong to (None: the cluster as a whole).
    pub fn at(&mut self, step: Option<&str>) {
        self.step = step.map(str::to_string);
    }

    pub fn add(&mut self, kind: &'static str, subject: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.found.push(Check {
            cluster: self.cluster.clone(),
            step: self.step.clone(),
            kind,
            subject: subject.into(),
            status,
            detail: detail.into(),
        });
    }

    pub fn ok(&mut self, kind: &'static str, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(kind, subject, Status::Ok, detail);
    }

    pub fn failed(&mut self, kind: &'static str, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(kind, subject, Status::Failed, detail);
    }

    pub fn skipped(&mut self, kind: &'static str, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(kind, subject, Status::Skipped, detail);
    }

    /// Ok with `detail`, or failed with the reason.
    pub fn outcome(&mut self, kind: &'static str, subject: impl Into<String>, result: Result<String, String>) {
        match result {
            Ok(detail) => self.ok(kind, subject, detail),
            Err(reason) => self.failed(kind, subject, reason),
        }
    }
}
