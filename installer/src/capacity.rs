//! Lab capacity: a site may scale down what every container requests, so that a platform sized for
//! production clusters (MOSIP asks for tens of cores) schedules on a lab machine or a test node.
//! The site file's `lab.request_scale` (0 < factor ≤ 1; absent for a real site) multiplies each CPU
//! and memory request of every rendered container; limits stay as the charts set them. Istio's
//! sidecars are added at admission, so their requests are scaled where the injector reads them:
//! the `global.proxy` and `global.proxy_init` values of its `istio-sidecar-injector` ConfigMap.

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml_ng::Value;

/// The ConfigMap whose `values` (JSON) Istio's injector reads the sidecars' resources from.
const ISTIO_INJECTOR: &str = "istio-sidecar-injector";

/// Scales the requests of every container of a pod spec (containers and init containers).
pub fn scale_pod_spec(spec: &mut Value, scale: f64) -> Result<()> {
    for c in kubemanifests::pods::containers_mut(spec) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
        if let Some(requests) = c.get_mut("resources").and_then(|r| r.get_mut("requests")) {
            scale_requests(requests, scale).with_context(|| format!("container {name}"))?;
        }
    }
    Ok(())
}

/// Scales the sidecar requests in Istio's injector ConfigMap; other objects are left alone.
pub fn scale_istio_injector(doc: &mut Value, scale: f64) -> Result<()> {
    let is_injector = doc.get("kind").and_then(Value::as_str) == Some("ConfigMap")
        && doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some(ISTIO_INJECTOR);
    let Some(text) = doc.get("data").and_then(|d| d.get("values")).and_then(Value::as_str).filter(|_| is_injector)
    else {
        return Ok(());
    };
    let mut values: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("ConfigMap {ISTIO_INJECTOR}: values is not JSON"))?;
    for image in ["proxy", "proxy_init"] {
        let Some(requests) = values["global"][image]["resources"].get_mut("requests") else { continue };
        let mut yaml: Value = serde_yaml_ng::to_value(&*requests)?;
        scale_requests(&mut yaml, scale).with_context(|| format!("{ISTIO_INJECTOR}: global.{image}"))?;
        *requests = serde_json::to_value(yaml)?;
    }
    doc["data"]["values"] = Value::String(serde_json::to_string(&values)?);
    Ok(())
}

fn scale_requests(requests: &mut Value, scale: f64) -> Result<()> {
    for (resource, unit) in [("cpu", Unit::MilliCpu), ("memory", Unit::Bytes)] {
        let Some(q) = requests.get_mut(resource) else { continue };
        let written = match &*q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => bail!("{resource} request {other:?} is not a quantity"),
        };
        let base = parse_quantity(&written).with_context(|| format!("{resource} request {written:?}"))?;
        *q = Value::String(unit.write(base * scale));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Unit {
    MilliCpu,
    Bytes,
}

impl Unit {
    /// Rounded up, to at least 1m of CPU or 1 MiB of memory: a zero request would mean "none
    /// asked". The epsilon keeps a product like 1.5 × 0.1 (150.00000000000003m) at 150m.
    fn write(self, value: f64) -> String {
        let up = |x: f64| ((x - 1e-6).ceil() as u64).max(1);
        match self {
            Unit::MilliCpu => format!("{}m", up(value * 1000.0)),
            Unit::Bytes => format!("{}Mi", up(value / f64::from(1 << 20))),
        }
    }
}

/// A Kubernetes quantity (`100m`, `0.5`, `2`, `128Mi`, `1G`, `1e3`) in base units (cores, bytes).
fn parse_quantity(text: &str) -> Result<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| anyhow!("{text:?} is not a quantity"))?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        s if s.starts_with(['e', 'E']) => {
            10f64.powi(s[1..].parse().map_err(|_| anyhow!("{text:?} is not a quantity"))?)
        }
        _ => bail!("{text:?} has an unknown suffix {suffix:?}"),
    };
    if number < 0.0 {
        bail!("{text:?} is negative");
    }
    Ok(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_in_base_units() {
        assert_eq!(parse_quantity("100m").unwrap(), 0.1);
        assert_eq!(parse_quantity("2").unwrap(), 2.0);
        assert_eq!(parse_quantity("0.5").unwrap(), 0.5);
        assert_eq!(parse_quantity("128Mi").unwrap(), 134_217_728.0);
        assert_eq!(parse_quantity("1G").unwrap(), 1e9);
        assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
        assert!(parse_quantity("12 apples").is_err());
        assert!(parse_quantity("-1").is_err());
        assert!(parse_quantity("").is_err());
    }

    #[test]
    fn every_containers_requests_are_scaled_and_limits_kept() {
        let mut spec: Value = serde_yaml_ng::from_str(
            "initContainers:\n- {name: init, resources: {requests: {cpu: 1}}}\ncontainers:\n- name: app\n  resources:\n    requests: {cpu: 1500m, memory: 2Gi}\n    limits: {cpu: 2, memory: 3Gi}\n- {name: bare}\n",
        )
        .unwrap();
        scale_pod_spec(&mut spec, 0.1).unwrap();
        assert_eq!(spec["initContainers"][0]["resources"]["requests"]["cpu"], "100m");
        let app = &spec["containers"][0]["resources"];
        assert_eq!(app["requests"]["cpu"], "150m");
        assert_eq!(app["requests"]["memory"], "205Mi");
        assert_eq!(app["limits"]["cpu"], 2);
        assert_eq!(app["limits"]["memory"], "3Gi");
        assert!(spec["containers"][1].get("resources").is_none());
    }

    #[test]
    fn tiny_requests_stay_requests() {
        let mut spec: Value =
            serde_yaml_ng::from_str("containers:\n- {name: a, resources: {requests: {cpu: 1m, memory: 1Ki}}}\n")
                .unwrap();
        scale_pod_spec(&mut spec, 0.01).unwrap();
        assert_eq!(spec["containers"][0]["resources"]["requests"]["cpu"], "1m");
        assert_eq!(spec["containers"][0]["resources"]["requests"]["memory"], "1Mi");
    }

    #[test]
    fn a_bad_quantity_names_the_container() {
        let mut spec: Value =
            serde_yaml_ng::from_str("containers:\n- {name: web, resources: {requests: {cpu: lots}}}\n").unwrap();
        let err = format!("{:#}", scale_pod_spec(&mut spec, 0.5).unwrap_err());
        assert!(err.contains("container web") && err.contains("lots"), "{err}");
    }

    #[test]
    fn the_istio_sidecars_requests_are_scaled_in_the_injectors_values() {
        let values = r#"{"global":{"proxy":{"image":"p","resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"cpu":"2"}}},"proxy_init":{"resources":{"requests":{"cpu":"10m"}}}}}"#;
        let mut doc: Value = serde_yaml_ng::from_str(&format!(
            "kind: ConfigMap\nmetadata: {{name: istio-sidecar-injector}}\ndata:\n  values: '{values}'\n  config: x\n"
        ))
        .unwrap();
        scale_istio_injector(&mut doc, 0.5).unwrap();
        let scaled: serde_json::Value = serde_json::from_str(doc["data"]["values"].as_str().unwrap()).unwrap();
        assert_eq!(scaled["global"]["proxy"]["resources"]["requests"]["cpu"], "50m");
        assert_eq!(scaled["global"]["proxy"]["resources"]["requests"]["memory"], "64Mi");
        assert_eq!(scaled["global"]["proxy"]["resources"]["limits"]["cpu"], "2");
        assert_eq!(scaled["global"]["proxy_init"]["resources"]["requests"]["cpu"], "5m");
        assert_eq!(scaled["global"]["proxy"]["image"], "p");

        let mut other: Value =
            serde_yaml_ng::from_str("kind: ConfigMap\nmetadata: {name: x}\ndata: {values: 'not json'}\n").unwrap();
        scale_istio_injector(&mut other, 0.5).unwrap();
        assert_eq!(other["data"]["values"], "not json");
    }
}
