//! The references charts, files and git repositories get in a bundle. The bundler names what it
//! stores by these rules and the installer finds what a plan names by them, so both call here.
//!
//! - chart: `<repo host>/<repo path>/<name>:<version>`, `+` (not allowed in tags) as `_`, as Helm
//!   does;
//! - file: `files.airgap.local/<name>:<version>`, the name lowercased, `+` as `_`, and
//!   `-<os>-<arch>` appended when the entry names a platform (`files.airgap.local/helm:v3.8.2-linux-amd64`);
//! - git: `<host>/<path>:<ref>` from the URL (user, `.git` and case dropped), the ref made tag-safe.

use crate::error::{Error, Result};

/// The registry host of file artifacts, which no image ever has.
pub const FILES_HOST: &str = "files.airgap.local";

/// The longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

/// A chart's reference, from its repository URL (`https://`, `oci://`), name and version.
pub fn chart_reference(repo: &str, name: &str, version: &str) -> String {
    format!("{}/{name}:{}", host_path(repo), version.replace('+', "_"))
}

/// What a bundle spec says of a file entry that its name depends on.
#[derive(Debug, Clone, Copy)]
pub struct FileEntry<'a> {
    /// Where the file is downloaded from.
    pub url: &'a str,
    /// The name to carry it under, when not the one its URL (or `extract`) gives.
    pub name: Option<&'a str>,
    /// The member of a `.tar.gz` download carried instead of the archive.
    pub extract: Option<&'a str>,
    /// The version the spec gives.
    pub version: &'a str,
    /// `os/arch`.
    pub platform: Option<&'a str>,
}

impl FileEntry<'_> {
    /// The file's name when written out (its layer's title): `name`, else the last segment of
    /// `extract`, else the file name the URL downloads.
    pub fn title(&self) -> String {
        match (self.name, self.extract) {
            (Some(n), _) => n,
            (None, Some(member)) => last_segment(member),
            (None, None) => url_file_name(self.url),
        }
        .to_string()
    }

    /// `files.airgap.local/<name>:<tag>`; an error when the title or version cannot be one.
    pub fn reference(&self) -> Result<String> {
        let name = self.title().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(tag_safe) {
            return Err(self.error(format!(
                "'{name}' cannot be a repository name; set name: to lowercase letters, digits, '.', '_' or '-'"
            )));
        }
        let mut tag = self.version.replace('+', "_");
        if let Some(p) = self.platform {
            tag += &format!("-{}", p.replace('/', "-"));
        }
        if tag.is_empty() || tag.len() > MAX_TAG || !tag.bytes().all(tag_safe) {
            return Err(self.error(format!("version '{}' cannot be a tag", self.version)));
        }
        Ok(format!("{FILES_HOST}/{name}:{tag}"))
    }

    fn error(&self, message: String) -> Error {
        Error::Name { what: format!("files: {}", self.url), message }
    }
}

/// A git repository's reference, from its URL and the branch, tag or commit carried.
pub fn git_reference(url: &str, git_ref: &str) -> Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = format!("{host}/{path}");
    let path = path.trim_end_matches('/').trim_end_matches(".git").to_ascii_lowercase();
    if path.is_empty() || !path.contains('/') {
        return Err(Error::Name {
            what: format!("git: {url}"),
            message: "cannot name a repository from this URL".into(),
        });
    }
    let tag: String =
        git_ref.chars().map(|c| if c.is_ascii() && tag_safe(c as u8) { c } else { '-' }).take(MAX_TAG).collect();
    Ok(format!("{path}:{tag}"))
}

/// The file name a URL downloads: its last path segment, without query or fragment.
pub fn url_file_name(url: &str) -> &str {
    last_segment(url.split(['?', '#']).next().unwrap_or_default())
}

fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

fn host_path(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/')
}

fn tag_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(url: &'a str, version: &'a str) -> FileEntry<'a> {
        FileEntry { url, name: None, extract: None, version, platform: None }
    }

    #[test]
    fn charts_keep_the_repository_path_and_make_the_version_a_tag() {
        let r = chart_reference("https://mosip.github.io/mosip-helm/", "config-server", "12.0.1+B2");
        assert_eq!(r, "mosip.github.io/mosip-helm/config-server:12.0.1_B2");
        assert_eq!(chart_reference("oci://ghcr.io/x/charts", "y", "1"), "ghcr.io/x/charts/y:1");
    }

    #[test]
    fn files_are_named_by_title_version_and_platform() {
        let f = FileEntry { platform: Some("linux/amd64"), ..file("https://h/dl/Helm.tar.gz?raw=1#x", "v3.8.2+b1") };
        assert_eq!(f.title(), "Helm.tar.gz");
        assert_eq!(f.reference().unwrap(), "files.airgap.local/helm.tar.gz:v3.8.2_b1-linux-amd64");
        let f = FileEntry { extract: Some("./linux-amd64/helm"), ..file("https://h/helm.tgz", "1") };
        assert_eq!(f.reference().unwrap(), "files.airgap.local/helm:1");
        let f = FileEntry { name: Some("My Tool"), ..file("https://h/x", "1") };
        assert_eq!(f.reference().unwrap_err().to_string(), "files: https://h/x: 'my tool' cannot be a repository name; set name: to lowercase letters, digits, '.', '_' or '-'");
        assert!(file("https://h/x", "1/2")
            .reference()
            .unwrap_err()
            .to_string()
            .contains("version '1/2' cannot be a tag"));
        assert!(FileEntry { name: Some(""), ..file("https://h/x", "1") }.reference().is_err());
    }

    #[test]
    fn git_references_drop_user_suffix_and_case() {
        let r = git_reference("https://user:token@GitHub.com/mosip/Mosip-Config.git/", "release/1.2").unwrap();
        assert_eq!(r, "github.com/mosip/mosip-config:release-1.2");
        assert_eq!(git_reference("ssh://git@host/a/b", "v1").unwrap(), "host/a/b:v1");
        assert_eq!(git_reference("https://host/a", &"x".repeat(200)).unwrap(), format!("host/a:{}", "x".repeat(128)));
        assert!(git_reference("https://host", "main").is_err());
    }
}
