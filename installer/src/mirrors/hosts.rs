//! Which upstream hosts to mirror: those of the images a bundle carries, or those the site
//! registry's catalog names (it lists repositories host first: `docker.io/mosipid/x`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bundles::artifact::{Kind, Reference};
use bundles::naming::FILES_HOST;
use bundles::Bundle;
use reqwest::header::LINK;
use reqwest::Url;

/// Repositories asked for per catalog request.
pub const CATALOG_PAGE: usize = 1000;

/// A name whose first component Docker's rules take for a registry host.
pub(super) fn is_host(name: &str) -> bool {
    let chars_ok = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-:".contains(&b));
    chars_ok && Reference::parse(&format!("{name}/x")).is_ok_and(|r| r.registry == name)
}

/// The registry hosts of every image in the bundle.
pub fn from_bundle(dir: &Path) -> Result<Vec<String>> {
    let bundle = Bundle::open(dir)?;
    let mut hosts = BTreeSet::new();
    for a in bundles::cli::artifacts(&bundle)? {
        if a.kind == Kind::Image {
            let r = Reference::parse(&a.reference)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
                .context("reading the bundle's image references")?;
            hosts.insert(r.registry);
        }
    }
    if hosts.is_empty() {
        bail!("{} carries no images, so there is no upstream host to mirror", dir.display());
    }
    Ok(hosts.into_iter().collect())
}

/// The hosts named by the registry's catalog, following its pages. Bare names (the registry also
/// serves `mosipid/x` where unambiguous) and file artifacts are left out.
pub fn from_catalog(registry: &str, ca_file: Option<&Path>, page: usize) -> Result<Vec<String>> {
    let base = if registry.contains("://") { registry.to_string() } else { format!("https://{registry}") };
    let base = Url::parse(&base).with_context(|| format!("--registry {registry} is not a URL"))?;
    let client = client(ca_file)?;
    let mut next = Some(base.join(&format!("/v2/_catalog?n={page}"))?);
    let mut hosts = BTreeSet::new();
    while let Some(url) = next.take() {
        let resp = client.get(url.clone()).send().with_context(|| format!("cannot reach {url}"))?;
        if !resp.status().is_success() {
            bail!(
                "{url} answered {}: is {registry} the site registry, and does it allow anonymous pulls?",
                resp.status()
            );
        }
        next = next_page(&url, resp.headers().get(LINK).and_then(|v| v.to_str().ok()))?;
        let bytes = resp.bytes().with_context(|| format!("reading {url}"))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{url}: not a catalog"))?;
        let Some(names) = body.get("repositories").and_then(|r| r.as_array()) else {
            bail!("{url}: the answer has no repositories list");
        };
        for name in names.iter().filter_map(|n| n.as_str()) {
            if let Some((first, _)) = name.split_once('/') {
                // File artifacts, which nodes never pull as images, are not a host to mirror.
                if first != FILES_HOST && is_host(first) {
                    hosts.insert(first.to_string());
                }
            }
        }
    }
    Ok(hosts.into_iter().collect())
}

/// The `rel="next"` target of a `Link` header, taken relative to the page that sent it.
fn next_page(page: &Url, link: Option<&str>) -> Result<Option<Url>> {
    let Some(link) = link else { return Ok(None) };
    for part in link.split(',') {
        let (target, params) = part.split_once(';').unwrap_or((part, ""));
        if params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"") {
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            return Ok(Some(page.join(target).with_context(|| format!("{page}: bad Link header {link}"))?));
        }
    }
    Ok(None)
}

fn client(ca_file: Option<&Path>) -> Result<reqwest::blocking::Client> {
    let tls = clientcore::tls_config(ca_file.as_slice())?;
    Ok(reqwest::blocking::Client::builder().tls_backend_preconfigured(tls).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_dockers_rules() {
        assert!(is_host("docker.io") && is_host("localhost") && is_host("reg.local:5000"));
        assert!(!is_host("mosipid") && !is_host("Docker.io") && !is_host(""));
    }

    #[test]
    fn next_page_is_relative_to_the_page() {
        let page = Url::parse("http://r:5000/v2/_catalog?n=2").unwrap();
        let next = next_page(&page, Some(r#"</v2/_catalog?last=b&n=2>; rel="next""#)).unwrap().unwrap();
        assert_eq!(next.as_str(), "http://r:5000/v2/_catalog?last=b&n=2");
        assert_eq!(next_page(&page, Some(r#"</x>; rel="prev""#)).unwrap(), None);
        assert_eq!(next_page(&page, None).unwrap(), None);
    }
}
