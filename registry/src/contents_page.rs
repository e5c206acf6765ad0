//! `GET /` and `/ui/`: a read-only page of what the bundles served carry, for an auditor on site
//! with a browser and no `curl`. Server-rendered HTML with every name escaped (maud escapes what
//! it is given), no script and nothing loaded from elsewhere; the policy header forbids both.
//! Each bundle's SBOMs are linked at `/ui/bundles/<n>/<file>`, read from beside its parts.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bundles::artifact::Kind;
use bundles::footprint::{Footprint, SizedArtifact};
use bundles::pack::SUMS_FILE;
use bundles::sbom::{CYCLONEDX_FILE, SPDX_FILE};
use bundles::sign::SIGNATURE_SUFFIX;
use bundles::size::human;
use bundles::Bundle;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Response;
use maud::{html, Markup, DOCTYPE};

use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::ok_builder;

/// No script runs, nothing is fetched from elsewhere, and the page cannot be framed.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// The bundles are read-only, so the page is rendered once, on the first request.
pub(crate) struct ContentsPage {
    bundles: Vec<PathBuf>,
    rendered: OnceLock<Arc<String>>,
}

impl ContentsPage {
    pub fn new(bundles: Vec<PathBuf>) -> ContentsPage {
        ContentsPage { bundles, rendered: OnceLock::new() }
    }

    /// `path` is what follows `/ui/` (empty for the page itself); `None` when it is not the page's.
    pub async fn route(self: &Arc<Self>, path: &str, head: bool) -> Option<ApiResult<Response<Body>>> {
        if path.is_empty() {
            return Some(self.page(head).await);
        }
        let (n, file) = path.strip_prefix("bundles/")?.split_once('/')?;
        let dir = n.parse::<usize>().ok().and_then(|n| self.bundles.get(n))?;
        if file != SPDX_FILE && file != CYCLONEDX_FILE {
            return None;
        }
        let path = dir.join(file);
        Some(match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(respond("application/json", bytes, head)),
            Err(e) => Err(ApiError::io(format!("{}", path.display()), e)),
        })
    }

    async fn page(self: &Arc<Self>, head: bool) -> ApiResult<Response<Body>> {
        let html = match self.rendered.get() {
            Some(h) => h.clone(),
            None => {
                let me = self.clone();
                let h = tokio::task::spawn_blocking(move || me.render())
                    .await
                    .map_err(|e| ApiError::new(Code::Internal, format!("rendering the contents page: {e}")))??;
                self.rendered.get_or_init(|| Arc::new(h)).clone()
            }
        };
        Ok(respond("text/html; charset=utf-8", html.as_bytes().to_vec(), head))
    }

    fn render(&self) -> ApiResult<String> {
        let mut sections = Vec::new();
        for (n, dir) in self.bundles.iter().enumerate() {
            let fail = |e: bundles::Error| ApiError::new(Code::Internal, format!("bundle {}: {e}", dir.display()));
            let bundle = Bundle::open(dir).map_err(fail)?;
            let footprint = bundles::footprint::of(&bundle).map_err(fail)?;
            sections.push(bundle_section(n, &bundle, &footprint));
        }
        Ok(page(&sections).into_string())
    }
}

fn respond(content_type: &str, bytes: Vec<u8>, head: bool) -> Response<Body> {
    let b = ok_builder(200)
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, bytes.len())
        .header("Content-Security-Policy", POLICY)
        .header("X-Content-Type-Options", "nosniff");
    b.body(if head { body::empty() } else { body::full(bytes) }).expect("valid response")
}

fn page(sections: &[Markup]) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "airgap registry: what it serves" }
                style { (STYLE) }
            }
            body {
                h1 { "What this registry serves" }
                p.note {
                    "Read-only. Pull images by their original names with the registry's address first; "
                    "charts over oci:// or from /charts/…/index.yaml; files from /files/…; git from /git/…."
                }
                @if sections.is_empty() {
                    p { "No bundle is served: only what was pushed (see /v2/_catalog)." }
                }
                @for s in sections { (s) }
            }
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1a1a1a}\
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}\
td.size,th.size{text-align:right;white-space:nowrap}code{font-size:.9em;word-break:break-all}\
.signed{color:#0a6b2d}.unsigned{color:#9a4d00}.note{color:#555}";

fn bundle_section(n: usize, bundle: &Bundle, f: &Footprint) -> Markup {
    let dir = bundle.dir();
    let signed = dir.join(format!("{SUMS_FILE}{SIGNATURE_SUFFIX}")).is_file();
    let kinds =
        [(Kind::Image, "Images"), (Kind::Chart, "Helm charts"), (Kind::File, "Files"), (Kind::Git, "Git repositories")];
    html! {
        section {
            h2 { "Bundle " code { (dir.display().to_string()) } }
            p {
                @if signed {
                    span.signed { "Signed: " code { (SUMS_FILE) (SIGNATURE_SUFFIX) } " is present." }
                    " This page does not check it: "
                    code { "airgap bundle verify " (dir.display().to_string()) " --key KEY.pub" } " does."
                } @else {
                    span.unsigned { "Not signed." }
                    " Its checksums are checked by " code { "airgap bundle verify " (dir.display().to_string()) } "."
                }
            }
            p {
                (f.artifacts.len()) " artifacts, " (human(f.total_size)) " in " (f.blobs) " blobs (a blob that artifacts share counted once); "
                (human(f.on_media_size)) " on the media in " (f.on_media.len()) " files."
                @if let Some(base) = &bundle.meta().base {
                    " A delta over the bundle whose lock has SHA-256 " code { (base.lock_sha256) } "."
                }
            }
            p {
                "SBOMs: "
                a href=(format!("/ui/bundles/{n}/{SPDX_FILE}")) { "SPDX 2.3" }
                " · "
                a href=(format!("/ui/bundles/{n}/{CYCLONEDX_FILE}")) { "CycloneDX 1.5" }
            }
            @for (kind, title) in kinds {
                @let of_kind: Vec<&SizedArtifact> = f.artifacts.iter().filter(|a| a.artifact.kind == kind).collect();
                @if !of_kind.is_empty() {
                    h3 { (title) " (" (of_kind.len()) ")" }
                    table {
                        tr { th { "Original name" } th { "Digest" } th { "Platforms" } th.size { "Size" } }
                        @for a in of_kind {
                            tr {
                                td { code { (a.artifact.reference) } }
                                td { code { (a.artifact.digest) } }
                                td { (a.artifact.platforms.join(", ")) }
                                td.size { (human(a.carried_size)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
