//! A real dynamic volume provisioner for a control plane with [`crate::RealNode`]s: Rancher's
//! local-path-provisioner (built from its Go module by `tests/tools/install.sh local-path`), run
//! beside the control plane with its admin kubeconfig, as a cluster's storage add-on would run.
//! It provisions each claim of the classes it backs: a directory made on the pod's node by a helper
//! pod (ReadWriteOnce), or in one directory that every node shares (ReadWriteMany: the nodes of
//! this machine share its filesystem, so the sharing is real), bound and mounted by the kubelet.
//!
//! The helper pods run Debian's static busybox as an image that [`LocalPathProvisioner::helper_image`]
//! writes and the test imports into each node ([`crate::RealNode::import_image`]): it is part of the
//! test cluster, not of what a site installs, so it is never pulled (`imagePullPolicy: Never`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;
use tempfile::TempDir;

use crate::images::{write_archive, Files, ImageSpec};
use crate::kube::KubeControlPlane;
use crate::proc::{run_with_input, Proc};
use crate::tools::tool;

/// The provisioner's name, which its classes name.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The helper pods' image: a name of the test's own, never pulled.
pub const HELPER_IMAGE: &str = "testkit.invalid/local-path-helper:busybox";
const NAMESPACE: &str = "local-path-storage";
const BUSYBOX: &str = "/bin/busybox";

/// A storage class the provisioner makes and backs.
pub struct StorageClass<'a> {
    /// The class's name, which claims give as `storageClassName`.
    pub name: &'a str,
    /// ReadWriteMany: every claim in one directory all nodes share.
    pub shared: bool,
    /// `Retain` keeps a released claim's directory, `Delete` removes it.
    pub reclaim: &'a str,
    /// Marked as the cluster's default class.
    pub default: bool,
}

/// A storage class the provisioner backs that something else makes (the cluster as it comes, or
/// the install under test), under whatever provisioner name that class gives.
pub struct Served<'a> {
    /// The class's name.
    pub name: &'a str,
    /// ReadWriteMany: every claim in one directory all nodes share.
    pub shared: bool,
}

/// The provisioner, running beside a control plane until dropped.
pub struct LocalPathProvisioner {
    _proc: Proc,
    dir: TempDir,
}

impl LocalPathProvisioner {
    /// Makes `classes` in the cluster and starts the provisioner for them.
    pub fn start(plane: &KubeControlPlane, classes: &[StorageClass<'_>]) -> Result<LocalPathProvisioner> {
        let mut objects = Vec::new();
        for c in classes {
            let annotations =
                if c.default { json!({"storageclass.kubernetes.io/is-default-class": "true"}) } else { json!({}) };
            objects.push(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": c.name, "annotations": annotations},
                "provisioner": PROVISIONER,
                "reclaimPolicy": c.reclaim,
                "volumeBindingMode": "WaitForFirstConsumer",
            }));
        }
        let served: Vec<Served> = classes.iter().map(|c| Served { name: c.name, shared: c.shared }).collect();
        Self::run(plane, PROVISIONER, &[], &served, objects)
    }

    /// Starts a provisioner answering to the name `provisioner` for `classes`, which it does not
    /// make: a cluster's storage add-on standing in for the one a site's classes name. Classes
    /// naming a provisioner in `migrated` are served too, as a CSI driver serves those of the
    /// in-tree plugin it replaces under CSI migration: the Kubernetes controller manager hands
    /// the claims of EKS's `gp2` (`kubernetes.io/aws-ebs`) to `ebs.csi.aws.com`. Several run side
    /// by side in one cluster, one per name.
    pub fn serve(
        plane: &KubeControlPlane,
        provisioner: &str,
        migrated: &[&str],
        classes: &[Served<'_>],
    ) -> Result<LocalPathProvisioner> {
        Self::run(plane, provisioner, migrated, classes, Vec::new())
    }

    fn run(
        plane: &KubeControlPlane,
        provisioner: &str,
        migrated: &[&str],
        classes: &[Served<'_>],
        mut objects: Vec<serde_json::Value>,
    ) -> Result<LocalPathProvisioner> {
        let dir = tempfile::Builder::new().prefix("testkit-local-path-").tempdir()?;
        let (local, shared) = (dir.path().join("local"), dir.path().join("shared"));
        fs::create_dir_all(&local)?;
        fs::create_dir_all(&shared)?;
        let mut configs = serde_json::Map::new();
        for c in classes {
            configs.insert(
                c.name.to_string(),
                if c.shared {
                    json!({"sharedFileSystemPath": shared})
                } else {
                    json!({"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [local]}]})
                },
            );
        }
        let config = json!({"storageClassConfigs": configs});
        // The helper pod of upstream's deploy/local-path-storage.yaml, with the test's image.
        let helper = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: helper-pod\nspec:\n  containers:\n  - name: helper-pod\n    image: {HELPER_IMAGE}\n    imagePullPolicy: Never\n"
        );
        let configmap = format!("local-path-config-{}", provisioner.replace(['/', '.'], "-"));
        objects.extend([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "local-path-provisioner", "namespace": NAMESPACE}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap, "namespace": NAMESPACE},
            "data": {
                "config.json": config.to_string(),
                "setup": "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n",
                "teardown": "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n",
                "helperPod.yaml": helper,
            }}),
        ]);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        run_with_input(
            Command::new(tool("kubectl")).arg("--kubeconfig").arg(plane.kubeconfig()).args(["apply", "-f", "-"]),
            Some(list.to_string().as_bytes()),
        )
        .with_context(|| format!("making the local-path provisioner's namespace and configuration ({provisioner})"))?;
        let proc = Proc::spawn(
            "local-path-provisioner",
            Command::new(tool("local-path-provisioner"))
                .arg("--debug")
                .arg("start")
                .arg("--kubeconfig")
                .arg(plane.kubeconfig())
                .args(["--namespace", NAMESPACE, "--configmap-name", &configmap])
                .args(["--service-account-name", "local-path-provisioner", "--helper-image", HELPER_IMAGE])
                .args(["--provisioner-name", provisioner])
                // Read by the build of `tests/tools/install.sh local-path`.
                .env("LOCAL_PATH_ADDITIONAL_PROVISIONER_NAMES", migrated.join(",")),
            dir.path(),
        )?;
        Ok(LocalPathProvisioner { _proc: proc, dir })
    }

    /// Writes the helper image as an OCI archive for [`crate::RealNode::import_image`]: busybox
    /// as `sh`, `mkdir` and `rm`, what the setup and teardown scripts run.
    pub fn helper_image(dir: &Path) -> Result<PathBuf> {
        let busybox = fs::read(BUSYBOX)
            .with_context(|| format!("reading {BUSYBOX}: install Debian's busybox-static (tests/tools/install.sh)"))?;
        let files: Files = ["sh", "mkdir", "rm"].iter().map(|a| (format!("bin/{a}"), busybox.clone())).collect();
        let archive = dir.join("local-path-helper.tar");
        let image = ImageSpec { reference: HELPER_IMAGE, platforms: &["linux/amd64"], shared_layers: &[files] };
        write_archive(&archive, &[image])?;
        Ok(archive)
    }

    /// The directories it provisions in: `local` (ReadWriteOnce) and `shared` (ReadWriteMany).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}
