//! Stand-ins for the CustomResourceDefinitions that upstream content installs and this machine
//! cannot fetch: each under the real group, kind, plural, scope and served versions, with a schema
//! that keeps any field (the real ones validate fields; a stand-in only has to make the API server
//! serve the kind, so that charts and manifests naming it can be applied).

/// One CRD: its group, kind, plural, whether it is namespaced, and its served versions with the
/// storage version first.
pub struct Crd {
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub versions: &'static [&'static str],
}

const fn crd(group: &'static str, kind: &'static str, plural: &'static str, versions: &'static [&'static str]) -> Crd {
    Crd { group, kind, plural, namespaced: true, versions }
}

/// prometheus-operator 0.50's CRDs, which the rancher-monitoring-crd chart installs.
pub const PROMETHEUS_OPERATOR: &[Crd] = &[
    crd("monitoring.coreos.com", "Alertmanager", "alertmanagers", &["v1"]),
    crd("monitoring.coreos.com", "AlertmanagerConfig", "alertmanagerconfigs", &["v1alpha1"]),
    crd("monitoring.coreos.com", "PodMonitor", "podmonitors", &["v1"]),
    crd("monitoring.coreos.com", "Probe", "probes", &["v1"]),
    crd("monitoring.coreos.com", "Prometheus", "prometheuses", &["v1"]),
    crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", &["v1"]),
    crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", &["v1"]),
    crd("monitoring.coreos.com", "ThanosRuler", "thanosrulers", &["v1"]),
];

/// logging-operator 3.17's CRDs and the logging extensions', which the rancher-logging-crd chart
/// installs.
pub const LOGGING_OPERATOR: &[Crd] = &[
    crd("logging.banzaicloud.io", "ClusterFlow", "clusterflows", &["v1beta1", "v1alpha1"]),
    crd("logging.banzaicloud.io", "ClusterOutput", "clusteroutputs", &["v1beta1", "v1alpha1"]),
    crd("logging.banzaicloud.io", "Flow", "flows", &["v1beta1", "v1alpha1"]),
    crd("logging.banzaicloud.io", "Output", "outputs", &["v1beta1", "v1alpha1"]),
    Crd {
        group: "logging.banzaicloud.io",
        kind: "Logging",
        plural: "loggings",
        namespaced: false,
        versions: &["v1beta1", "v1alpha1"],
    },
    crd("logging-extensions.banzaicloud.io", "EventTailer", "eventtailers", &["v1alpha1"]),
    crd("logging-extensions.banzaicloud.io", "HostTailer", "hosttailers", &["v1alpha1"]),
];

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

    #[test]
    fn every_crd_is_one_document_with_one_storage_version() {
        for set in [PROMETHEUS_OPERATOR, LOGGING_OPERATOR] {
            let text = yaml(set);
            let docs: Vec<serde_yaml_ng::Value> =
                text.split("---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect();
            assert_eq!(docs.len(), set.len());
            for d in docs {
                let versions = d["spec"]["versions"].as_sequence().unwrap();
                assert_eq!(versions.iter().filter(|v| v["storage"] == true).count(), 1, "{d:?}");
            }
        }
    }
}
