//! The MOSIP API test rig's report of one module, as it writes it (mosip-functional-tests,
//! `EmailableReport`): a TestNG emailable HTML page put in the bucket named by `s3-account`, under
//! a folder (the test level or the module, by version), named
//! `mosip-<env>-<module>-<time>-report_T-<n>_P-<n>_S-<n>_F-<n>[_I-<n>][_KI-<n>].html`. Its first
//! table sums up each TestNG test: a header row (`# Total`, `# Passed`, `# Skipped`, `# Failed`…)
//! then a row per test and, with several tests, a `Total` row. Older rigs (`CustomTestNGReporter`)
//! write the same table with `Module Name`, `# Total Case` and a `Total Execution Count` row.

use rusty_s3::actions::list_objects_v2::ListObjectsContent;
use serde::{Deserialize, Serialize};

/// What a module's report says, and which report said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub key: String,
    pub modified: String,
    pub total: u64,
    pub passed: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Summary {
    /// `45 of 48 passed, 3 failed, 0 skipped`.
    pub fn counts(&self) -> String {
        format!("{} of {} passed, {} failed, {} skipped", self.passed, self.total, self.failed, self.skipped)
    }

    /// Fewer tests pass, or more fail, than in `before`.
    pub fn worse_than(&self, before: &Summary) -> bool {
        self.failed > before.failed || self.passed < before.passed
    }
}

/// The newest report of `module` in a listing: an emailable report (its counts in its name, no
/// `ExtentReport-` copy) whose name holds `-<module>-`.
pub fn newest<'a>(objects: &'a [ListObjectsContent], module: &str) -> Option<&'a ListObjectsContent> {
    let wanted = format!("-{module}-");
    objects
        .iter()
        .filter(|o| {
            let name = o.key.rsplit('/').next().unwrap_or(&o.key);
            name.contains("report_T-")
                && name.ends_with(".html")
                && !name.starts_with("ExtentReport-")
                && name.contains(&wanted)
        })
        .max_by(|a, b| (&a.last_modified, &a.key).cmp(&(&b.last_modified, &b.key)))
}

/// The counts of the report's summary table, its per-test rows added up.
pub fn read(object: &ListObjectsContent, html: &str) -> Result<Summary, String> {
    let rows = rows(html);
    let header = rows
        .iter()
        .position(|r| r.iter().any(|c| column(c) == Some(Column::Passed)))
        .ok_or("it has no summary table (no \"# Passed\" column)")?;
    let columns: Vec<Option<Column>> = rows[header].iter().map(|c| column(c)).collect();
    let mut s = Summary {
        key: object.key.clone(),
        modified: object.last_modified.clone().unwrap_or_default(),
        total: 0,
        passed: 0,
        skipped: 0,
        failed: 0,
    };
    let mut tests = 0;
    for row in &rows[header + 1..] {
        let Some(first) = row.first() else { continue };
        if first.to_ascii_lowercase().starts_with("total") {
            continue;
        }
        let numbers: Vec<Option<u64>> = row.iter().map(|c| c.replace(',', "").parse().ok()).collect();
        // The table ends where its rows stop holding counts.
        if row.len() != columns.len() || columns.iter().zip(&numbers).any(|(c, n)| c.is_some() && n.is_none()) {
            break;
        }
        tests += 1;
        for (c, n) in columns.iter().zip(&numbers) {
            let n = n.unwrap_or(0);
            match c {
                Some(Column::Total) => s.total += n,
                Some(Column::Passed) => s.passed += n,
                Some(Column::Skipped) => s.skipped += n,
                Some(Column::Failed) => s.failed += n,
                None => {}
            }
        }
    }
    if tests == 0 {
        return Err("its summary table has no test row".into());
    }
    Ok(s)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Total,
    Passed,
    Skipped,
    Failed,
}

fn column(header: &str) -> Option<Column> {
    let h = header.trim_start_matches('#').trim().to_ascii_lowercase();
    match h.as_str() {
        "passed" => Some(Column::Passed),
        "skipped" => Some(Column::Skipped),
        "failed" => Some(Column::Failed),
        _ if h.starts_with("total") => Some(Column::Total),
        _ => None,
    }
}

/// The text of each cell (`td` or `th`) of each row of the page's first table, tags dropped.
fn rows(html: &str) -> Vec<Vec<String>> {
    let lower = html.to_ascii_lowercase();
    let end = lower.find("</table").unwrap_or(lower.len());
    let start = lower.find("<table").unwrap_or(0);
    let mut out = Vec::new();
    for row in lower[start..end].split("<tr").skip(1) {
        let offset = row.as_ptr() as usize - lower.as_ptr() as usize;
        let original = &html[offset..offset + row.len()];
        let mut cells = Vec::new();
        let mut rest = original;
        while let Some(open) = find_cell(rest) {
            let after = &rest[open..];
            let Some(gt) = after.find('>') else { break };
            let body = &after[gt + 1..];
            let close = body.to_ascii_lowercase().find("</t").unwrap_or(body.len());
            cells.push(text_of(&body[..close]));
            rest = &body[close..];
        }
        out.push(cells);
    }
    out
}

fn find_cell(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("<td"), lower.find("<th")].into_iter().flatten().min()
}

/// A cell's text: its tags dropped, `&nbsp;` a space, trimmed.
fn text_of(cell: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in cell.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, modified: &str) -> ListObjectsContent {
        ListObjectsContent {
            etag: None,
            key: key.into(),
            last_modified: Some(modified.into()),
            owner: None,
            size: None,
            storage_class: None,
        }
    }

    /// The summary table as `EmailableReport.writeSuiteSummary` prints it (two tests, so a Total row).
    const EMAILABLE: &str = "<!DOCTYPE html><html><head><title>TestNG Report</title></head><body><table>\
        <tr><th colspan=\"7\">masterdata-Commit Id is: 1a2b3c</th></tr>\
        <tr><th>Test</th><th># Total</th><th># Passed</th><th># Skipped</th><th># Failed</th><th># Ignored</th><th>Time (ms)</th></tr>\
        <tr><td><a href=\"#t0\">Create</a></td><td class=\"num\">1,010</td><td class=\"num green-bg\">1,000</td><td class=\"num\">0</td><td class=\"num attn\">10</td><td class=\"num\">0</td><td class=\"num\">5,120</td></tr>\
        <tr><td><a href=\"#t1\">Search</a></td><td class=\"num\">4</td><td class=\"num green-bg\">3</td><td class=\"num orange-bg\">1</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">12.5</td></tr>\
        <tr><th>Total</th><th class=\"num\">1,014</th><th class=\"num\">1,003</th><th class=\"num\">1</th><th class=\"num\">10</th><th class=\"num\">0</th><th class=\"num\">5,132.5</th></tr>\
        </table><table id='summary'><tr><th>Method</th></tr></table></body></html>";

    #[test]
    fn the_summary_table_is_added_up_without_its_total_row() {
        let o = listed("smokeAndRegression/mosip-api-internal.x-masterdata-1-report_T-1014_P-1003_S-1_F-10.html", "t");
        let s = read(&o, EMAILABLE).unwrap();
        assert_eq!((s.total, s.passed, s.skipped, s.failed), (1014, 1003, 1, 10));
        assert_eq!(s.counts(), "1003 of 1014 passed, 10 failed, 1 skipped");
    }

    #[test]
    fn an_older_rig_s_table_reads_the_same() {
        let html = "<table><thead><tr><th>Module Name</th><th># Total Case</th><th># Passed</th><th># Skipped</th><th># Failed</th></tr></thead>\
            <tr><td>prereg</td><td>7</td><td bgcolor=#3cb353>6</td><td bgcolor=#EEE8AA>0</td><td bgcolor=#FF4500>1</td></tr>\
            <tr><td>Total Execution Count</td><td>7</td><td bgcolor=#3cb353>6</td><td>0</td><td>1</td><tr></table>";
        let s = read(&listed("k", "t"), html).unwrap();
        assert_eq!((s.total, s.passed, s.skipped, s.failed), (7, 6, 0, 1));
    }

    #[test]
    fn a_page_without_the_table_is_named_so() {
        assert!(read(&listed("k", "t"), "<html><body>Whitelabel Error Page</body></html>")
            .unwrap_err()
            .contains("no summary table"));
    }

    #[test]
    fn the_newest_emailable_report_of_the_module_is_taken() {
        let objects = [
            listed("a/mosip-env-masterdata-1-report_T-2_P-2_S-0_F-0.html", "2026-12-01T03:00:00.000Z"),
            listed("a/mosip-env-masterdata-2-report_T-2_P-1_S-0_F-1.html", "2026-12-02T03:00:00.000Z"),
            listed("a/ExtentReport-mosip-env-masterdata-3-report_T-2_P-1_S-0_F-1.html", "2026-12-03T03:00:00.000Z"),
            listed("a/mosip-env-idrepo-4-report_T-2_P-1_S-0_F-1.html", "2026-12-04T03:00:00.000Z"),
        ];
        assert_eq!(newest(&objects, "masterdata").unwrap().key, objects[1].key);
        assert!(newest(&objects, "prereg").is_none());
    }
}
