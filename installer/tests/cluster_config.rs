//! `airgap install cluster-config` from the MOSIP site example: golden files of the eksctl
//! ClusterConfigs and the RKE2 configuration, the fields eksctl requires, and errors that name the
//! missing site key.

mod golden;

use std::path::{Path, PathBuf};

use installer::cluster_config::{generate, Provider};
use installer::mirrors::{print_files, NodeFile};
use installer::site::Site;
use serde_yaml_ng::Value;

/// Stands for the site CA that `registry.ca_cert` names; it is copied, never parsed.
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfixtureSiteCA0123456789abcdef\n-----END CERTIFICATE-----\n";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/mosip-1.2.0.1-B2/site.example.yaml")
}

/// The site example (or `edit` of it) in a folder that also holds the CA it names.
fn site(dir: &Path, edit: impl FnOnce(&mut Value)) -> Site {
    let mut tree: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    edit(&mut tree);
    let ca = dir.join(tree["registry"]["ca_cert"].as_str().unwrap());
    std::fs::create_dir_all(ca.parent().unwrap()).unwrap();
    std::fs::write(ca, CA).unwrap();
    let path = dir.join("site.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&tree).unwrap()).unwrap();
    Site::load(&path).unwrap()
}

fn hosts() -> Vec<String> {
    vec!["docker.io".into(), "quay.io".into()]
}

fn printed(files: &[NodeFile]) -> String {
    let mut out = Vec::new();
    print_files(&mut out, files).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn eks_cluster_configs_match_their_golden_file() {
    let t = tempfile::tempdir().unwrap();
    let files = generate(&site(t.path(), |_| {}), Provider::Eks, hosts()).unwrap();
    golden::check("cluster-config/eks.txt", &printed(&files));
}

#[test]
fn rke2_configs_match_their_golden_file() {
    let t = tempfile::tempdir().unwrap();
    let files = generate(&site(t.path(), |_| {}), Provider::Rke2, hosts()).unwrap();
    golden::check("cluster-config/rke2.txt", &printed(&files));
}

/// What eksctl v1alpha5 requires and the upstream samples set, checked on the parsed output.
#[test]
fn eks_configs_carry_what_eksctl_requires_and_the_mirrors() {
    let t = tempfile::tempdir().unwrap();
    let files = generate(&site(t.path(), |_| {}), Provider::Eks, hosts()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["observation.cluster.config.yaml", "mosip.cluster.config.yaml"]);
    for (f, (cluster, nodes)) in files.iter().zip([("rancher", 2), ("sandbox", 6)]) {
        let c: Value = serde_yaml_ng::from_str(&f.content).unwrap();
        assert_eq!(c["apiVersion"].as_str(), Some("eksctl.io/v1alpha5"));
        assert_eq!(c["kind"].as_str(), Some("ClusterConfig"));
        assert_eq!(c["metadata"]["name"].as_str(), Some(cluster));
        assert_eq!(c["metadata"]["region"].as_str(), Some("ap-south-1"));
        assert_eq!(c["metadata"]["version"].as_str(), Some("1.24"), "a string, as eksctl wants");
        let ng = &c["managedNodeGroups"][0];
        assert!(ng["name"].as_str().is_some_and(|n| !n.is_empty()));
        assert_eq!(ng["desiredCapacity"].as_u64(), Some(nodes));
        assert_eq!(ng["ssh"]["publicKeyName"].as_str(), Some("rancher"));
        assert_eq!(ng["labels"]["deployment"].as_str(), Some(cluster));
        let commands: Vec<&str> =
            ng["preBootstrapCommands"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(commands.iter().any(|c| c.contains("/etc/containerd/certs.d/docker.io/hosts.toml")), "{commands:?}");
        assert!(commands.iter().any(|c| c.contains("/etc/containerd/certs.d/quay.io/hosts.toml")));
        assert!(commands.iter().any(|c| c.contains(CA.trim_end())), "the CA travels with the commands");
        assert!(commands.iter().any(|c| c.contains("registry.sandbox.xyz.net:5000")));
        let subnets = c["vpc"]["subnets"]["private"].as_mapping().unwrap();
        assert_eq!(subnets.len(), 3);
        assert_eq!(c["vpc"]["subnets"]["private"]["ap-south-1b"]["id"].as_str(), Some("subnet-6bc5b227"));
    }
}

#[test]
fn rke2_servers_join_the_first_and_share_the_mirrors() {
    let t = tempfile::tempdir().unwrap();
    let files = generate(&site(t.path(), |_| {}), Provider::Rke2, hosts()).unwrap();
    let get = |p: &str| -> Value {
        let f = files.iter().find(|f| f.path == p).unwrap_or_else(|| panic!("no {p} in {files:#?}"));
        serde_yaml_ng::from_str(&f.content).unwrap()
    };
    assert!(files.iter().all(|f| f.path != "observation/config-join.yaml"), "one server: nobody joins");
    let first = get("mosip/config.yaml");
    assert!(first.get("server").is_none());
    assert_eq!(first["token-file"].as_str(), Some("/etc/rancher/rke2/cluster-token"));
    let join = get("mosip/config-join.yaml");
    assert_eq!(join["server"].as_str(), Some("https://10.0.2.10:9345"));
    assert_eq!(join["tls-san"].as_sequence().unwrap().len(), 3);
    let reg = get("observation/registries.yaml");
    assert_eq!(reg["mirrors"]["quay.io"]["endpoint"][0].as_str(), Some("https://registry.sandbox.xyz.net:5000"));
    assert_eq!(
        reg["configs"]["registry.sandbox.xyz.net:5000"]["tls"]["ca_file"].as_str(),
        Some("/etc/rancher/rke2/airgap-registry-ca.pem")
    );
    let ca = files.iter().find(|f| f.path == "mosip/airgap-registry-ca.pem").unwrap();
    assert_eq!(ca.content, CA);
}

/// The key a site file lacks, how to remove it, and the provider that needs it.
type MissingKey = (&'static str, fn(&mut Value), Provider);

#[test]
fn a_missing_site_key_is_named_with_the_file() {
    let t = tempfile::tempdir().unwrap();
    let cases: [MissingKey; 5] = [
        (
            "provider.eks.region",
            |v| drop(v["provider"]["eks"].as_mapping_mut().unwrap().remove("region")),
            Provider::Eks,
        ),
        (
            "provider.clusters.mosip.instance_type",
            |v| drop(v["provider"]["clusters"]["mosip"].as_mapping_mut().unwrap().remove("instance_type")),
            Provider::Eks,
        ),
        (
            "provider.kubernetes_version",
            |v| drop(v["provider"].as_mapping_mut().unwrap().remove("kubernetes_version")),
            Provider::Eks,
        ),
        (
            "provider.rke2.token_file",
            |v| drop(v["provider"]["rke2"].as_mapping_mut().unwrap().remove("token_file")),
            Provider::Rke2,
        ),
        ("provider", |v| drop(v.as_mapping_mut().unwrap().remove("provider")), Provider::Rke2),
    ];
    for (i, (key, edit, provider)) in cases.into_iter().enumerate() {
        let dir = t.path().join(i.to_string());
        let site = site(&dir, edit);
        let err = format!("{:#}", generate(&site, provider, hosts()).unwrap_err());
        assert!(err.contains(&format!("{key} is missing")), "{key}: {err}");
        assert!(err.contains(&site.path().display().to_string()), "{err}");
    }
    let dir = t.path().join("no-ca");
    let site = site(&dir, |_| {});
    std::fs::remove_file(dir.join("certs/site-ca.pem")).unwrap();
    let err = format!("{:#}", generate(&site, Provider::Eks, hosts()).unwrap_err());
    assert!(err.contains("registry.ca_cert") && err.contains("site-ca.pem"), "{err}");
}

/// The part of JSON Schema that eksctl's schema uses for these fields: `$ref`, `type`,
/// `properties`, `additionalProperties`, `required`, `items`, `enum`. Returns every violation.
fn violations(schema: &serde_json::Value, root: &serde_json::Value, v: &serde_json::Value, at: &str) -> Vec<String> {
    use serde_json::Value as J;
    if let Some(r) = schema.get("$ref").and_then(J::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return violations(&root["definitions"][name], root, v, at);
    }
    let mut out = Vec::new();
    let type_ok = match schema.get("type").and_then(J::as_str) {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !type_ok {
        return vec![format!("{at}: {v} is not of type {}", schema["type"])];
    }
    if let Some(allowed) = schema.get("enum").and_then(J::as_array) {
        if !allowed.contains(v) {
            out.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let Some(map) = v.as_object() {
        for key in schema.get("required").and_then(J::as_array).into_iter().flatten().filter_map(J::as_str) {
            if !map.contains_key(key) {
                out.push(format!("{at}: required {key} is missing"));
            }
        }
        for (key, value) in map {
            let here = format!("{at}.{key}");
            match (schema.get("properties").and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(s), _) => out.extend(violations(s, root, value, &here)),
                (None, Some(J::Bool(false))) => out.push(format!("{here}: not a field eksctl knows")),
                (None, Some(s)) if s.is_object() => out.extend(violations(s, root, value, &here)),
                _ => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            out.extend(violations(items, root, item, &format!("{at}[{i}]")));
        }
    }
    out
}

/// eksctl 0.121.0 is not on the Go module proxy; 0.143.0 is the oldest release it serves, and its
/// `pkg/apis/eksctl.io/v1alpha5/assets/schema.json` is stored beside the golden files.
#[test]
fn eks_configs_pass_eksctls_schema() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/eksctl/schema-v0.143.0.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let t = tempfile::tempdir().unwrap();
    for f in generate(&site(t.path(), |_| {}), Provider::Eks, hosts()).unwrap() {
        let config: serde_json::Value = serde_yaml_ng::from_str(&f.content).unwrap();
        let found = violations(&schema, &schema, &config, "ClusterConfig");
        assert!(found.is_empty(), "{}:\n{}", f.path, found.join("\n"));
        let mut bad = config.clone();
        bad["managedNodeGroups"][0]["preBootstrapCommand"] = serde_json::json!(["a typo"]);
        bad["metadata"].as_object_mut().unwrap().remove("region");
        assert_eq!(violations(&schema, &schema, &bad, "ClusterConfig").len(), 2, "the check itself finds faults");
    }
}
