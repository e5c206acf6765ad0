//! What `verify` found, for people and machines: a line per check on the terminal, one JSON
//! document, and a report folder with `verify.json` and `verify.html`. The page is one file with
//! no external asset and no script (it is opened on air-gapped desktops): both clusters at a
//! glance, then every problem, then every check of each cluster. Everything shown comes from the
//! cluster (object names, messages), so every piece of text is escaped.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::check::{Check, Status};

#[derive(Serialize)]
pub struct Report {
    pub site: String,
    pub plan: String,
    pub generated_at: String,
    pub ok: bool,
    pub clusters: Vec<ClusterReport>,
}

#[derive(Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub checks: Vec<Check>,
}

impl ClusterReport {
    pub fn new(cluster: &str, checks: Vec<Check>) -> ClusterReport {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        ClusterReport {
            cluster: cluster.to_string(),
            ok: count(Status::Ok),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
            checks,
        }
    }
}

impl Report {
    pub fn new(site: &Path, plan: &Path, clusters: Vec<ClusterReport>) -> Report {
        Report {
            site: site.display().to_string(),
            plan: plan.display().to_string(),
            generated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ok: clusters.iter().all(|c| c.failed == 0),
            clusters,
        }
    }

    pub fn failed(&self) -> usize {
        self.clusters.iter().map(|c| c.failed).sum()
    }

    /// One line per check, then a count per cluster.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.clusters {
            for check in &c.checks {
                let _ = writeln!(out, "{}", line(check));
            }
            let _ = writeln!(out, "cluster {}: {} ok, {} failed, {} skipped", c.cluster, c.ok, c.failed, c.skipped);
        }
        out
    }

    /// `verify.json` and `verify.html` in `dir`, each written whole or not at all.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&dir.join("verify.json"), serde_json::to_string_pretty(self)?.as_bytes())?;
        write_atomic(&dir.join("verify.html"), self.html().as_bytes())
    }

    pub fn html(&self) -> String {
        let mut h = String::new();
        let verdict = if self.ok { "every check passed" } else { "problems found" };
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <title>airgap install verify: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>airgap install verify: <span class=\"{}\">{}</span></h1>\n\
             <p class=\"meta\">Generated {} from site file <code>{}</code> and plan <code>{}</code>.</p>\n",
            escape(verdict),
            if self.ok { "ok" } else { "failed" },
            escape(verdict),
            escape(&self.generated_at),
            escape(&self.site),
            escape(&self.plan),
        );
        h.push_str("<h2>At a glance</h2>\n<table class=\"glance\">\n<tr><th>cluster</th><th>failed</th><th>ok</th><th>skipped</th></tr>\n");
        for c in &self.clusters {
            let _ = writeln!(
                h,
                "<tr class=\"{}\"><td><a href=\"#cluster-{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if c.failed > 0 { "failed" } else { "ok" },
                escape(&anchor(&c.cluster)),
                escape(&c.cluster),
                c.failed,
                c.ok,
                c.skipped
            );
        }
        h.push_str("</table>\n<h2>Problems</h2>\n");
        let problems: Vec<&Check> =
            self.clusters.iter().flat_map(|c| c.checks.iter()).filter(|c| c.status == Status::Failed).collect();
        if problems.is_empty() {
            h.push_str("<p class=\"ok\">No check failed.</p>\n");
        } else {
            table(&mut h, &problems, true);
        }
        for c in &self.clusters {
            let _ = writeln!(
                h,
                "<h2 id=\"cluster-{}\">Cluster {}</h2>\n<p>{} failed, {} ok, {} skipped.</p>",
                escape(&anchor(&c.cluster)),
                escape(&c.cluster),
                c.failed,
                c.ok,
                c.skipped
            );
            // Problems first here too, then what was skipped, then what passed.
            let mut checks: Vec<&Check> = c.checks.iter().collect();
            checks.sort_by_key(|c| c.status);
            let _ = writeln!(
                h,
                "<details{}>\n<summary>every check of {}</summary>",
                if c.failed > 0 { " open" } else { "" },
                escape(&c.cluster)
            );
            table(&mut h, &checks, false);
            h.push_str("</details>\n");
        }
        h.push_str("</body>\n</html>\n");
        h
    }
}

fn line(c: &Check) -> String {
    let step = c.step.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
    // One line per check, whatever a tool's message holds.
    let detail: Vec<&str> = c.detail.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let text = format!("{:<7} {}{step} {}: {}: {}", c.status.word(), c.cluster, c.kind, c.subject, detail.join(" | "));
    bundles::text::printable(&text).into_owned()
}

fn table(h: &mut String, checks: &[&Check], with_cluster: bool) {
    h.push_str("<table class=\"checks\">\n<tr>");
    if with_cluster {
        h.push_str("<th>cluster</th>");
    }
    h.push_str("<th>status</th><th>step</th><th>check</th><th>what</th><th>detail</th></tr>\n");
    for c in checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        let _ = write!(h, "<tr class=\"{status}\">");
        if with_cluster {
            let _ = write!(h, "<td>{}</td>", escape(&c.cluster));
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(c.status.word()),
            escape(c.step.as_deref().unwrap_or("")),
            escape(c.kind),
            escape(&c.subject),
            escape(&c.detail)
        );
    }
    h.push_str("</table>\n");
}

/// Text made safe for HTML element content and attribute values; control characters (a terminal
/// escape in a pod's message) are shown as escapes, as on the terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in bundles::text::printable(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A cluster name as a fragment identifier.
fn anchor(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
h1 .ok{color:#1a7f37}h1 .failed{color:#b42318}\
.meta{color:#555}code{background:#f3f3f3;padding:0 .2em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#eee}td{white-space:pre-wrap;word-break:break-word}\
tr.failed td{background:#fde8e7}tr.skipped td{background:#f6f6f6;color:#555}\
table.glance tr.ok td{background:#e7f6ec}summary{cursor:pointer;margin:.5em 0}";

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Status, subject: &str) -> Check {
        Check {
            cluster: "mosip".into(),
            step: Some("kernel".into()),
            kind: "workload",
            subject: subject.into(),
            status,
            detail: "why <not>".into(),
        }
    }

    #[test]
    fn hostile_names_are_escaped_and_problems_come_first() {
        let hostile = "Deployment x/<script>alert(1)</script>\"'&\u{1b}[31m";
        let checks = vec![check(Status::Ok, "Deployment x/fine"), check(Status::Failed, hostile)];
        let report =
            Report::new(Path::new("site.yaml"), Path::new("plan.yaml"), vec![ClusterReport::new("mosip", checks)]);
        let html = report.html();
        assert!(!html.contains("<script>") && !html.contains('\u{1b}'), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\\u{1b}[31m"), "{html}");
        let problems = html.find("<h2>Problems</h2>").unwrap();
        let cluster = html.find("id=\"cluster-mosip\"").unwrap();
        assert!(problems < cluster && html[problems..cluster].contains("alert(1)"));
        assert!(!html.contains("src=") && !html.contains("http://") && !html.contains("https://"), "{html}");
        assert!(!report.ok && report.failed() == 1);
        assert!(report.text().lines().any(|l| l.starts_with("FAILED  mosip [kernel] workload: Deployment x/<script>")));
    }
}
