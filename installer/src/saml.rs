//! The `saml` step: operators sign in to Rancher with their Keycloak accounts (the guide's
//! "Keycloak - Rancher Integration", done by hand in both UIs upstream).
//!
//! Keycloak's side is the SAML client and mappers of the carried `keycloak_client.json` (its
//! Rancher host replaced by the site's). Keycloak's admin API wants a bearer token, which the API
//! server's service proxy would drop (kubernetes#38775), so the client is imported from inside
//! the cluster: a Job on the Keycloak image the bundle already carries runs Keycloak's own admin
//! CLI (`kcadm.sh`), logs in with the admin password of the chart's Secret (it never leaves the
//! cluster), and sends the file through Keycloak's partial import, which replaces the client with
//! the file's (its mappers included). The import's SHA-256 is kept as a client attribute: a Job
//! that finds it there changes nothing. The Job's name holds the same digest, so a changed file
//! or host runs a new Job (Jobs cannot be changed). The Job is kept once finished, as the
//! step's other objects are: `install verify` looks for it.
//!
//! Rancher's side is its `AuthConfig` of the provider, applied as Rancher's own API stores it:
//! the site's SP certificate, the SP key in a Secret of `cattle-global-data` that the AuthConfig
//! names, the guide's attribute fields, and Keycloak's IdP metadata, read through the service
//! proxy when the step runs (it is public, and made by Keycloak at its first start). Rancher's
//! SAML controller sets the provider up whenever an enabled AuthConfig changes.
//!
//! The site file's `saml` section: `{sp_cert, sp_key}`, PEM files relative to the site file (the
//! guide makes them with openssl).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use serde_yaml_ng::Value;
use sha2::{Digest as _, Sha256};

use crate::cluster::Cluster;
use crate::plan::Source;
use crate::site::Site;

/// Where Rancher keeps the secrets its auth configs name (`common.SecretsNamespace`).
const RANCHER_SECRETS: &str = "cattle-global-data";
/// The client attribute that holds the digest of the import that made the client.
const DIGEST_ATTRIBUTE: &str = "airgap.import.sha256";
/// The Job's program, run by `sh`; its inputs come from the environment (`KCADM` and
/// `KCADM_CONFIG` may be set to run it elsewhere than in the image).
const SCRIPT: &str = r#"set -eu
kcadm="${KCADM:-$KCADM_PATH}"
config="${KCADM_CONFIG:-/tmp/kcadm.config}"
"$kcadm" config credentials --config "$config" --server "$KEYCLOAK_URL" --realm master \
  --user "$KEYCLOAK_ADMIN_USER" --password "$KEYCLOAK_ADMIN_PASSWORD"
held=$("$kcadm" get clients --config "$config" -r "$REALM" -q "clientId=$CLIENT_ID" --fields 'attributes(*)')
case "$held" in
  *"$IMPORT_SHA256"*) echo "client $CLIENT_ID of realm $REALM already holds import $IMPORT_SHA256"; exit 0 ;;
esac
"$kcadm" create partialImport --config "$config" -r "$REALM" -f "$IMPORT_FILE"
echo "client $CLIENT_ID of realm $REALM imported ($IMPORT_SHA256)"
"#;

/// A plan's `saml:` step: Keycloak's SAML client for Rancher, imported by a Job, and Rancher's AuthConfig pointing at
/// it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saml {
    /// Where Keycloak runs and how the import Job reaches it as admin.
    pub keycloak: Keycloak,
    /// The carried client file: `{git, path}` in a repository of the bundle, or `{file}`.
    pub client: Source,
    /// Text replaced in the client file (its Rancher host), `${site.<path>}` in the values.
    #[serde(default)]
    pub replace: BTreeMap<String, String>,
    /// The AuthConfig written in Rancher.
    pub rancher: Rancher,
}

/// The Keycloak the client is imported into.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keycloak {
    /// Keycloak's namespace; the import Job runs there.
    pub namespace: String,
    /// The Service in front of Keycloak, in `namespace`.
    pub service: String,
    /// The Service's port (plain HTTP inside the cluster).
    pub port: u16,
    /// Keycloak's path on it (`/auth` up to Keycloak 16).
    #[serde(default)]
    pub path: String,
    /// The realm the client goes into; it must exist.
    pub realm: String,
    /// The carried Keycloak image the Job runs, and its admin CLI in it.
    pub image: String,
    /// The path of `kcadm.sh` inside `image`.
    pub kcadm: String,
    /// The admin's name: a key of a ConfigMap in `namespace`.
    pub admin_user: KeyRef,
    /// The admin's password: a key of a Secret in `namespace`.
    pub admin_password: KeyRef,
}

/// One key of a ConfigMap or Secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// The object's name.
    pub name: String,
    /// The key in it.
    pub key: String,
}

/// Rancher's side: which AuthConfig to write, and its fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rancher {
    /// The AuthConfig of the provider (`keycloak`) and its type (`keyCloakConfig`).
    pub auth_config: String,
    /// The AuthConfig's `type` (`keyCloakConfig`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Fields of the AuthConfig as Rancher's API names them (`displayNameField`, `entityID`…);
    /// `${site.<path>}` is replaced in the values.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct SiteView {
    saml: SiteSaml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSaml {
    sp_cert: String,
    sp_key: String,
}

/// The step made concrete for the site: what `apply` sends.
#[derive(Debug, Serialize)]
pub struct Prepared {
    /// The import's ConfigMap and the Job, as the plan writes them (post-rendered by the caller).
    pub keycloak: Vec<Value>,
    /// The SP key's Secret and the AuthConfig without its IdP metadata.
    pub rancher: Vec<Value>,
    /// Keycloak's Service and the path of the realm's IdP metadata on it.
    pub metadata: (String, String, u16, String),
}

impl Saml {
    /// What can be checked when the plan loads; the plan checks that `client` is carried.
    pub fn check(&self) -> Result<()> {
        if self.rancher.fields.contains_key("idpMetadataContent") || self.rancher.fields.contains_key("spKey") {
            bail!("saml.rancher.fields: the IdP metadata and the SP key are not written in the plan");
        }
        Ok(())
    }

    /// The step's objects from the carried client file, with `${site.…}` replaced by `sub`. The
    /// site's SP key pair is read only for a step that runs (`runs`): a site that leaves the
    /// component off need not have one.
    pub fn prepare(
        &self,
        step_id: &str,
        client_file: &[u8],
        site: &Site,
        sub: &dyn Fn(&str) -> Result<String>,
        runs: bool,
    ) -> Result<Prepared> {
        let mut text = String::from_utf8(client_file.to_vec()).context("the client file is not UTF-8")?;
        for (from, to) in &self.replace {
            if !text.contains(from.as_str()) {
                bail!("the client file holds no {from:?} to replace");
            }
            text = text.replace(from.as_str(), &sub(to)?);
        }
        let client: Json = serde_json::from_str(&text).context("the client file is not JSON")?;
        let (import, digest) = import(client.clone())?;
        let client_id = client["clientId"].as_str().ok_or_else(|| anyhow!("the client file has no clientId"))?;
        let k = &self.keycloak;
        let configmap = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": step_id, "namespace": k.namespace},
            "data": {"import.json": serde_json::to_string_pretty(&import)?},
        });
        let env = [
            ("KEYCLOAK_URL", json!(format!("http://{}.{}.svc:{}{}", k.service, k.namespace, k.port, k.path))),
            ("REALM", json!(k.realm)),
            ("CLIENT_ID", json!(client_id)),
            ("IMPORT_SHA256", json!(digest)),
            ("KCADM_PATH", json!(k.kcadm)),
            ("IMPORT_FILE", json!("/import/import.json")),
        ];
        let mut env: Vec<Json> = env.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
        env.push(json!({"name": "KEYCLOAK_ADMIN_USER", "valueFrom": {"configMapKeyRef": {"name": k.admin_user.name, "key": k.admin_user.key}}}));
        env.push(json!({"name": "KEYCLOAK_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": k.admin_password.name, "key": k.admin_password.key}}}));
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("{step_id}-{}", &digest[..10]), "namespace": k.namespace},
            "spec": {
                "backoffLimit": 3,
                "template": {
                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "import", "image": k.image,
                            "command": ["sh", "-c", SCRIPT],
                            "env": env,
                            "volumeMounts": [{"name": "import", "mountPath": "/import"}, {"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": [{"name": "import", "configMap": {"name": step_id}}, {"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        });
        Ok(Prepared {
            keycloak: vec![serde_yaml_ng::to_value(configmap)?, serde_yaml_ng::to_value(job)?],
            rancher: self.rancher_objects(site, sub, runs)?,
            metadata: (
                k.namespace.clone(),
                k.service.clone(),
                k.port,
                format!("{}/realms/{}/protocol/saml/descriptor", k.path, k.realm),
            ),
        })
    }

    fn rancher_objects(&self, site: &Site, sub: &dyn Fn(&str) -> Result<String>, runs: bool) -> Result<Vec<Value>> {
        let (sp_cert, sp_key) = match runs {
            true => {
                let files = site.view::<SiteView>()?.saml;
                let read = |written: &str, what: &str| {
                    let path = site.resolve_path(written);
                    std::fs::read_to_string(&path).with_context(|| {
                        format!("{}: saml.{what} names {}, which cannot be read", site.path().display(), path.display())
                    })
                };
                (read(&files.sp_cert, "sp_cert")?, read(&files.sp_key, "sp_key")?)
            }
            false => ("(saml.sp_cert)".to_string(), "(saml.sp_key)".to_string()),
        };
        let r = &self.rancher;
        let secret_name = format!("{}config-spkey", r.auth_config);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": RANCHER_SECRETS},
            "stringData": {"spkey": sp_key},
        });
        let mut config = json!({
            "apiVersion": "management.cattle.io/v3", "kind": "AuthConfig",
            "metadata": {"name": r.auth_config},
            "type": r.kind, "enabled": true,
            "spCert": sp_cert, "spKey": format!("{RANCHER_SECRETS}:{secret_name}"),
        });
        for (k, v) in &r.fields {
            config[k] = json!(sub(v)?);
        }
        Ok(vec![serde_yaml_ng::to_value(secret)?, serde_yaml_ng::to_value(config)?])
    }
}

/// Keycloak's partial import of one client that replaces the realm's client of the same id, and
/// its digest, which the client then carries as an attribute.
fn import(mut client: Json) -> Result<(Json, String)> {
    let digest = hex::encode(Sha256::digest(serde_json::to_vec(&client)?));
    let attributes = client
        .as_object_mut()
        .ok_or_else(|| anyhow!("the client file is not a JSON object"))?
        .entry("attributes")
        .or_insert_with(|| json!({}));
    attributes
        .as_object_mut()
        .ok_or_else(|| anyhow!("the client's attributes are not an object"))?
        .insert(DIGEST_ATTRIBUTE.into(), json!(digest));
    Ok((json!({"ifResourceExists": "OVERWRITE", "clients": [client]}), digest))
}

impl Prepared {
    /// One line for `install plan`: what the step creates and where.
    pub fn summary(&self) -> String {
        let (ns, name, port, _) = &self.metadata;
        format!("SAML: Keycloak client imported by a Job in {ns}, Rancher's AuthConfig with the IdP metadata of {name}:{port}")
    }

    /// What the step's hash covers beside the Keycloak objects: Rancher's.
    pub fn hash_input(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&(&self.rancher, &self.metadata))?)
    }

    /// Rancher's objects, once the Job's objects (post-rendered, `keycloak`) are applied: the
    /// IdP metadata is read from Keycloak through the service proxy.
    pub async fn apply(&self, cluster: &Cluster, keycloak: &[Value]) -> Result<()> {
        cluster.apply(keycloak, None).await?;
        let metadata = self.idp_metadata(&cluster.client).await?;
        let mut docs = self.rancher.clone();
        if let Some(Value::Mapping(config)) = docs.last_mut() {
            config.insert("idpMetadataContent".into(), metadata.into());
        }
        cluster.apply(&docs, None).await.context("Rancher's SAML configuration")
    }

    /// The SAML metadata Keycloak serves for the realm now, read through the service proxy.
    pub async fn idp_metadata(&self, client: &kube::Client) -> Result<String> {
        let (namespace, name, port, path) = &self.metadata;
        let port = port.to_string();
        let service = crate::service_proxy::ServicePort { namespace, name, port: &port, https: false };
        let request = crate::service_proxy::Request { method: "GET", path, headers: &[], body: &[] };
        let answer = crate::service_proxy::send(client, &service, &request)
            .await
            .with_context(|| format!("Keycloak's IdP metadata at {}{path}", service.base()))?;
        if answer.status != 200 {
            bail!(
                "Keycloak's IdP metadata at {}{path}: answered {}: {}",
                service.base(),
                answer.status,
                answer.excerpt()
            );
        }
        let metadata = String::from_utf8(answer.body).context("Keycloak's IdP metadata is not UTF-8")?;
        if !metadata.contains("EntityDescriptor") {
            bail!("Keycloak's answer at {}{path} is no SAML metadata", service.base());
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_carries_its_digest_and_replaces_the_client() {
        let (made, digest) = import(json!({"clientId": "x", "attributes": {"saml.encrypt": "false"}})).unwrap();
        assert_eq!(made["ifResourceExists"], "OVERWRITE");
        assert_eq!(made["clients"][0]["attributes"][DIGEST_ATTRIBUTE], json!(digest));
        assert_eq!(made["clients"][0]["attributes"]["saml.encrypt"], "false");
        let (_, other) = import(json!({"clientId": "y", "attributes": {"saml.encrypt": "false"}})).unwrap();
        assert_ne!(digest, other);
        assert!(import(json!([1])).is_err());
    }
}
