//! Kubernetes versions against the version ranges charts declare: Chart.yaml's `kubeVersion`,
//! which helm checks, and Rancher's `catalog.cattle.io/kube-version` annotation, which only
//! Rancher's catalog reads. Both are Masterminds/semver v3 constraints, read here as helm 3.8
//! reads them: `||` alternatives of comma- or space-separated comparisons (`= != > < >= <= ~ ^`,
//! hyphen ranges `1.20 - 1.24`, `x`/`*` wildcards, missing parts), and a pre-release version (an
//! EKS `1.24.17-eks-…`) matches a comparison only when that comparison names a pre-release too
//! (the reason charts write `>=1.16.0-0`).

use std::cmp::Ordering;

use anyhow::{anyhow, bail, Result};
use semver::Version;

/// A version as the loose Masterminds parser reads it: `v1.24.17`, `1.24.17-eks-a59e1f0`, and
/// `1.24` as 1.24.0 (how a site file names a Kubernetes minor version).
pub fn parse_version(text: &str) -> Result<Version> {
    if text.split(['-', '+']).next().unwrap_or_default().contains(['x', 'X', '*']) {
        bail!("{text:?} is not a single version");
    }
    let c = Comparison::parse_version(text.trim()).ok_or_else(|| anyhow!("{text:?} is not a version"))?;
    Ok(c.version)
}

/// Whether `version` satisfies the constraint `range`.
pub fn satisfies(range: &str, version: &Version) -> Result<bool> {
    let mut any = false;
    for group in range.split("||") {
        let comparisons = comparisons(group).map_err(|e| anyhow!("version range {range:?}: {e}"))?;
        any |= comparisons.iter().all(|c| c.matches(version));
    }
    Ok(any)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

#[derive(Debug)]
struct Comparison {
    op: Op,
    version: Version,
    /// The minor (and so the patch) was missing or a wildcard.
    minor_dirty: bool,
    patch_dirty: bool,
}

/// One `||` group: comparisons separated by commas or spaces, an operator possibly followed by a
/// space (`>= 1.16.0-0 < 1.24.0-0`), or a hyphen range.
fn comparisons(group: &str) -> Result<Vec<Comparison>> {
    let words: Vec<&str> = group.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if words.get(i + 1) == Some(&"-") {
            let upper = words.get(i + 2).ok_or_else(|| anyhow!("{group:?}: a hyphen range without its end"))?;
            out.push(Comparison::parse(&format!(">={word}"))?);
            out.push(Comparison::parse(&format!("<={upper}"))?);
            i += 3;
            continue;
        }
        let is_op = word.chars().all(|c| "=!<>~^".contains(c));
        let text = if is_op {
            i += 1;
            format!("{word}{}", words.get(i).ok_or_else(|| anyhow!("{group:?}: {word} without a version"))?)
        } else {
            word.to_string()
        };
        out.push(Comparison::parse(&text)?);
        i += 1;
    }
    if out.is_empty() {
        bail!("an empty range");
    }
    Ok(out)
}

impl Comparison {
    fn parse(text: &str) -> Result<Comparison> {
        let split = text.find(|c: char| !"=!<>~^".contains(c)).unwrap_or(text.len());
        let (op, rest) = text.split_at(split);
        let op = match op {
            "" | "=" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" | "=>" => Op::Ge,
            "<=" | "=<" => Op::Le,
            "~" | "~>" => Op::Tilde,
            "^" => Op::Caret,
            other => bail!("{text:?}: unknown operator {other:?}"),
        };
        let c = Comparison::parse_version(rest).ok_or_else(|| anyhow!("{text:?}: {rest:?} is not a version"))?;
        // A wildcard major (`*`) admits anything, whatever the operator.
        let any = ["*", "x", "X"].contains(&rest.split('.').next().unwrap_or_default());
        Ok(Comparison { op: if any { Op::Ge } else { op }, ..c })
    }

    fn parse_version(text: &str) -> Option<Comparison> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(t, _)| t);
        let (numbers, pre) = match text.split_once('-') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        };
        let mut parts = numbers.split('.');
        let part = |p: Option<&str>| -> Option<Option<u64>> {
            match p {
                None | Some("x" | "X" | "*") => Some(None),
                Some(n) => n.parse().ok().map(Some),
            }
        };
        let major = part(parts.next())?;
        let minor = part(parts.next())?;
        let patch = part(parts.next())?;
        if parts.next().is_some() {
            return None;
        }
        let Some(major) = major else {
            // `*`: anything.
            return Some(Comparison {
                op: Op::Ge,
                version: Version::new(0, 0, 0),
                minor_dirty: true,
                patch_dirty: true,
            });
        };
        let mut version = Version::new(major, minor.unwrap_or(0), patch.unwrap_or(0));
        if let Some(pre) = pre {
            version.pre = semver::Prerelease::new(pre).ok()?;
        }
        Some(Comparison { op: Op::Eq, version, minor_dirty: minor.is_none(), patch_dirty: patch.is_none() })
    }

    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        if !v.pre.is_empty() && c.pre.is_empty() {
            return false;
        }
        let (major, minor) = (v.major.cmp(&c.major), v.minor.cmp(&c.minor));
        // `=1.24` is `1.24.x`, and `~` keeps the minor (the major when the minor is missing).
        let within = |loose: bool| match () {
            _ if self.minor_dirty => major == Ordering::Equal && v >= c,
            _ if self.patch_dirty || loose => major == Ordering::Equal && minor == Ordering::Equal && v >= c,
            _ => v == c,
        };
        match self.op {
            Op::Eq => within(false),
            Op::Tilde => within(true),
            Op::Ne => !within(false),
            Op::Gt if self.minor_dirty => major == Ordering::Greater,
            Op::Gt if self.patch_dirty => major == Ordering::Greater || (major.is_eq() && minor.is_gt()),
            Op::Gt => v > c,
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le if self.minor_dirty => major != Ordering::Greater,
            Op::Le if self.patch_dirty => major.is_lt() || (major.is_eq() && minor != Ordering::Greater),
            Op::Le => v <= c,
            Op::Caret if c.major > 0 || self.minor_dirty => major.is_eq() && v >= c,
            Op::Caret => major.is_eq() && minor.is_eq() && v >= c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(range: &str, version: &str) -> bool {
        satisfies(range, &parse_version(version).unwrap()).unwrap()
    }

    #[test]
    fn ranges_charts_write() {
        assert!(ok(">=1.16.0-0", "1.24.17"));
        assert!(ok(">= 1.16.0-0 < 1.24.0-0", "1.23.9") && !ok(">= 1.16.0-0 < 1.24.0-0", "1.24.0"));
        assert!(ok("< 1.25.0-0", "v1.24.17") && !ok("<1.25.0-0", "1.25.1"));
        assert!(ok(">=1.20.0-0", "1.24.17-eks-a59e1f0"), "a -0 bound admits pre-releases");
        assert!(ok(">=1.20.0-0", "v1.24.17-eks-x9"), "an x in the pre-release is no wildcard");
        assert!(!ok(">=1.20.0", "1.24.17-eks-a59e1f0"), "a bound without one does not");
        assert!(ok("1.22 - 1.24", "1.24.17") && !ok("1.22 - 1.23", "1.24.0"));
        assert!(ok("~1.24", "1.24.17") && !ok("~1.24.3", "1.25.0") && ok("1.24.x", "1.24.3"));
        assert!(ok("^1.20", "1.30.0") && !ok("^1.20", "2.0.0") && ok("*", "1.24.0"));
        assert!(ok("<1.20 || >=1.24", "1.24.0") && !ok("<1.20 || >=1.25", "1.24.0"));
        assert!(ok(">1.23", "1.24.0") && !ok(">1.24", "1.24.9") && ok("<=1.24", "1.24.9"));
        assert!(ok("!=1.24.0", "1.24.1") && !ok("!=1.24.0", "1.24.0"));
    }

    #[test]
    fn nonsense_is_an_error_naming_the_range() {
        let v = parse_version("1.24.0").unwrap();
        assert!(satisfies(">= banana", &v).unwrap_err().to_string().contains("banana"));
        assert!(satisfies("", &v).is_err());
        assert!(parse_version("1.x").is_err());
        assert_eq!(parse_version("1.24").unwrap(), parse_version("1.24.0").unwrap(), "a site's minor version");
    }
}
