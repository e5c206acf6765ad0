//! Stand-in images that behave like the services they stand for, on a [`crate::RealNode`]: the one
//! static program of `tests/tools/standin` (built by `tests/tools/install.sh standin`), carried
//! under each original image name, with what it must do baked into that image's config.
//!
//! [`behaviours`] reads the rendered manifests (the objects an install really creates) and finds,
//! per image and per invocation (the arguments its containers give it), what the kubelet and the
//! API server will ask of it: the ports its containers declare and the ports and paths their
//! probes use (named ports resolved), whether a probe says HTTPS, the ports where an admission
//! webhook configuration's Service sends the API server (and the Secret volume holding that
//! webhook's certificate), the invocations that must run to completion (init containers, Jobs,
//! CronJobs), and the commands that pods and exec probes call. [`image`] turns one into layers
//! and a run configuration for [`crate::images`]: the program as `/standin` (the entrypoint, one
//! blob shared by every image) and at every command path, and `STANDIN_SERVE`, `STANDIN_EXIT`
//! (and `STANDIN_CERTGEN`) in the config's environment.
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

/// How a container runs the program: the arguments after its name, as the pod spec writes them,
/// and the variables (literal in the manifest; unset is empty) whose values tell apart the roles
/// of one image's containers, such as an init container and a sidecar that differ only in `METHOD`.
#[derive(Debug, Default, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Invocation {
    /// The arguments after the program's name.
    pub args: Vec<String>,
    /// The variables that tell the roles apart.
    pub env: BTreeMap<String, String>,
}

impl Invocation {
    fn to_json(&self) -> Value {
        json!({"args": self.args, "env": self.env})
    }
}

/// What one image must do, gathered from every container that runs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// The long-lived services it runs as (not init containers, not Jobs), by invocation.
    pub services: BTreeMap<Invocation, Service>,
    /// The invocations that must run to completion.
    pub exit: BTreeSet<Invocation>,
    /// Absolute paths the pods call: `command[0]`, exec probes' and hooks' commands.
    pub commands: BTreeSet<String>,
    /// A pod that shares the host's process namespace runs it, where it is not PID 1 (and has no
    /// exec probe or hook: see [`behaviours`]).
    pub host_pid: bool,
    /// The image is kube-webhook-certgen: its `create` and `patch` runs make the webhook's
    /// certificate Secret and put its CA into the webhook configuration, as the tool does. Set by
    /// the caller, who knows the image; nothing in a manifest says it.
    pub certgen: bool,
}

impl Behaviour {
    /// Adds what another name of the same image must do (a manifest may name it by digest, or
    /// through the site registry's address).
    pub fn merge(&mut self, other: Behaviour) {
        for (invocation, s) in other.services {
            let mine = self.services.entry(invocation).or_default();
            for (port, paths) in s.serve {
                mine.serve.entry(port).or_default().extend(paths);
            }
            mine.tls.extend(s.tls);
            mine.webhooks.extend(s.webhooks);
        }
        self.exit.extend(other.exit);
        self.commands.extend(other.commands);
        self.certgen |= other.certgen;
        self.host_pid |= other.host_pid;
    }
}

/// One invocation of an image as a service.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Service {
    /// Port → the HTTP paths its probes ask (empty: only declared, or probed by TCP).
    pub serve: BTreeMap<u16, BTreeSet<String>>,
    /// Ports whose probes say HTTPS.
    pub tls: BTreeSet<u16>,
    /// Ports where the API server calls an admission webhook → the directory where the container
    /// mounts the Secret holding the webhook's certificate (kube-webhook-certgen's `cert`, `key`).
    pub webhooks: BTreeMap<u16, String>,
}

/// Per image as the manifests name it, what it must do; the `real` images (as the manifests name
/// them) run themselves and are left out. Fails naming the object and container when a probe names
/// a port the container does not declare, when one invocation of an image is both a service and a
/// run to completion, or when an admission webhook's Service leads to no container (or to one
/// without a Secret for its certificate).
pub fn behaviours(docs: &[Value], real: &[&str]) -> Result<BTreeMap<String, Behaviour>> {
    let roles = Roles::of(docs);
    let mut out: BTreeMap<String, Behaviour> = BTreeMap::new();
    for doc in docs {
        let Some((spec, runs_to_completion)) = pod_spec(doc) else { continue };
        let what = describe(doc);
        let host_pid = spec["hostPID"] == true;
        // The pod's serving containers: each answers the probes on the ports it declares.
        let mut serving: Vec<(&str, Invocation, &Value)> = Vec::new();
        for (list, init) in [("initContainers", true), ("containers", false)] {
            for c in spec[list].as_array().into_iter().flatten() {
                let image = c["image"].as_str().ok_or_else(|| anyhow!("{what}: a container without an image"))?;
                if real.contains(&image) {
                    continue;
                }
                let name = c["name"].as_str().unwrap_or("?");
                let b = out.entry(image.to_string()).or_default();
                let argv = roles.invocation(image, c);
                commands(c, &mut b.commands);
                let interpreters =
                    script_interpreters(docs, doc, spec, c).with_context(|| format!("{what}: container {name}"))?;
                b.commands.extend(interpreters);
                if init || runs_to_completion {
                    b.exit.insert(argv);
                    continue;
                }
                if host_pid {
                    if exec_commands(c).any(|e| !strings(e).is_empty()) {
                        bail!(
                            "{what}: container {name} shares the host's process namespace and has an exec probe or \
                             hook, which the stand-in cannot tell from itself"
                        );
                    }
                    b.host_pid = true;
                }
                b.services.entry(argv.clone()).or_default();
                serving.push((image, argv, c));
            }
        }
        // A port two containers of the pod declare is listened on by neither (only one could),
        // unless a probe asks for it, below.
        let mut declared: BTreeMap<u16, usize> = BTreeMap::new();
        for (_, _, c) in &serving {
            for p in c["ports"].as_array().into_iter().flatten() {
                *declared.entry(port_number(&p["containerPort"])?).or_default() += 1;
            }
        }
        for (image, argv, c) in &serving {
            let service = out.get_mut(*image).and_then(|b| b.services.get_mut(argv)).expect("a serving container");
            for p in c["ports"].as_array().into_iter().flatten() {
                let port = port_number(&p["containerPort"])?;
                if declared[&port] == 1 {
                    service.serve.entry(port).or_default();
                }
            }
        }
        for (i, (_, _, c)) in serving.iter().enumerate() {
            let name = c["name"].as_str().unwrap_or("?");
            for (port, path, tls) in probes(c).with_context(|| format!("{what}: container {name}"))? {
                // The kubelet probes the pod's address: the container declaring the port answers.
                let owner = if declares(c, port) {
                    i
                } else {
                    serving.iter().position(|(_, _, o)| declares(o, port)).unwrap_or(i)
                };
                let (image, argv, _) = &serving[owner];
                let service = out.get_mut(*image).and_then(|b| b.services.get_mut(argv)).expect("a serving container");
                service.serve.entry(port).or_default().extend(path);
                if tls {
                    service.tls.insert(port);
                }
            }
        }
    }
    for doc in docs.iter().filter(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("WebhookConfiguration"))) {
        for hook in doc["webhooks"].as_array().into_iter().flatten() {
            let service = &hook["clientConfig"]["service"];
            if service.is_object() {
                webhook_target(docs, service, real, &roles, &mut out)
                    .with_context(|| format!("{}: webhook {}", describe(doc), hook["name"].as_str().unwrap_or("?")))?;
            }
        }
    }
    for (image, b) in &out {
        if let Some(both) = b.services.keys().find(|a| b.exit.contains(*a)) {
            bail!("{image}: the invocation {both:?} is both a service and a run to completion");
        }
    }
    Ok(out)
}

fn describe(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
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

/// The labels of a workload's pods.
fn pod_labels(doc: &Value) -> &Value {
    match doc["kind"].as_str() {
        Some("Pod") => &doc["metadata"]["labels"],
        _ => &doc["spec"]["template"]["metadata"]["labels"],
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

/// The program's arguments as the runtime passes them: after `command[0]` when the pod names a
/// command, after the entrypoint otherwise.
fn arguments(c: &Value) -> Vec<String> {
    let command = strings(&c["command"]);
    command.into_iter().skip(1).chain(strings(&c["args"])).collect()
}

/// A container's variables whose values the manifest writes, unset ones as empty.
fn literal_env(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["valueFrom"].is_null())
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str().unwrap_or("").to_string())))
        .collect()
}

/// The variables that tell apart containers of one image with the same arguments where some run
/// to completion and others serve: those whose literal values differ between them. A variable
/// set in one container only is not among them (it may hold a value read from the cluster at
/// install time). Containers of one role need none: they run alike.
struct Roles(BTreeMap<(String, Vec<String>), BTreeSet<String>>);

impl Roles {
    fn of(docs: &[Value]) -> Roles {
        type Seen = Vec<(bool, BTreeMap<String, String>)>;
        let mut groups: BTreeMap<(String, Vec<String>), Seen> = BTreeMap::new();
        for (spec, runs_to_completion) in docs.iter().filter_map(pod_spec) {
            for (list, init) in [("initContainers", true), ("containers", false)] {
                for c in spec[list].as_array().into_iter().flatten() {
                    if let Some(image) = c["image"].as_str() {
                        let group = groups.entry((image.to_string(), arguments(c))).or_default();
                        group.push((init || runs_to_completion, literal_env(c)));
                    }
                }
            }
        }
        let differing = groups
            .into_iter()
            .filter(|(_, seen)| seen.iter().any(|(exits, _)| *exits) && seen.iter().any(|(exits, _)| !*exits))
            .map(|(key, seen)| {
                let names: BTreeSet<&String> = seen.iter().flat_map(|(_, e)| e.keys()).collect();
                let value = |e: &BTreeMap<String, String>, n: &String| e.get(n).cloned().unwrap_or_default();
                let differ = names
                    .into_iter()
                    .filter(|n| seen.iter().filter(|(_, e)| e.contains_key(*n)).count() > 1)
                    .filter(|n| seen.iter().any(|(_, e)| value(e, n) != value(&seen[0].1, n)))
                    .cloned()
                    .collect();
                (key, differ)
            })
            .collect();
        Roles(differing)
    }

    fn invocation(&self, image: &str, c: &Value) -> Invocation {
        let args = arguments(c);
        let names = self.0.get(&(image.to_string(), args.clone()));
        let env = literal_env(c);
        let env = names.into_iter().flatten().map(|n| (n.clone(), env.get(n).cloned().unwrap_or_default())).collect();
        Invocation { args, env }
    }
}

fn commands(c: &Value, into: &mut BTreeSet<String>) {
    for command in std::iter::once(&c["command"]).chain(exec_commands(c)) {
        if let Some(first) = strings(command).into_iter().next() {
            // A bare name is looked up in PATH, which the stand-in's config sets to /bin first.
            into.insert(if first.starts_with('/') { first } else { format!("/bin/{first}") });
        }
    }
}

/// The interpreters of the scripts a container runs that a ConfigMap volume mounts over the
/// image's files (a chart's `command: [/scripts/setup.sh]`): the kernel runs the one the script's
/// `#!` line names, so that path must be the program too. Fails naming the ConfigMap when it is in
/// no manifest, and the file when it is no script.
fn script_interpreters(docs: &[Value], doc: &Value, spec: &Value, c: &Value) -> Result<BTreeSet<String>> {
    let namespace = doc["metadata"]["namespace"].as_str();
    let mut out = BTreeSet::new();
    for command in std::iter::once(&c["command"]).chain(exec_commands(c)) {
        let Some(path) = strings(command).into_iter().next().filter(|p| p.starts_with('/')) else { continue };
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let mount = m["mountPath"].as_str().unwrap_or_default().trim_end_matches('/');
            let file = match m["subPath"].as_str().filter(|s| !s.is_empty()) {
                Some(sub) if path == mount => sub.to_string(),
                None => match path.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) {
                    Some(rest) => rest.to_string(),
                    None => continue,
                },
                Some(_) => continue,
            };
            let volume = spec["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == m["name"]);
            let Some(configmap) = volume.map(|v| &v["configMap"]).filter(|c| c.is_object()) else { continue };
            let cm_name = configmap["name"].as_str().unwrap_or_default();
            // `items` maps keys to other file names.
            let key = configmap["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["path"] == file.as_str())
                .and_then(|i| i["key"].as_str())
                .unwrap_or(&file);
            let found = docs.iter().find(|d| {
                d["kind"] == "ConfigMap"
                    && d["metadata"]["name"] == cm_name
                    && d["metadata"]["namespace"].as_str().is_none_or(|n| Some(n) == namespace)
            });
            let text = found
                .ok_or_else(|| anyhow!("it runs {path} from ConfigMap {cm_name}, which is in no manifest"))?["data"]
                [key]
                .as_str()
                .ok_or_else(|| anyhow!("it runs {path} from ConfigMap {cm_name}, which has no key {key}"))?;
            let interpreter = text
                .strip_prefix("#!")
                .and_then(|l| l.lines().next())
                .and_then(|l| l.split_whitespace().next())
                .ok_or_else(|| anyhow!("it runs {path} from ConfigMap {cm_name} key {key}, which is no script"))?;
            out.insert(interpreter.to_string());
        }
    }
    Ok(out)
}

/// The ports a container declares, by name.
fn named_ports(c: &Value) -> Result<BTreeMap<String, u16>> {
    let mut named = BTreeMap::new();
    for p in c["ports"].as_array().into_iter().flatten() {
        if let Some(name) = p["name"].as_str() {
            named.insert(name.to_string(), port_number(&p["containerPort"])?);
        }
    }
    Ok(named)
}

/// A port as a probe or Service names it (a number, or a name the container declares).
fn resolve(port: &Value, named: &BTreeMap<String, u16>, what: &str) -> Result<u16> {
    match port {
        Value::String(name) if name.parse::<u16>().is_err() => named
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("{what} names the port {name:?}, which the container does not declare")),
        other => port_number(other),
    }
}

/// The exec probes' and lifecycle hooks' commands of a container.
fn exec_commands(c: &Value) -> impl Iterator<Item = &Value> {
    ["livenessProbe", "readinessProbe", "startupProbe"]
        .iter()
        .map(|p| &c[*p]["exec"]["command"])
        .chain(["postStart", "preStop"].iter().map(|h| &c["lifecycle"][*h]["exec"]["command"]))
}

fn declares(c: &Value, port: u16) -> bool {
    c["ports"].as_array().into_iter().flatten().any(|p| port_number(&p["containerPort"]).ok() == Some(port))
}

/// A container's HTTP and TCP probes: the port (named ones resolved against the container's own
/// ports, as the kubelet does), the path an HTTP probe asks, and whether it says HTTPS.
fn probes(c: &Value) -> Result<Vec<(u16, Option<String>, bool)>> {
    let named = named_ports(c)?;
    let mut out = Vec::new();
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &c[probe];
        if p["httpGet"].is_object() {
            let port = resolve(&p["httpGet"]["port"], &named, probe)?;
            let path = p["httpGet"]["path"].as_str().unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path).to_string();
            out.push((port, Some(path), p["httpGet"]["scheme"] == "HTTPS"));
        } else if p["tcpSocket"].is_object() {
            out.push((resolve(&p["tcpSocket"]["port"], &named, probe)?, None, false));
        } else if p["grpc"].is_object() {
            bail!("{probe} is a gRPC probe, which the stand-in does not answer");
        }
    }
    Ok(out)
}

/// Where an admission webhook's Service (`clientConfig.service`) sends the API server: the
/// Service of that name (in that namespace, where the manifest says one), its port's target, the
/// serving containers of the workloads it selects that declare it, and the Secret volume each
/// mounts for the certificate. Rendered charts often leave namespaces to the release, so names
/// are matched in any manifest that does not say otherwise.
fn webhook_target(
    docs: &[Value],
    service: &Value,
    real: &[&str],
    roles: &Roles,
    out: &mut BTreeMap<String, Behaviour>,
) -> Result<()> {
    let (name, namespace) = (service["name"].as_str().unwrap_or(""), service["namespace"].as_str().unwrap_or(""));
    let in_namespace = |d: &Value| d["metadata"]["namespace"].as_str().is_none_or(|n| n == namespace);
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name && in_namespace(d))
        .ok_or_else(|| anyhow!("its Service {namespace}/{name} is in no manifest"))?;
    let port = service["port"].as_u64().unwrap_or(443);
    let target = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(port))
        .map(|p| if p["targetPort"].is_null() { p["port"].clone() } else { p["targetPort"].clone() })
        .ok_or_else(|| anyhow!("Service {namespace}/{name} has no port {port}"))?;
    let selector = svc["spec"]["selector"].as_object().filter(|s| !s.is_empty()).ok_or_else(|| {
        anyhow!("Service {namespace}/{name} selects no pods (a webhook served from outside the cluster)")
    })?;
    let mut found = 0;
    for doc in docs.iter().filter(|d| in_namespace(d)) {
        let Some((spec, false)) = pod_spec(doc) else { continue };
        let labels = pod_labels(doc);
        if !selector.iter().all(|(k, v)| &labels[k] == v) {
            continue;
        }
        for c in spec["containers"].as_array().into_iter().flatten() {
            let named = named_ports(c)?;
            let declared = |p: u16| {
                c["ports"].as_array().into_iter().flatten().any(|d| port_number(&d["containerPort"]).ok() == Some(p))
            };
            let Ok(port) = resolve(&target, &named, "the Service") else { continue };
            if !declared(port) {
                continue;
            }
            found += 1;
            let image = c["image"].as_str().unwrap_or_default();
            if real.contains(&image) {
                continue;
            }
            let certs = secret_mount(spec, c).with_context(|| {
                format!("{}: container {} serves the webhook", describe(doc), c["name"].as_str().unwrap_or("?"))
            })?;
            let service =
                out.entry(image.to_string()).or_default().services.entry(roles.invocation(image, c)).or_default();
            service.serve.entry(port).or_default();
            service.webhooks.insert(port, certs);
        }
    }
    if found == 0 {
        bail!("no container of the workloads Service {namespace}/{name} selects declares its target port {target}");
    }
    Ok(())
}

/// The directory where a container mounts the pod's one Secret volume.
fn secret_mount(spec: &Value, c: &Value) -> Result<String> {
    let secrets: BTreeSet<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["secret"].is_object())
        .filter_map(|v| v["name"].as_str())
        .collect();
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["name"].as_str().is_some_and(|n| secrets.contains(n)))
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    match mounts.as_slice() {
        [one] => Ok(one.to_string()),
        other => bail!("it mounts {} Secret volumes ({other:?}): which holds the webhook's certificate?", other.len()),
    }
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
    if !b.services.is_empty() {
        let services: Vec<Value> = b
            .services
            .iter()
            .map(|(args, s)| {
                let ports: BTreeMap<String, &BTreeSet<String>> =
                    s.serve.iter().map(|(p, v)| (p.to_string(), v)).collect();
                let webhooks: BTreeMap<String, &String> = s.webhooks.iter().map(|(p, d)| (p.to_string(), d)).collect();
                json!({"args": args.args, "env": args.env, "ports": ports, "tls": s.tls, "webhooks": webhooks})
            })
            .collect();
        env.push(format!("STANDIN_SERVE={}", serde_json::to_string(&services)?));
    }
    if !b.exit.is_empty() {
        let exits: Vec<Value> = b.exit.iter().map(Invocation::to_json).collect();
        env.push(format!("STANDIN_EXIT={}", serde_json::to_string(&exits)?));
    }
    if b.certgen {
        env.push("STANDIN_CERTGEN=1".to_string());
    }
    if b.host_pid {
        env.push("STANDIN_HOST_PID=1".to_string());
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

    fn args(a: &[&str]) -> Invocation {
        Invocation { args: a.iter().map(|s| s.to_string()).collect(), env: BTreeMap::new() }
    }

    #[test]
    fn ports_probes_and_runs_to_completion_are_found_per_image_and_invocation() {
        let found = behaviours(
            &docs(
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
kind: Deployment
metadata: {name: admin, namespace: a}
spec:
  template:
    spec:
      containers:
        - {name: app, image: "app:1", args: [admin], ports: [{containerPort: 7000}]}
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
            ),
            &[],
        )
        .unwrap();
        let app = &found["app:1"];
        assert_eq!(app.services.keys().cloned().collect::<Vec<_>>(), [args(&[]), args(&["admin"])]);
        let web = &app.services[&args(&[])];
        let ports: Vec<u16> = web.serve.keys().copied().collect();
        assert_eq!(ports, [8080, 8443, 9090, 9091]);
        assert_eq!(web.serve[&8080], BTreeSet::from(["/ready".to_string()]));
        assert_eq!(web.tls, BTreeSet::from([8443]));
        assert_eq!(app.services[&args(&["admin"])].serve.keys().copied().collect::<Vec<_>>(), [7000]);
        assert_eq!(app.exit, BTreeSet::from([args(&["db", "$(DB_HOST)"])]));
        assert_eq!(app.commands, BTreeSet::from(["/bin/wait-for".to_string()]));
        assert_eq!(found["tools:2"].commands, BTreeSet::from(["/bin/pg_isready".to_string()]));
        let loader = &found["loader:3"];
        assert!(loader.services.is_empty());
        assert_eq!(loader.exit, BTreeSet::from([args(&["--all"])]));
    }

    #[test]
    fn containers_of_one_image_in_different_roles_are_told_apart_by_the_variables_that_differ() {
        let found = behaviours(
            &docs(
                r#"
kind: Deployment
metadata: {name: grafana}
spec:
  template:
    spec:
      initContainers:
        - {name: list, image: "sidecar:1", env: [{name: METHOD, value: LIST}, {name: LABEL, value: l}]}
      containers:
        - name: watch
          image: "sidecar:1"
          env: [{name: METHOD}, {name: LABEL, value: l}, {name: TOKEN, value: "read at install"}]
          ports: [{containerPort: 8080}]
"#,
            ),
            &[],
        )
        .unwrap();
        let b = &found["sidecar:1"];
        let method = |v: &str| BTreeMap::from([("METHOD".to_string(), v.to_string())]);
        assert_eq!(b.exit, BTreeSet::from([Invocation { args: vec![], env: method("LIST") }]));
        assert_eq!(b.services.keys().cloned().collect::<Vec<_>>(), [Invocation { args: vec![], env: method("") }]);
    }

    #[test]
    fn a_probe_on_a_port_another_container_of_the_pod_declares_is_answered_by_that_one() {
        let found = behaviours(&docs(
            r#"
kind: Deployment
metadata: {name: grafana}
spec:
  template:
    spec:
      containers:
        - {name: grafana, image: "grafana:7", ports: [{containerPort: 3000}, {containerPort: 9000}], readinessProbe: {httpGet: {path: /api/health, port: 8080}}}
        - {name: proxy, image: "nginx:1", ports: [{containerPort: 8080}, {containerPort: 9000}]}
"#,
        ), &[])
        .unwrap();
        let serve = |image: &str| found[image].services[&args(&[])].serve.clone();
        assert_eq!(serve("grafana:7"), BTreeMap::from([(3000, BTreeSet::new())]), "9000 is declared twice");
        assert_eq!(serve("nginx:1"), BTreeMap::from([(8080, BTreeSet::from(["/api/health".to_string()]))]));
    }

    #[test]
    fn a_pod_in_the_hosts_process_namespace_runs_its_stand_in_as_the_service_without_exec_probes() {
        let pod = "kind: DaemonSet\nmetadata: {name: exporter}\nspec:\n  template:\n    spec:\n      hostPID: true\n      containers:\n        - {name: e, image: \"exporter:1\", ports: [{containerPort: 9796}]}\n";
        assert!(behaviours(&docs(pod), &[]).unwrap()["exporter:1"].host_pid);
        let probed = pod.replace("ports:", "livenessProbe: {exec: {command: [check]}}, ports:");
        let err = behaviours(&docs(&probed), &[]).unwrap_err().to_string();
        assert!(err.contains("container e shares the host's process namespace"), "{err}");
    }

    #[test]
    fn an_admission_webhook_is_served_where_its_service_leads_with_the_mounted_certificate() {
        let webhook = r#"
kind: ValidatingWebhookConfiguration
metadata: {name: admission}
webhooks:
  - name: validate.example
    clientConfig: {service: {namespace: ingress, name: controller-admission, path: /validate}}
---
kind: Service
metadata: {name: controller-admission}
spec:
  selector: {app: controller}
  ports: [{port: 443, targetPort: webhook}]
---
kind: Deployment
metadata: {name: controller}
spec:
  template:
    metadata: {labels: {app: controller, tier: edge}}
    spec:
      volumes: [{name: cert, secret: {secretName: admission}}, {name: conf, configMap: {name: c}}]
      containers:
        - name: controller
          image: "controller:1"
          args: [--webhook=:8443]
          ports: [{name: http, containerPort: 80}, {name: webhook, containerPort: 8443}]
          volumeMounts: [{name: cert, mountPath: /certs}, {name: conf, mountPath: /etc/conf}]
"#;
        let found = behaviours(&docs(webhook), &[]).unwrap();
        let service = &found["controller:1"].services[&args(&["--webhook=:8443"])];
        assert_eq!(service.webhooks, BTreeMap::from([(8443, "/certs".to_string())]));
        assert_eq!(service.serve.keys().copied().collect::<Vec<_>>(), [80, 8443]);

        let no_secret = webhook.replace("{name: cert, mountPath: /certs}, ", "");
        let err = format!("{:#}", behaviours(&docs(&no_secret), &[]).unwrap_err());
        assert!(err.contains("webhook validate.example") && err.contains("mounts 0 Secret volumes"), "{err}");
        let real = behaviours(&docs(&no_secret), &["controller:1"]).unwrap();
        assert!(real.is_empty(), "a real image is left to itself: {real:?}");
        let elsewhere = webhook.replace("targetPort: webhook", "targetPort: 9443");
        let err = format!("{:#}", behaviours(&docs(&elsewhere), &[]).unwrap_err());
        assert!(err.contains("declares its target port 9443"), "{err}");
    }

    #[test]
    fn a_script_a_configmap_mounts_over_the_command_brings_its_interpreter() {
        let pod = r##"
kind: StatefulSet
metadata: {name: kafka, namespace: kafka}
spec:
  template:
    spec:
      volumes: [{name: scripts, configMap: {name: kafka-scripts, defaultMode: 0755}}]
      containers:
        - name: kafka
          image: "kafka:2"
          command: [/scripts/setup.sh]
          volumeMounts: [{name: scripts, mountPath: /scripts/setup.sh, subPath: setup.sh}]
---
kind: ConfigMap
metadata: {name: kafka-scripts, namespace: kafka}
data: {setup.sh: "#!/bin/bash -e\nexec kafka-server-start.sh\n"}
"##;
        let found = behaviours(&docs(pod), &[]).unwrap();
        let commands: Vec<&str> = found["kafka:2"].commands.iter().map(String::as_str).collect();
        assert_eq!(commands, ["/bin/bash", "/scripts/setup.sh"]);
        let missing = pod.replace("name: kafka-scripts, namespace", "name: other, namespace");
        let err = format!("{:#}", behaviours(&docs(&missing), &[]).unwrap_err());
        assert!(
            err.contains("StatefulSet kafka/kafka: container kafka") && err.contains("ConfigMap kafka-scripts"),
            "{err}"
        );
        let binary = pod.replace("#!/bin/bash -e", "ELF");
        let err = format!("{:#}", behaviours(&docs(&binary), &[]).unwrap_err());
        assert!(err.contains("key setup.sh, which is no script"), "{err}");
    }

    #[test]
    fn a_probe_on_an_undeclared_port_name_is_named() {
        let err = behaviours(&docs(
            "kind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  containers:\n    - {name: c, image: i, readinessProbe: {httpGet: {path: /, port: web}}}\n",
        ), &[])
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("Pod n/p: container c") && text.contains("\"web\""), "{text}");
    }

    #[test]
    fn one_invocation_cannot_both_serve_and_run_to_completion() {
        let err = behaviours(&docs(
            "kind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: a, image: i}]\n  containers: [{name: b, image: i}]\n",
        ), &[])
        .unwrap_err();
        assert!(err.to_string().contains("both a service and a run to completion"), "{err}");
    }
}
