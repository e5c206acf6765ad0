//! Stand-ins for the CustomResourceDefinitions that upstream content installs and this machine
//! cannot fetch: each under the real group, kind, plural, scope and served versions, with a schema
//! that keeps any field (the real ones validate fields; a stand-in only has to make the API server
//! serve the kind, so that charts and manifests naming it can be applied).

/// One CRD: its group, kind, plural, whether it is namespaced, and its served versions with the
/// storage version first.
pub struct Crd {
    /// The API group, e.g. `monitoring.coreos.com`.
    pub group: &'static str,
    /// The kind manifests name.
    pub kind: &'static str,
    /// The resource name in URLs.
    pub plural: &'static str,
    /// Namespaced, or cluster-wide.
    pub namespaced: bool,
    /// The served versions, the storage version first.
    pub versions: &'static [&'static str],
}

/// The CRDs as one YAML stream.
pub fn yaml(crds: &[Crd]) -> String {
    crds.iter().map(one).collect::<Vec<_>>().join("---\n")
}

fn one(c: &Crd) -> String {
    let versions: String = c
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "  - name: {v}\n    served: true\n    storage: {}\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
                i == 0
            )
        })
        .collect();
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\n  annotations:\n    airgap.test/stand-in: \"the real CRD's names and versions, any fields\"\nspec:\n  group: {group}\n  names:\n    kind: {kind}\n    listKind: {kind}List\n    plural: {plural}\n    singular: {singular}\n  scope: {scope}\n  versions:\n{versions}",
        plural = c.plural,
        group = c.group,
        kind = c.kind,
        singular = c.kind.to_lowercase(),
        scope = if c.namespaced { "Namespaced" } else { "Cluster" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &[Crd] = &[
        Crd { group: "example.airgap", kind: "One", plural: "ones", namespaced: true, versions: &["v1"] },
        Crd { group: "example.airgap", kind: "Two", plural: "twos", namespaced: false, versions: &["v1", "v1beta1"] },
    ];

    fn docs_scope(text: &str) -> Vec<String> {
        let docs = text.split("---\n").map(|d| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(d).unwrap());
        docs.map(|d| d["spec"]["scope"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn every_crd_is_one_document_with_one_storage_version() {
        let text = yaml(SET);
        let docs: Vec<serde_yaml_ng::Value> =
            text.split("---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect();
        assert_eq!(docs.len(), SET.len());
        for d in docs {
            let versions = d["spec"]["versions"].as_sequence().unwrap();
            assert_eq!(versions.iter().filter(|v| v["storage"] == true).count(), 1, "{d:?}");
        }
        assert_eq!(docs_scope(&text), ["Namespaced", "Cluster"]);
    }
}
