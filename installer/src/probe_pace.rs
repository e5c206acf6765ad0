//! Lab pace: a site whose images answer as soon as they start (a test's stand-ins, a smoke
//! install) may shorten what the charts wait for. Charts size their probes for JVMs that take
//! minutes to start (regclient's startup probe waits 420 s, then probes each minute), and those
//! delays, not the work, set how long such an install takes. The site file's
//! `lab.probe_delay_scale` (0 < factor ≤ 1; absent for a real site, whose images need the
//! delays) multiplies each probe's `initialDelaySeconds`, and the `periodSeconds` of startup and
//! readiness probes. A liveness probe keeps its period, as timeouts and failure thresholds keep
//! theirs: its failures restart the container, and a shorter window would take a loaded
//! machine's slow answers for a dead process.

use anyhow::{bail, Context, Result};
use serde_yaml_ng::Value;

const DELAY: &str = "initialDelaySeconds";
const PERIOD: &str = "periodSeconds";

/// Each probe and the fields of it that are scaled.
const PROBES: [(&str, &[&str]); 3] =
    [("startupProbe", &[DELAY, PERIOD]), ("livenessProbe", &[DELAY]), ("readinessProbe", &[DELAY, PERIOD])];

/// Scales the delays of every probe of every container of a pod spec.
pub fn scale_pod_spec(spec: &mut Value, scale: f64) -> Result<()> {
    for c in kubemanifests::pods::containers_mut(spec) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
        for (probe, fields) in PROBES {
            let Some(p) = c.get_mut(probe).filter(|p| p.is_mapping()) else { continue };
            scale_probe(p, fields, scale).with_context(|| format!("container {name}: {probe}"))?;
        }
    }
    Ok(())
}

/// A delay rounded to the nearest second; a period stays at least 1 s, the API's minimum.
fn scale_probe(probe: &mut Value, fields: &[&str], scale: f64) -> Result<()> {
    for &field in fields {
        let least = if field == PERIOD { 1 } else { 0 };
        let Some(v) = probe.get_mut(field) else { continue };
        let Some(seconds) = v.as_u64() else { bail!("{field} {v:?} is not a whole number of seconds") };
        *v = Value::from(((seconds as f64 * scale).round() as u64).max(least));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_delay_and_period_is_scaled_and_the_rest_kept() {
        let mut spec: Value = serde_yaml_ng::from_str(
            "containers:\n- name: app\n  startupProbe: {httpGet: {path: /z, port: 80}, initialDelaySeconds: 420, periodSeconds: 60, timeoutSeconds: 5, failureThreshold: 10}\n  readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 10}\n  livenessProbe: {exec: {command: [true]}, initialDelaySeconds: 60, periodSeconds: 30}\n- {name: bare}\n",
        )
        .unwrap();
        scale_pod_spec(&mut spec, 0.05).unwrap();
        let app = &spec["containers"][0];
        assert_eq!(app["startupProbe"]["initialDelaySeconds"], 21);
        assert_eq!(app["startupProbe"]["periodSeconds"], 3);
        assert_eq!(app["startupProbe"]["timeoutSeconds"], 5);
        assert_eq!(app["startupProbe"]["failureThreshold"], 10);
        assert_eq!(app["startupProbe"]["httpGet"]["path"], "/z");
        assert_eq!(app["readinessProbe"]["periodSeconds"], 1, "a period stays at least a second");
        assert!(app["readinessProbe"].get("initialDelaySeconds").is_none(), "nothing is added");
        assert_eq!(app["livenessProbe"]["initialDelaySeconds"], 3);
        assert_eq!(app["livenessProbe"]["periodSeconds"], 30, "a liveness probe keeps its period");
        assert!(spec["containers"][1].get("startupProbe").is_none());
    }

    #[test]
    fn a_delay_that_is_not_whole_seconds_names_the_container_and_probe() {
        let mut spec: Value =
            serde_yaml_ng::from_str("containers:\n- {name: web, livenessProbe: {initialDelaySeconds: soon}}\n")
                .unwrap();
        let err = format!("{:#}", scale_pod_spec(&mut spec, 0.5).unwrap_err());
        assert!(err.contains("container web: livenessProbe") && err.contains("initialDelaySeconds"), "{err}");
    }
}
