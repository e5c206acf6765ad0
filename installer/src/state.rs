//! The install's state lives in the cluster it describes: a ConfigMap per plan cluster in the
//! `airgap-system` namespace records each step's status and the hash of its inputs, and a Lease
//! keeps two installers from working on one cluster at once. Beside the record, a step's live
//! health says whether what it made is there and ready now.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cluster::MANAGER;
use crate::plan::{Step, StepAction};
use crate::wait;

pub const NAMESPACE: &str = "airgap-system";
/// A holder that stops renewing loses the lock after this long (a killed installer).
const LEASE_SECONDS: i32 = 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepState {
    /// `running`, `done` or `failed`.
    pub status: String,
    pub hash: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

pub struct State {
    api: Api<ConfigMap>,
    name: String,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl State {
    pub fn new(client: &Client, cluster: &str) -> State {
        State { api: Api::namespaced(client.clone(), NAMESPACE), name: format!("airgap-install-{cluster}") }
    }

    pub async fn ensure_namespace(client: &Client) -> Result<()> {
        let ns: Namespace =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))?;
        Api::<Namespace>::all(client.clone())
            .patch(NAMESPACE, &PatchParams::apply(MANAGER), &Patch::Apply(&ns))
            .await
            .context("creating the airgap-system namespace")?;
        Ok(())
    }

    /// Every recorded step; empty when nothing was ever installed.
    pub async fn read(&self) -> Result<BTreeMap<String, StepState>> {
        let Some(cm) = self.api.get_opt(&self.name).await.context("reading the install state")? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for (id, text) in cm.data.unwrap_or_default() {
            let s: StepState = serde_json::from_str(&text)
                .with_context(|| format!("configmap {NAMESPACE}/{}: key {id} is not a step state", self.name))?;
            out.insert(id, s);
        }
        Ok(out)
    }

    pub async fn record(&self, step: &str, status: &str, hash: &str, message: &str) -> Result<()> {
        let s = StepState { status: status.into(), hash: hash.into(), at: now(), message: message.into() };
        let patch = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": NAMESPACE},
            "data": {step: serde_json::to_string(&s)?},
        });
        // A field manager per step: each apply owns only its own key, so the others stay.
        let manager = format!("{MANAGER}-{}", step.chars().take(100).collect::<String>());
        self.api
            .patch(&self.name, &PatchParams::apply(&manager).force(), &Patch::Apply(&patch))
            .await
            .with_context(|| format!("recording step {step}"))?;
        Ok(())
    }
}

/// A step's health now, read from the cluster alone (no rendering): its namespace, ConfigMap or
/// Secret is there with its keys, and what it waits for is ready. `install verify` checks every
/// object a step renders.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "health", content = "detail", rename_all = "lowercase")]
pub enum Live {
    Healthy(String),
    Unhealthy(String),
    /// Nothing of the step can be checked without rendering it.
    Unknown,
}

impl std::fmt::Display for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Live::Healthy(what) => write!(f, "healthy: {what}"),
            Live::Unhealthy(why) => write!(f, "UNHEALTHY: {why}"),
            Live::Unknown => write!(f, "not known without rendering (install verify)"),
        }
    }
}

pub async fn live_health(client: &Client, step: &Step) -> Result<Live> {
    let mut seen = Vec::new();
    if let StepAction::Namespace(ns) = &step.action {
        if Api::<Namespace>::all(client.clone()).get_opt(&ns.name).await?.is_none() {
            return Ok(Live::Unhealthy(format!("namespace {} does not exist", ns.name)));
        }
        seen.push(format!("namespace {}", ns.name));
    }
    let data = match &step.action {
        StepAction::ConfigMap(made) => Some(("ConfigMap", made)),
        StepAction::Secret(made) => Some(("Secret", made)),
        _ => None,
    };
    if let Some((kind, made)) = data {
        let keys: Option<Vec<String>> = match kind {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), &made.namespace)
                .get_opt(&made.name)
                .await?
                .map(|c| c.data.unwrap_or_default().into_keys().collect()),
            _ => Api::<Secret>::namespaced(client.clone(), &made.namespace)
                .get_opt(&made.name)
                .await?
                .map(|s| s.data.unwrap_or_default().into_keys().collect()),
        };
        let what = format!("{kind} {}/{}", made.namespace, made.name);
        match keys {
            None => return Ok(Live::Unhealthy(format!("{what} does not exist"))),
            Some(keys) => {
                if let Some(missing) = made.data.keys().find(|k| !keys.contains(k)) {
                    return Ok(Live::Unhealthy(format!("{what} has no key {missing}")));
                }
            }
        }
        seen.push(what);
    }
    for w in &step.wait {
        if let Some(why) = wait::ready_now(client, w).await? {
            return Ok(Live::Unhealthy(why));
        }
        seen.push(format!("{:?} {}/{} ready", w.kind, w.namespace, w.name));
    }
    Ok(if seen.is_empty() { Live::Unknown } else { Live::Healthy(seen.join(", ")) })
}

/// The installer's lock on one cluster, renewed in the background while held.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lock {
    pub async fn acquire(client: &Client, cluster: &str) -> Result<Lock> {
        let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
        let name = format!("airgap-install-{cluster}");
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let holder = format!("{}:{}", host.trim(), std::process::id());
        let now = MicroTime(chrono_now());
        let mut lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS},
        }))?;
        lease.spec.as_mut().unwrap().acquire_time = Some(now.clone());
        lease.spec.as_mut().unwrap().renew_time = Some(now);
        match api.create(&PostParams::default(), &lease).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let current = api.get(&name).await?;
                let spec = current.spec.clone().unwrap_or_default();
                let renewed = spec.renew_time.map(|t| t.0);
                let expired = renewed.is_none_or(|t| {
                    chrono_now() - t > chrono_duration(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS))
                });
                let gone = spec.holder_identity.as_deref().is_some_and(|h| holder_is_gone(h, host.trim()));
                if !expired && !gone && spec.holder_identity.as_deref() != Some(&holder) {
                    bail!(
                        "another installer ({}) holds the lock on cluster {cluster} (lease {NAMESPACE}/{name}, renewed {}); wait for it, or delete the lease if that installer is gone",
                        spec.holder_identity.unwrap_or_default(),
                        renewed.map(|t| t.to_rfc3339()).unwrap_or_default()
                    );
                }
                // Taken over from a holder that stopped renewing; the resourceVersion makes two
                // installers racing for it conflict instead of both winning.
                lease.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &lease)
                    .await
                    .with_context(|| format!("taking over the lock {NAMESPACE}/{name}"))?;
            }
            Err(e) => return Err(e).context("taking the install lock"),
        }
        let renewer = tokio::spawn(renew(api.clone(), name.clone()));
        Ok(Lock { api, name, holder, renewer })
    }

    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let current = self.api.get_opt(&self.name).await?;
        if current.and_then(|l| l.spec).and_then(|s| s.holder_identity).as_deref() == Some(&self.holder) {
            self.api.delete(&self.name, &Default::default()).await?;
        }
        Ok(())
    }
}

/// A holder on this machine whose process no longer exists (an installer that was killed) need
/// not be waited for until its lease runs out.
fn holder_is_gone(holder: &str, this_host: &str) -> bool {
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == this_host => {
            pid.parse::<u32>().is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        }
        _ => false,
    }
}

async fn renew(api: Api<Lease>, name: String) {
    loop {
        tokio::time::sleep(Duration::from_secs((LEASE_SECONDS / 3) as u64)).await;
        let patch = json!({"spec": {"renewTime": MicroTime(chrono_now())}});
        let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
    }
}

fn chrono_now() -> k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc> {
    k8s_openapi::chrono::Utc::now()
}

fn chrono_duration(seconds: i32) -> k8s_openapi::chrono::TimeDelta {
    k8s_openapi::chrono::TimeDelta::seconds(seconds.into())
}
