//! The bundle spec: what a bundle must carry, as a reviewer writes it. `manifests/sample/bundle.yaml`
//! documents every field; keep the two in step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The platform carried for images when neither the spec nor the command line names one.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// A bundle spec: what a bundle carries and where it is fetched from (`manifests/sample/bundle.yaml` documents it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Platforms for images that do not name their own; the command line overrides it.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Container images.
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    /// Helm charts.
    #[serde(default)]
    pub charts: Vec<ChartEntry>,
    /// Files and tool binaries fetched over HTTP.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Git repositories, one ref each.
    #[serde(default)]
    pub git: Vec<GitEntry>,
    /// Published lists of images (Rancher's `rancher-images.txt`), carried like `images`.
    #[serde(default)]
    pub image_lists: Vec<ImageListEntry>,
    /// Upstream host (`docker.io`, `mosip.github.io`, `127.0.0.1:5000`) → base URL to use instead.
    #[serde(default)]
    pub mirrors: BTreeMap<String, String>,
    /// Logins for registries that want one.
    #[serde(default)]
    pub credentials: Credentials,
    /// Extra PEM CA certificates trusted besides the system's.
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
    /// The helm binary that renders charts for image discovery.
    #[serde(default)]
    pub helm: Option<PathBuf>,
}

/// `- nginx:1.25`, or `- ref: nginx:1.25` with `platforms`. Told apart by the YAML itself (a
/// string or a map) rather than by trying each shape, so a typo inside a map is reported as what
/// it is, with its line, not as "no variant matched".
#[derive(Debug, Clone)]
pub enum ImageEntry {
    /// A reference alone.
    Plain(String),
    /// A reference with its own platforms.
    Detailed(ImageDetail),
}

impl<'de> Deserialize<'de> for ImageEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ImageEntry;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an image reference, or a map with `ref` and `platforms`")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ImageEntry, E> {
                Ok(ImageEntry::Plain(v.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ImageEntry, A::Error> {
                ImageDetail::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ImageEntry::Detailed)
            }
        }
        d.deserialize_any(Entry)
    }
}

/// An image entry written as a map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDetail {
    /// The image reference (`ref:`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The platforms to carry, over the spec's.
    #[serde(default)]
    pub platforms: Vec<String>,
}

impl ImageEntry {
    /// The image reference as the spec writes it.
    pub fn reference(&self) -> &str {
        match self {
            ImageEntry::Plain(r) => r,
            ImageEntry::Detailed(d) => &d.reference,
        }
    }

    /// The platforms the entry names itself (none for a plain reference).
    pub fn platforms(&self) -> &[String] {
        match self {
            ImageEntry::Plain(_) => &[],
            ImageEntry::Detailed(d) => &d.platforms,
        }
    }
}

/// A published list of images to carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageListEntry {
    /// A text file of image references, one a line; blank lines and `#` comments are skipped.
    pub url: String,
    /// SHA-256 (hex) of the list, when its publisher gives one; checked before it is read.
    pub sha256: Option<String>,
    /// Lines that start with any of these are left out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// What rendering a chart does with the images it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discover {
    /// Do not render the chart.
    Off,
    /// Render and print the images found; carry none of them.
    Report,
    /// Render and carry every image found.
    #[default]
    Add,
    /// Render; every image found must be listed under `images`, or the run fails.
    Strict,
}

/// A Helm chart to carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartEntry {
    /// `https://host/path` (a classic repository with `index.yaml`) or `oci://host/path`.
    pub repo: String,
    /// The chart's name in the repository.
    pub name: String,
    /// The chart version, exactly as the repository lists it.
    pub version: String,
    /// Values files (relative to the spec) used when rendering for image discovery.
    #[serde(default)]
    pub values: Vec<PathBuf>,
    /// Inline values, applied after the files.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Whether rendering the chart adds the images it uses.
    #[serde(default)]
    pub discover: Discover,
}

/// A file or tool binary to carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Where the file is downloaded from.
    pub url: String,
    /// SHA-256 (hex) of what `url` serves: the published checksum of the download.
    pub sha256: Option<String>,
    /// Instead of `sha256`: the URL of the checksums file the project publishes, which lists the
    /// download's SHA-256 under the last segment of `url`. `bundle lock` reads it.
    pub sha256_from: Option<String>,
    /// The name to carry it under, when not the one its URL (or `extract`) gives.
    pub name: Option<String>,
    /// The file's version: its reference's tag.
    pub version: String,
    /// Written out executable (`airgap tools`).
    #[serde(default)]
    pub executable: bool,
    /// A member of a `.tar.gz` download to carry instead of the archive.
    pub extract: Option<String>,
    /// `os/arch` the file is built for; part of the reference when set.
    pub platform: Option<String>,
}

/// A git repository to carry, at one ref.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitEntry {
    /// The URL to clone.
    pub url: String,
    /// A branch, a tag or a full commit id.
    #[serde(rename = "ref")]
    pub git_ref: String,
}

/// Where registry logins come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// A docker `config.json`; `auths.<host>.auth` (or username/password) entries are used.
    pub docker_config: Option<PathBuf>,
    /// Per registry host: the names of environment variables holding the user and password.
    #[serde(default)]
    pub env: BTreeMap<String, EnvCredentials>,
}

/// The environment variables holding one registry login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvCredentials {
    /// The variable holding the user name.
    pub username: String,
    /// The variable holding the password.
    pub password: String,
}

impl Spec {
    /// Reads a spec, its relative paths taken from its folder (and `~` from `$HOME`).
    pub fn read(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the spec {}", path.display()))?;
        let mut spec = Spec::parse(&text, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            *p = match (p.strip_prefix("~"), std::env::var_os("HOME")) {
                (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => dir.join(&*p),
            }
        };
        spec.charts.iter_mut().flat_map(|c| c.values.iter_mut()).for_each(resolve);
        spec.ca_certs.iter_mut().for_each(resolve);
        spec.credentials.docker_config.iter_mut().for_each(resolve);
        Ok(spec)
    }

    /// Parses a spec; errors name `source` with the line and column.
    pub fn parse(text: &str, source: &Path) -> Result<Spec> {
        let spec: Spec = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => anyhow::anyhow!("{}:{}:{}: {e}", source.display(), l.line(), l.column()),
            None => anyhow::anyhow!("{}: {e}", source.display()),
        })?;
        spec.check().with_context(|| source.display().to_string())?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        for f in &self.files {
            match (&f.sha256, &f.sha256_from) {
                (Some(sha), None) if !is_sha256_hex(sha) => {
                    bail!("files: {}: sha256 must be 64 hex digits", f.url)
                }
                (None, Some(from)) if !is_http_url(from) => {
                    bail!("files: {}: sha256_from must be an http(s):// URL, not '{from}'", f.url)
                }
                (Some(_), Some(_)) => bail!("files: {}: give sha256 or sha256_from, not both", f.url),
                (None, None) => bail!(
                    "files: {}: sha256 (the published SHA-256 of the download) or sha256_from (the URL of \
                     the checksums file that lists it) is required",
                    f.url
                ),
                _ => {}
            }
        }
        for l in &self.image_lists {
            if !is_http_url(&l.url) {
                bail!("image_lists: url must be an http(s):// URL, not '{}'", l.url);
            }
            if l.sha256.as_deref().is_some_and(|sha| !is_sha256_hex(sha)) {
                bail!("image_lists: {}: sha256 must be 64 hex digits", l.url);
            }
        }
        for c in &self.charts {
            if !(c.repo.starts_with("oci://") || is_http_url(&c.repo)) {
                bail!("charts: {}: repo must be an http(s):// or oci:// URL, not '{}'", c.name, c.repo);
            }
        }
        Ok(())
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_name_file_line_and_column() {
        let err = Spec::parse("images:\n  - nginx\ncharts: [\n", Path::new("b.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("b.yaml:"), "{err}");
        let err = Spec::parse("images:\n  - nginx\nbogus: 1\n", Path::new("b.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("b.yaml:3:1:"), "{err}");
    }

    #[test]
    fn the_sample_spec_parses() {
        let s = Spec::parse(include_str!("../../manifests/sample/bundle.yaml"), Path::new("bundle.yaml")).unwrap();
        assert!(!s.images.is_empty() && !s.charts.is_empty() && !s.files.is_empty() && !s.git.is_empty());
    }

    #[test]
    fn an_image_list_needs_an_http_url_and_a_well_formed_checksum() {
        let list = |fields: &str| Spec::parse(&format!("image_lists:\n - {fields}\n"), Path::new("b.yaml"));
        let ok = list("url: https://x/rancher-images.txt\n   exclude: [rancher/rke2-]").unwrap();
        assert_eq!(ok.image_lists[0].exclude, ["rancher/rke2-"]);
        for (fields, says) in [
            ("url: rancher-images.txt", "http(s):// URL"),
            ("url: https://x/l.txt\n   sha256: abc", "64 hex digits"),
            ("url: https://x/l.txt\n   tags: [a]", "unknown field"),
        ] {
            let err = format!("{:#}", list(fields).unwrap_err());
            assert!(err.contains(says), "{fields}: {err}");
        }
    }

    #[test]
    fn a_file_gives_exactly_one_of_sha256_and_sha256_from() {
        let entry = |checksum: &str| format!("files:\n - url: https://x/eksctl.tar.gz\n   version: '1'\n{checksum}");
        let sha = format!("   sha256: {}\n", "a".repeat(64));
        let from = "   sha256_from: https://x/checksums.txt\n";
        assert!(Spec::parse(&entry(&sha), Path::new("b.yaml")).is_ok());
        let s = Spec::parse(&entry(from), Path::new("b.yaml")).unwrap();
        assert_eq!(s.files[0].sha256_from.as_deref(), Some("https://x/checksums.txt"));
        for (checksum, says) in [
            (format!("{sha}{from}"), "not both"),
            (String::new(), "sha256_from (the URL"),
            ("   sha256_from: checksums.txt\n".to_string(), "http(s):// URL"),
        ] {
            let err = format!("{:#}", Spec::parse(&entry(&checksum), Path::new("b.yaml")).unwrap_err());
            assert!(err.contains("files: https://x/eksctl.tar.gz: ") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn a_typo_inside_an_image_map_is_named_with_its_line() {
        let err =
            Spec::parse("images:\n - nginx:1.25\n - ref: busybox\n   platfroms: [linux/arm64]\n", Path::new("b.yaml"))
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("b.yaml:4:") && err.contains("unknown field `platfroms`"), "{err}");
        assert!(!err.contains("untagged"), "{err}");
        let err = Spec::parse("images:\n - ref: [busybox]\n", Path::new("b.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("b.yaml:2:") && err.contains("ref"), "{err}");
        let err = Spec::parse("images:\n - 7\n", Path::new("b.yaml")).unwrap_err().to_string();
        assert!(err.contains("an image reference, or a map"), "{err}");
    }

    proptest::proptest! {
        /// Any text is a spec or an error that names the file; never a panic.
        #[test]
        fn any_text_is_a_spec_or_an_error_naming_the_file(text in "([ -~]{0,40}\n){0,8}") {
            if let Err(e) = Spec::parse(&text, Path::new("b.yaml")) {
                let text = format!("{e:#}");
                proptest::prop_assert!(text.contains("b.yaml"), "{}", text);
            }
        }
    }

    #[test]
    fn images_as_strings_or_maps() {
        let s = Spec::parse("images:\n - nginx:1.25\n - ref: busybox\n   platforms: [linux/arm64]\n", Path::new("x"))
            .unwrap();
        assert_eq!(s.images[0].reference(), "nginx:1.25");
        assert_eq!(s.images[1].platforms(), ["linux/arm64"]);
    }
}
