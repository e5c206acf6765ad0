//! Where objects that run pods keep their pod spec, and where a pod spec keeps its containers:
//! what every pass over rendered workloads (the post-renderer's, the plan check's, verify's) walks.

use serde_yaml_ng::Value;

/// The lists of a pod spec that hold containers, init containers first as the kubelet runs them.
/// (Ephemeral containers are added to running pods, never rendered.)
pub const CONTAINER_LISTS: [&str; 2] = ["initContainers", "containers"];

/// Where each kind that runs pods keeps its pod spec; None for kinds that run none.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// The pod spec of an object, wherever its kind keeps it.
pub fn pod_spec(doc: &Value) -> Option<&Value> {
    pod_spec_path(doc.get("kind")?.as_str()?)?.iter().try_fold(doc, |v, k| v.get(*k))
}

/// The pod spec of an object, to change it.
pub fn pod_spec_mut(doc: &mut Value) -> Option<&mut Value> {
    let path = pod_spec_path(doc.get("kind")?.as_str()?)?;
    path.iter().try_fold(doc, |v, k| v.get_mut(*k))
}

/// Every container of a pod spec with the list it is in and its index there, init containers
/// first: `("containers", 1, c)` is what the API calls `containers[1]`.
pub fn containers(spec: &Value) -> impl Iterator<Item = (&'static str, usize, &Value)> {
    CONTAINER_LISTS.into_iter().flat_map(move |list| {
        spec.get(list).and_then(Value::as_sequence).into_iter().flatten().enumerate().map(move |(i, c)| (list, i, c))
    })
}

/// Every container of a pod spec, to change it; entries that are not mappings are skipped.
pub fn containers_mut(spec: &mut Value) -> impl Iterator<Item = &mut serde_yaml_ng::Mapping> {
    spec.as_mapping_mut()
        .into_iter()
        .flat_map(|map| map.iter_mut())
        .filter(|(key, _)| key.as_str().is_some_and(|k| CONTAINER_LISTS.contains(&k)))
        .flat_map(|(_, list)| list.as_sequence_mut().into_iter().flatten())
        .filter_map(Value::as_mapping_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn finds_the_pod_spec_of_each_kind_that_runs_pods() {
        let cron = doc("kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c}]}}}}}");
        assert_eq!(pod_spec(&cron).unwrap()["containers"][0]["name"], "c");
        let deployment = doc("kind: Deployment\nspec: {template: {spec: {containers: [{name: d}]}}}");
        assert_eq!(pod_spec(&deployment).unwrap()["containers"][0]["name"], "d");
        assert!(pod_spec(&doc("kind: Service\nspec: {template: {spec: {}}}")).is_none());
    }

    #[test]
    fn lists_init_containers_first_whatever_the_order_of_keys() {
        let spec = doc("containers: [{name: a}, {name: b}]\ninitContainers: [{name: i}]\nvolumes: [{name: v}]");
        let seen: Vec<_> =
            containers(&spec).map(|(list, i, c)| format!("{list}[{i}]={}", c["name"].as_str().unwrap())).collect();
        assert_eq!(seen, ["initContainers[0]=i", "containers[0]=a", "containers[1]=b"]);
    }

    #[test]
    fn changes_reach_every_container_and_nothing_else() {
        let mut spec = doc("containers: [{name: a}, 7]\ninitContainers: [{name: i}]\nvolumes: [{name: v}]");
        for c in containers_mut(&mut spec) {
            c.insert("seen".into(), true.into());
        }
        assert_eq!(spec["containers"][0]["seen"], true);
        assert_eq!(spec["initContainers"][0]["seen"], true);
        assert_eq!(spec["containers"][1], 7);
        assert!(spec["volumes"][0].get("seen").is_none());
    }
}
