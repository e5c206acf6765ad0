//! The check's findings for one cluster: one line per problem, the problems the site file accepts
//! (`check.accepted`, by object and field, each with its reason) marked as such, and the counts.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// How bad a [`Problem`] is: errors fail `install plan` and `apply`, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object cannot start (or cannot be applied): the check fails.
    Error,
    /// Something will not work, but the object starts.
    Warning,
}

/// One thing the check found that stops an object, or a feature of it, from working.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The plan's cluster the object lands in.
    pub cluster: String,
    /// The plan step that renders the object.
    pub step: String,
    /// The step's helm release, when its name is not the step's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped), or `chart NAME VERSION`.
    pub object: String,
    /// Where in the object (`volumes[2].configMap`), as `check.accepted` names it.
    pub field: String,
    /// What is wrong, for people (`"x" is created by no step`).
    pub message: String,
    /// Whether it fails the check.
    pub severity: Severity,
    /// Where the rule that found it is published (`manifests/runtime-apis.yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl Problem {
    /// `mosip/regclient: Deployment/regclient/regclient: volumes[2].configMap "x" is created by ...`
    pub fn line(&self) -> String {
        let release = self.release.as_ref().map(|r| format!(" (release {r})")).unwrap_or_default();
        format!("{}/{}{release}: {}: {} {}", self.cluster, self.step, self.object, self.field, self.message)
    }
}

/// A problem the site accepts: `{cluster (optional), object, field, reason}` in the site file's
/// `check.accepted`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The cluster it applies to; absent, every cluster.
    pub cluster: Option<String>,
    /// As [`Problem::object`] writes it.
    pub object: String,
    /// As [`Problem::field`] writes it.
    pub field: String,
    /// Why the site lives with it; printed beside the problem.
    pub reason: String,
}

impl Accepted {
    fn matches(&self, p: &Problem) -> bool {
        self.cluster.as_ref().is_none_or(|c| *c == p.cluster) && self.object == p.object && self.field == p.field
    }
}

/// One cluster's problems, split by what the site accepts.
pub struct Report {
    /// The cluster checked.
    pub cluster: String,
    /// Problems no accepted entry matches.
    pub problems: Vec<Problem>,
    /// Problems the site accepts, with the reason.
    pub accepted: Vec<(Problem, String)>,
    /// Entries of `check.accepted` for this cluster that match no problem (stale).
    pub unused: Vec<Accepted>,
}

impl Report {
    /// Splits `found` by the `accepted` entries that name this cluster (or none) and finds those left unused.
    pub fn new(cluster: &str, found: Vec<Problem>, accepted: &[Accepted]) -> Report {
        let mut report =
            Report { cluster: cluster.to_string(), problems: Vec::new(), accepted: Vec::new(), unused: Vec::new() };
        let mine: Vec<&Accepted> =
            accepted.iter().filter(|a| a.cluster.as_ref().is_none_or(|c| c == cluster)).collect();
        let mut used = vec![false; mine.len()];
        for p in found {
            match mine.iter().position(|a| a.matches(&p)) {
                Some(n) => {
                    used[n] = true;
                    report.accepted.push((p, mine[n].reason.clone()));
                }
                None => report.problems.push(p),
            }
        }
        report.unused = mine.iter().zip(used).filter(|(_, u)| !u).map(|(a, _)| (*a).clone()).collect();
        report
    }

    /// Unaccepted problems that fail the check; non-zero means the command fails.
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    /// Unaccepted warnings plus stale `check.accepted` entries.
    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors() + self.unused.len()
    }

    /// Every line people read, the count last.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.problems {
            match p.severity {
                Severity::Error => out.push(p.line()),
                Severity::Warning => out.push(format!("warning: {}", p.line())),
            }
        }
        for (p, reason) in &self.accepted {
            out.push(format!("accepted: {} (site file: {reason})", p.line()));
        }
        for a in &self.unused {
            out.push(format!(
                "warning: {}: check.accepted names {} {}, which has no problem (remove it from the site file)",
                self.cluster, a.object, a.field
            ));
        }
        out.push(format!(
            "cluster {}: check found {} problem(s), {} warning(s), {} accepted",
            self.cluster,
            self.errors(),
            self.warnings(),
            self.accepted.len()
        ));
        out
    }

    /// The same as JSON events: one object per problem (`check`: error, warning or accepted) and a
    /// last one with the counts (`check`: summary).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let event = |p: &Problem, check: &str, reason: Option<&str>| {
            let mut v = json!({"check": check, "line": p.line()});
            if let (Some(map), Ok(serde_json::Value::Object(fields))) = (v.as_object_mut(), serde_json::to_value(p)) {
                map.extend(fields);
                if let Some(r) = reason {
                    map.insert("reason".into(), r.into());
                }
            }
            v
        };
        let mut out: Vec<serde_json::Value> = self
            .problems
            .iter()
            .map(|p| event(p, if p.severity == Severity::Error { "error" } else { "warning" }, None))
            .collect();
        out.extend(self.accepted.iter().map(|(p, reason)| event(p, "accepted", Some(reason))));
        out.extend(
            self.unused.iter().map(|a| json!({"cluster": self.cluster, "check": "warning", "unused_accepted": a})),
        );
        out.push(json!({
            "cluster": self.cluster, "check": "summary",
            "errors": self.errors(), "warnings": self.warnings(), "accepted": self.accepted.len(),
        }));
        out
    }
}
