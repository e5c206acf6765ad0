//! Stand-in images that behave like the services they stand for, on a [`crate::RealNode`]: the one
//! static program of `tests/tools/standin` (built by `tests/tools/install.sh standin`), carried
//! under each original image name, with what it must do baked into that image's config.
//!
//! [`behaviours`] reads the rendered manifests (the objects an install really creates) and finds,
//! per image, what the kubelet will ask of it: the ports its containers declare and the ports and
//! paths their probes use (named ports resolved), whether a probe says HTTPS, the invocations that
//! must run to completion (init containers, Jobs), and the commands that pods and exec probes call.
//! [`image`] turns one into layers and a run configuration for [`crate::images`]: the program as
//! `/standin` (the entrypoint, one blob shared by every image) and at every command path, and
//! `STANDIN_SERVE`, `STANDIN_TLS`, `STANDIN_EXIT` in the config's environment.
//!
//! An exec probe or hook runs the program again inside the running container, where it is not
//! PID 1, and it exits 0: such a probe passes as long as the command it calls exists in the image.
//! That is the one thing checked of an exec probe.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::images::Files;
use crate::tools::tool;

/// Where the program sits in every stand-in image; the entrypoint.
pub const PROGRAM: &str = "/standin";

/// What one image must do, gathered from every container that runs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Port → the HTTP paths its probes ask (empty: only declared, or probed by TCP).
    pub serve: BTreeMap<u16, BTreeSet<String>>,
    /// Ports whose probes say HTTPS.
    pub tls: BTreeSet<u16>,
    /// The arguments (after the program's name) of each invocation that must run to completion.
    pub exit: BTreeSet<Vec<String>>,
    /// Whether any container runs it as a long-lived service (not an init container, not a Job).
    pub serves: bool,
    /// Absolute paths the pods call: `command[0]`, exec probes' and hooks' commands.
    pub commands: BTreeSet<String>,
}

/// Per image as the manifests name it, what it must do. Fails naming the object and container
/// when a probe names a port the container does not declare, or when one invocation of an image
/// is both a service and a run to completion.
pub fn behaviours(docs: &[Value]) -> Result<BTreeMap<String, Behaviour>> {
    let mut out: BTreeMap<String, Behaviour> = BTreeMap::new();
    let mut served_argv: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for doc in docs {
        let Some((spec, runs_to_completion)) = pod_spec(doc) else { continue };
        let what = format!(
            "{} {}/{}",
            doc["kind"].as_str().unwrap_or("?"),
            doc["metadata"]["namespace"].as_str().unwrap_or(""),
            doc["metadata"]["name"].as_str().unwrap_or("?")
        );
        for (list, init) in [("initContainers", true), ("containers", false)] {
            for c in spec[list].as_array().into_iter().flatten() {
                let image = c["image"].as_str().ok_or_else(|| anyhow!("{what}: a container without an image"))?;
                let name = c["name"].as_str().unwrap_or("?");
                let b = out.entry(image.to_string()).or_default();
                let argv = invocation(c);
                commands(c, &mut b.commands);
                if init || runs_to_completion {
                    b.exit.insert(argv);
                    continue;
                }
                b.serves = true;
                served_argv.entry(image.to_string()).or_default().insert(argv);
                serving(c, b).with_context(|| format!("{what}: container {name}"))?;
            }
        }
    }
    for (image, argvs) in &served_argv {
        if let Some(both) = argvs.iter().find(|a| out[image].exit.contains(*a)) {
            bail!("{image}: the invocation {both:?} is both a service and a run to completion");
        }
    }
    Ok(out)
}

/// The pod spec of a workload, and whether its pods run to completion (Jobs, CronJobs).
fn pod_spec(doc: &Value) -> Option<(&Value, bool)> {
    let spec = &doc["spec"];
    match doc["kind"].as_str()? {
        "Pod" => Some((spec, false)),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => Some((&spec["template"]["spec"], false)),
        "Job" => Some((&spec["template"]["spec"], true)),
        "CronJob" => Some((&spec["jobTemplate"]["spec"]["template"]["spec"], true)),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

/// The program's arguments as the runtime passes them: after `command[0]` when the pod names a
/// command, after the entrypoint otherwise.
fn invocation(c: &Value) -> Vec<String> {
    let command = strings(&c["command"]);
    command.into_iter().skip(1).chain(strings(&c["args"])).collect()
}

fn commands(c: &Value, into: &mut BTreeSet<String>) {
    let exec_commands = ["livenessProbe", "readinessProbe", "startupProbe"]
        .iter()
        .map(|p| &c[*p]["exec"]["command"])
        .chain(["postStart", "preStop"].iter().map(|h| &c["lifecycle"][*h]["exec"]["command"]));
    for command in std::iter::once(&c["command"]).chain(exec_commands) {
        if let Some(first) = strings(command).into_iter().next() {
            // A bare name is looked up in PATH, which the stand-in's config sets to /bin first.
            into.insert(if first.starts_with('/') { first } else { format!("/bin/{first}") });
        }
    }
}

/// The ports a serving container declares, and the ports and paths of its probes.
fn serving(c: &Value, b: &mut Behaviour) -> Result<()> {
    let mut named = BTreeMap::new();
    for p in c["ports"].as_array().into_iter().flatten() {
        let port = port_number(&p["containerPort"])?;
        b.serve.entry(port).or_default();
        if let Some(name) = p["name"].as_str() {
            named.insert(name.to_string(), port);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &c[probe];
        let resolve = |port: &Value| -> Result<u16> {
            match port {
                Value::String(name) if name.parse::<u16>().is_err() => named
                    .get(name)
                    .copied()
                    .ok_or_else(|| anyhow!("{probe} names the port {name:?}, which the container does not declare")),
                other => port_number(other),
            }
        };
        if p["httpGet"].is_object() {
            let port = resolve(&p["httpGet"]["port"])?;
            let path = p["httpGet"]["path"].as_str().unwrap_or("/");
            b.serve.entry(port).or_default().insert(path.split('?').next().unwrap_or(path).to_string());
            if p["httpGet"]["scheme"] == "HTTPS" {
                b.tls.insert(port);
            }
        } else if p["tcpSocket"].is_object() {
            b.serve.entry(resolve(&p["tcpSocket"]["port"])?).or_default();
        } else if p["grpc"].is_object() {
            bail!("{probe} is a gRPC probe, which the stand-in does not answer");
        }
    }
    Ok(())
}

fn port_number(v: &Value) -> Result<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|p| *p > 0)
    .ok_or_else(|| anyhow!("{v} is not a port"))
}

/// The layers and run configuration of one stand-in image: the program at [`PROGRAM`] in a layer
/// every stand-in shares, then a layer with a copy at each command path (a layer holds files
/// only), and the behaviour in the config's environment.
pub fn image(b: &Behaviour) -> Result<(Vec<Files>, Value)> {
    let program = program()?;
    let mut layers = vec![Files::from([(PROGRAM.trim_start_matches('/').to_string(), program.clone())])];
    let commands: Files = b
        .commands
        .iter()
        .filter(|c| *c != PROGRAM)
        .map(|c| (c.trim_start_matches('/').to_string(), program.clone()))
        .collect();
    if !commands.is_empty() {
        layers.push(commands);
    }
    let mut env = vec!["PATH=/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin".to_string()];
    if b.serves {
        let serve: BTreeMap<String, &BTreeSet<String>> = b.serve.iter().map(|(p, s)| (p.to_string(), s)).collect();
        env.push(format!("STANDIN_SERVE={}", serde_json::to_string(&serve)?));
        if !b.tls.is_empty() {
            env.push(format!("STANDIN_TLS={}", serde_json::to_string(&b.tls)?));
        }
        if !b.exit.is_empty() {
            env.push(format!("STANDIN_EXIT={}", serde_json::to_string(&b.exit)?));
        }
    }
    Ok((layers, json!({"Entrypoint": [PROGRAM], "Env": env})))
}

fn program() -> Result<Vec<u8>> {
    let path = tool("standin");
    fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        yaml.split("\n---\n").map(|d| serde_yaml_ng::from_str(d).unwrap()).collect()
    }

    #[test]
    fn ports_probes_and_runs_to_completion_are_found_per_image() {
        let found = behaviours(&docs(
            r#"
kind: Deployment
metadata: {name: web, namespace: a}
spec:
  template:
    spec:
      initContainers:
        - {name: wait, image: "app:1", command: [/bin/wait-for, db], args: ["$(DB_HOST)"]}
      containers:
        - name: app
          image: "app:1"
          ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]
          readinessProbe: {httpGet: {path: "/ready?full=1", port: http}}
          livenessProbe: {tcpSocket: {port: 9091}}
          startupProbe: {httpGet: {path: /tls, port: 8443, scheme: HTTPS}}
        - name: side
          image: "tools:2"
          livenessProbe: {exec: {command: [pg_isready, -h, localhost]}}
---
kind: Job
metadata: {name: load, namespace: a}
spec:
  template:
    spec:
      containers: [{name: load, image: "loader:3", args: [--all]}]
---
kind: ConfigMap
metadata: {name: x}
"#,
        ))
        .unwrap();
        let app = &found["app:1"];
        assert!(app.serves);
        let ports: Vec<u16> = app.serve.keys().copied().collect();
        assert_eq!(ports, [8080, 8443, 9090, 9091]);
        assert_eq!(app.serve[&8080], BTreeSet::from(["/ready".to_string()]));
        assert_eq!(app.tls, BTreeSet::from([8443]));
        assert_eq!(app.exit, BTreeSet::from([vec!["db".to_string(), "$(DB_HOST)".to_string()]]));
        assert_eq!(app.commands, BTreeSet::from(["/bin/wait-for".to_string()]));
        assert_eq!(found["tools:2"].commands, BTreeSet::from(["/bin/pg_isready".to_string()]));
        let loader = &found["loader:3"];
        assert!(!loader.serves && loader.serve.is_empty());
        assert_eq!(loader.exit, BTreeSet::from([vec!["--all".to_string()]]));
    }

    #[test]
    fn a_probe_on_an_undeclared_port_name_is_named() {
        let err = behaviours(&docs(
            "kind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  containers:\n    - {name: c, image: i, readinessProbe: {httpGet: {path: /, port: web}}}\n",
        ))
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("Pod n/p: container c") && text.contains("\"web\""), "{text}");
    }

    #[test]
    fn one_invocation_cannot_both_serve_and_run_to_completion() {
        let err = behaviours(&docs(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: a, image: i}]\n  containers: [{name: b, image: i}]\n",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("both a service and a run to completion"), "{err}");
    }
}
