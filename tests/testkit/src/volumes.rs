//! A stand-in for a cluster's volume provisioner, for a control plane whose nodes kwok simulates:
//! every PersistentVolumeClaim gets a PersistentVolume made for it (bound to it by `claimRef`, of
//! its class, size, access modes and volume mode), so the controller manager binds the claim and
//! the scheduler places the pods that mount it, as on a cluster with a provisioner. Nothing is
//! ever written to the volumes: no container runs.

use std::io::BufReader;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::proc::run_with_input;
use crate::tools::tool;

/// Watches the claims (`kubectl get --watch`, started again if the API server ends the watch)
/// until dropped.
pub(crate) struct VolumeProvisioner {
    stop: Arc<AtomicBool>,
    watcher: Arc<Mutex<Option<Child>>>,
    thread: Option<JoinHandle<()>>,
}

impl VolumeProvisioner {
    pub(crate) fn start(kubeconfig: &Path, log: &Path) -> Result<VolumeProvisioner> {
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Arc::new(Mutex::new(None));
        let (kubeconfig, log) = (kubeconfig.to_path_buf(), log.to_path_buf());
        let thread = {
            let (stop, watcher) = (stop.clone(), watcher.clone());
            std::thread::Builder::new()
                .name("testkit-volumes".into())
                .spawn(move || watch(&kubeconfig, &log, &stop, &watcher))
                .context("cannot start the volume provisioner's thread")?
        };
        Ok(VolumeProvisioner { stop, watcher, thread: Some(thread) })
    }
}

impl Drop for VolumeProvisioner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(child) = self.watcher.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = child.kill();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(kubeconfig: &Path, log: &Path, stop: &AtomicBool, watcher: &Mutex<Option<Child>>) {
    let note = |line: String| {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let spawned = Command::new(tool("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "persistentvolumeclaims", "--all-namespaces", "--watch", "--output", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                note(format!("cannot start kubectl: {e}"));
                return;
            }
        };
        let stdout = child.stdout.take().expect("piped stdout");
        *watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        // One JSON object per event, one after the other.
        for event in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>() {
            let Ok(object) = event else { break };
            let claims = match object["kind"].as_str() {
                Some("List") => object["items"].as_array().cloned().unwrap_or_default(),
                _ => vec![object],
            };
            for claim in claims {
                if let Err(e) = provision(kubeconfig, &claim) {
                    note(format!("claim {}/{}: {e:#}", claim["metadata"]["namespace"], claim["metadata"]["name"]));
                }
            }
        }
        if let Some(mut c) = watcher.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Makes the volume of a claim, unless it is bound already.
fn provision(kubeconfig: &Path, claim: &Value) -> Result<()> {
    let spec = &claim["spec"];
    if spec["volumeName"].as_str().is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    let meta = &claim["metadata"];
    let uid = meta["uid"].as_str().context("a claim without a uid")?;
    let pv = serde_json::json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": format!("testkit-{uid}")},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec["accessModes"],
            "storageClassName": spec["storageClassName"].as_str().unwrap_or(""),
            "volumeMode": spec["volumeMode"].as_str().unwrap_or("Filesystem"),
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": uid},
            "hostPath": {"path": format!("/testkit-volumes/{uid}")},
        },
    });
    run_with_input(
        Command::new(tool("kubectl")).arg("--kubeconfig").arg(kubeconfig).args(["apply", "-f", "-"]),
        Some(pv.to_string().as_bytes()),
    )
    .map(drop)
}
