//! The MOSIP bundle spec carries every image its charts deploy: each chart that the fixture
//! repository holds is rendered with the real helm 3.8.2 and the values the spec names, and every
//! image in the manifests must be listed under `images:`. A chart release whose image is missing
//! here would make the site's leak check refuse it, or make a pod pull from the internet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

const MOSIP_REPO: &str = "https://mosip.github.io/mosip-helm";

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/mosip-1.2.0.1-B2/bundle.yaml")
}

/// Docker's rules: a first component without '.', ':' or "localhost" is not a host (docker.io),
/// docker.io names without a '/' live under library/, and no tag or digest means :latest.
fn normalise(image: &str) -> String {
    let (host, rest) = match image.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => (h.to_string(), r.to_string()),
        _ => ("docker.io".to_string(), image.to_string()),
    };
    let rest = if host == "docker.io" && !rest.contains('/') { format!("library/{rest}") } else { rest };
    let last = rest.rsplit('/').next().unwrap_or_default();
    let rest = if last.contains(':') || last.contains('@') { rest } else { format!("{rest}:latest") };
    format!("{host}/{rest}")
}

/// The string value of every `image:` key. Rendered charts carry duplicate keys, which a YAML
/// map refuses, so the manifests are read line by line; an `image:` that opens a map instead of
/// naming an image is reported rather than skipped.
fn images_in(rendered: &str) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    for line in rendered.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        let Some(value) = t.strip_prefix("image:") else { continue };
        let value = value.split(" #").next().unwrap_or_default().trim().trim_matches(|c| c == '"' || c == '\'');
        if value.is_empty() {
            return Err(format!("an image: map this test cannot read: {line}"));
        }
        found.insert(value.to_string());
    }
    Ok(found)
}

struct Chart {
    name: String,
    version: String,
    values: Vec<PathBuf>,
    set: Vec<(String, String)>,
}

fn render(helm: &Path, tgz: &Path, chart: &Chart) -> Result<BTreeSet<String>, String> {
    let mut cmd = Command::new(helm);
    // Test hooks are rendered too: a site that runs `helm test` must not reach the internet.
    cmd.args(["template", &chart.name, "--namespace", &chart.name, "--kube-version", "1.24"]).arg(tgz);
    for v in &chart.values {
        cmd.arg("--values").arg(v);
    }
    for (k, v) in &chart.set {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", helm.display()))?;
    if !out.status.success() {
        return Err(format!("helm template failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    images_in(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn every_image_the_fixture_charts_render_is_in_the_spec() {
    let spec_file = spec_path();
    let spec_dir = spec_file.parent().unwrap().to_path_buf();
    let spec: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();

    let listed: BTreeSet<String> = spec["images"]
        .as_sequence()
        .expect("images: is a list")
        .iter()
        .map(|i| i.as_str().or_else(|| i["ref"].as_str()).expect("an image is a string or has ref:"))
        .map(normalise)
        .collect();

    let fixture = testkit::shared_fixtures().join("mosip-helm-repo-2023-01-08");
    let mut charts = Vec::new();
    for c in spec["charts"].as_sequence().expect("charts: is a list") {
        if c["repo"].as_str() != Some(MOSIP_REPO) {
            continue;
        }
        let text = |k: &str| c[k].as_str().unwrap_or_else(|| panic!("chart without {k}: {c:?}")).to_string();
        let values = c["values"].as_sequence().map(|v| v.iter().map(|p| spec_dir.join(p.as_str().unwrap())).collect());
        let set = c["set"].as_mapping().map(|m| {
            m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string())).collect()
        });
        charts.push(Chart {
            name: text("name"),
            version: text("version"),
            values: values.unwrap_or_default(),
            set: set.unwrap_or_default(),
        });
    }
    assert_eq!(charts.len(), 77, "the spec must carry the 77 charts of the mosip repository");
    for c in &charts {
        assert!(
            fixture.join(format!("{}-{}.tgz", c.name, c.version)).is_file(),
            "{} {} is not in the fixture",
            c.name,
            c.version
        );
    }

    let helm = testkit::tool("helm-3.8.2");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    let per_thread = charts.len().div_ceil(threads);
    let results: Vec<(String, Result<BTreeSet<String>, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = charts
            .chunks(per_thread)
            .map(|chunk| {
                let (helm, fixture) = (&helm, &fixture);
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| {
                            let tgz = fixture.join(format!("{}-{}.tgz", c.name, c.version));
                            (format!("{} {}", c.name, c.version), render(helm, &tgz, c))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });

    let mut problems = Vec::new();
    let mut rendered = 0;
    for (chart, result) in results {
        match result {
            Err(e) => problems.push(format!("{chart}: {e}")),
            Ok(images) => {
                for image in images {
                    rendered += 1;
                    if !listed.contains(&normalise(&image)) {
                        problems.push(format!("{chart}: renders {image}, which images: does not list"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(rendered >= 70, "only {rendered} images rendered: is the image scan still reading the manifests?");
}

#[test]
fn docker_normalisation() {
    assert_eq!(normalise("busybox"), "docker.io/library/busybox:latest");
    assert_eq!(normalise("mosipid/config-server:1.1.2"), "docker.io/mosipid/config-server:1.1.2");
    assert_eq!(normalise("docker.io/nginx:latest"), "docker.io/library/nginx:latest");
    assert_eq!(normalise("quay.io/oauth2-proxy/oauth2-proxy:v7.2.0"), "quay.io/oauth2-proxy/oauth2-proxy:v7.2.0");
    assert_eq!(normalise("localhost:5000/a/b@sha256:00"), "localhost:5000/a/b@sha256:00");
}
