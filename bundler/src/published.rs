//! Checksums files that projects publish beside their downloads (goreleaser's
//! `<project>_checksums.txt`, Istio's `<archive>.sha256`): a spec entry names one with
//! `sha256_from`, `bundle lock` reads the download's line from it, and the lock keeps the
//! checksum, the file's URL and the file's own digest.

use anyhow::{anyhow, bail, Context, Result};
use bundles::artifact::Published;
use bundles::digest::{parse_sha256, sha256_digest, sha256_hex};
use bundles::naming::url_file_name;

use crate::http::{get_bytes, Mirrors};
use crate::spec::is_sha256_hex;

/// A release's checksums file lists a few hundred downloads at most.
const MAX_CHECKSUMS_FILE: u64 = 4 << 20;

/// Reads the published SHA-256 of what `url` serves from the checksums file at `from`.
pub async fn read(http: &reqwest::Client, mirrors: &Mirrors, url: &str, from: &str) -> Result<Published> {
    let raw = get_bytes(http, &mirrors.map_url(from), MAX_CHECKSUMS_FILE)
        .await
        .with_context(|| format!("reading the checksums file {from} for {url}"))?;
    let text = std::str::from_utf8(&raw).map_err(|_| anyhow!("the checksums file {from} is not text"))?;
    Ok(Published {
        digest: parse_sha256(&format!("sha256:{}", find(text, url, from)?))?,
        sha256_from: from.to_string(),
        sha256_from_digest: sha256_digest(&sha256_hex(&raw)),
    })
}

/// The hex SHA-256 that `text`, the checksums file at `from`, gives the download of `url`: the
/// coreutils line (`<hex>  <name>`, or `<hex> *<name>`) whose name is the last segment of `url`,
/// with or without a directory before it; or the whole file when it holds the bare hex alone.
pub fn find(text: &str, url: &str, from: &str) -> Result<String> {
    let bare = text.trim();
    if is_sha256_hex(bare) {
        return Ok(bare.to_ascii_lowercase());
    }
    let name = url_file_name(url);
    let lines = bundles::checksums::parse(text, from)?;
    let mut found: Vec<String> = lines
        .into_iter()
        .filter(|(listed, _)| listed == name || listed.ends_with(&format!("/{name}")))
        .map(|(_, hex)| hex)
        .collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [hex] => Ok(hex.clone()),
        [] => bail!("the checksums file {from} lists no '{name}', the file {url} downloads"),
        _ => bail!(
            "the checksums file {from} lists '{name}' (the file {url} downloads) with {} different checksums",
            found.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://github.com/weaveworks/eksctl/releases/download/v0.121.0/eksctl_Linux_arm64.tar.gz";
    const FROM: &str = "https://github.com/weaveworks/eksctl/releases/download/v0.121.0/eksctl_checksums.txt";

    fn hex(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn the_line_named_by_the_url_is_taken() {
        let text = format!(
            "{}  eksctl_Linux_amd64.tar.gz\n{} *eksctl_Linux_arm64.tar.gz\n{}  eksctl_Darwin_arm64.tar.gz\n",
            hex('a'),
            hex('b'),
            hex('c')
        );
        assert_eq!(find(&text, URL, FROM).unwrap(), hex('b'));
        assert_eq!(find(&format!("{}  dist/eksctl_Linux_arm64.tar.gz\n", hex('d')), URL, FROM).unwrap(), hex('d'));
    }

    #[test]
    fn a_bare_checksum_is_the_download_s() {
        assert_eq!(find(&format!("{}\n", hex('E')), URL, FROM).unwrap(), hex('e'));
    }

    #[test]
    fn a_missing_or_ambiguous_line_names_both_urls() {
        let other = format!("{}  eksctl_Linux_amd64.tar.gz\n", hex('a'));
        let twice = format!("{}  eksctl_Linux_arm64.tar.gz\n{}  old/eksctl_Linux_arm64.tar.gz\n", hex('a'), hex('b'));
        for text in [other, twice] {
            let err = find(&text, URL, FROM).unwrap_err().to_string();
            assert!(err.contains(FROM) && err.contains(URL) && err.contains("'eksctl_Linux_arm64.tar.gz'"), "{err}");
        }
        let same_twice = format!("{}  eksctl_Linux_arm64.tar.gz\n{0}  ./eksctl_Linux_arm64.tar.gz\n", hex('a'));
        assert_eq!(find(&same_twice, URL, FROM).unwrap(), hex('a'));
    }

    proptest::proptest! {
        #[test]
        fn any_checksums_file_or_url_gives_a_checksum_or_an_error(text in "(.{0,80}\n?){0,5}", url in ".{0,60}") {
            if let Ok(hex) = find(&text, &url, FROM) {
                proptest::prop_assert!(is_sha256_hex(&hex) && hex == hex.to_ascii_lowercase());
            }
        }
    }

    #[test]
    fn a_malformed_file_is_named_with_its_line() {
        let err = find(&format!("{}  x\nnot a checksum line\n", hex('a')), URL, FROM).unwrap_err().to_string();
        assert!(err.contains(&format!("{FROM} line 2")), "{err}");
    }
}
