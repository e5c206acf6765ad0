//! Image lists that projects publish with a release (Rancher's `rancher-images.txt`, which its
//! air-gap guide feeds to `rancher-save-images.sh`): one reference a line. A spec names the list
//! instead of copying hundreds of lines, and the lock pins every image it names by digest.

use anyhow::{anyhow, bail, Context, Result};
use bundles::digest::{sha256_hex, Digest};

use crate::http::{get_bytes, Mirrors};
use crate::images;
use crate::spec::ImageListEntry;

/// Rancher's list of a release is about 60 KiB.
const MAX_IMAGE_LIST: u64 = 4 << 20;

/// One image the list names, canonical (`docker.io/rancher/shell:v0.1.18`), with where it was
/// and the digest the line pins, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Listed {
    pub line: usize,
    pub reference: String,
    pub pin: Option<Digest>,
}

/// Downloads the list (checked against its `sha256` when the spec gives one) and reads it.
pub async fn fetch(http: &reqwest::Client, mirrors: &Mirrors, entry: &ImageListEntry) -> Result<Vec<Listed>> {
    let raw = get_bytes(http, &mirrors.map_url(&entry.url), MAX_IMAGE_LIST).await?;
    if let Some(want) = &entry.sha256 {
        let got = sha256_hex(&raw);
        if !got.eq_ignore_ascii_case(want) {
            bail!("the list's SHA-256 is {got}, not {want} as the spec says");
        }
    }
    let text = std::str::from_utf8(&raw).map_err(|_| anyhow!("the list is not text"))?;
    parse(text, &entry.exclude)
}

/// The references of `text`: blank lines and `#` comments skipped, lines starting with an
/// `exclude` prefix left out; a line that is not a reference fails with its number.
pub fn parse(text: &str, exclude: &[String]) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() || exclude.iter().any(|e| entry.starts_with(e.as_str())) {
            continue;
        }
        let where_ = || format!("line {line_no}: '{entry}'");
        let (r, reference) = images::canonical(entry).with_context(where_)?;
        let pin = images::pinned(&r).with_context(where_)?;
        out.push(Listed { line: line_no, reference, pin });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_canonical_references_without_comments_or_excluded_prefixes() {
        let zeros = bundles::digest::sha256_digest(&"0".repeat(64));
        let text = format!(
            "# Rancher v2.6.9\nrancher/shell:v0.1.18\n\nbusybox  # bare\nrancher/windows-agent:v1\nquay.io/x/y@{zeros}\n\
             quay.io/x/z:1@{zeros}\n"
        );
        let got = parse(&text, &["rancher/windows-".to_string()]).unwrap();
        let want = [
            (2, "docker.io/rancher/shell:v0.1.18".to_string(), None),
            (4, "docker.io/library/busybox:latest".to_string(), None),
            (6, format!("quay.io/x/y@{zeros}"), Some(zeros.clone())),
            (7, "quay.io/x/z:1".to_string(), Some(zeros.clone())),
        ];
        assert_eq!(got, want.map(|(line, reference, pin)| Listed { line, reference, pin }));
    }

    proptest::proptest! {
        /// Whatever a list holds, it is read or refused by line; every reference read is
        /// canonical (reading it again gives itself).
        #[test]
        fn any_list_is_read_or_refused(text in "([^\n]{0,60}\n){0,8}") {
            if let Ok(listed) = parse(&text, &[]) {
                for l in listed {
                    proptest::prop_assert_eq!(images::canonical(&l.reference).unwrap().1, l.reference);
                }
            }
        }
    }

    #[test]
    fn a_line_that_is_no_reference_is_named_by_its_number() {
        let err = parse("rancher/shell:v1\nNot An Image!\n", &[]).unwrap_err();
        assert!(format!("{err:#}").starts_with("line 2: 'Not An Image!'"), "{err:#}");
    }
}
