//! Registry credentials: a docker `config.json` and environment variables named in the spec.
//! How a registry's challenge decides their use is `clientcore`'s.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use base64::Engine as _;

use crate::spec::Credentials;

#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Default)]
pub struct CredentialStore {
    by_host: HashMap<String, Login>,
}

impl CredentialStore {
    pub fn load(spec: &Credentials) -> Result<CredentialStore> {
        let mut by_host = HashMap::new();
        if let Some(path) = &spec.docker_config {
            let text = std::fs::read_to_string(path).with_context(|| format!("credentials: {}", path.display()))?;
            let cfg: DockerConfig = serde_json::from_str(&text)
                .with_context(|| format!("credentials: {}: not a docker config.json", path.display()))?;
            for (key, entry) in cfg.auths {
                if let Some(login) = entry.login() {
                    by_host.insert(docker_config_host(&key), login);
                }
            }
        }
        for (host, names) in &spec.env {
            let get = |var: &str| {
                std::env::var(var)
                    .with_context(|| format!("credentials.env.{host}: environment variable {var} is not set"))
            };
            by_host.insert(host.clone(), Login { username: get(&names.username)?, password: get(&names.password)? });
        }
        Ok(CredentialStore { by_host })
    }

    /// The login for the host actually contacted, else for the upstream it stands in for.
    pub fn find(&self, contacted: &str, upstream: &str) -> Option<&Login> {
        self.by_host.get(contacted).or_else(|| self.by_host.get(upstream))
    }
}

/// `https://index.docker.io/v1/` is how docker names Docker Hub; other keys are hosts, maybe
/// with a scheme.
fn docker_config_host(key: &str) -> String {
    let host = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(serde::Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl DockerAuth {
    fn login(&self) -> Option<Login> {
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some(Login { username: u.clone(), password: p.clone() });
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(self.auth.as_deref()?.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Login { username: u.to_string(), password: p.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries() {
        let a = DockerAuth { auth: Some("dXNlcjpwYTpzcw==".into()), username: None, password: None };
        let l = a.login().unwrap();
        assert_eq!((l.username.as_str(), l.password.as_str()), ("user", "pa:ss"));
        assert_eq!(docker_config_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(docker_config_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
