//! htpasswd users with pull or push rights.
//!
//! The file is Apache's `htpasswd -B` format (bcrypt only). Users named in `push_users` may push;
//! when that list is absent every user in the file may. Anonymous clients may pull when
//! `anonymous_pull` is set, and never push.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context};
use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, Code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

pub struct Auth {
    users: HashMap<String, String>,
    push_users: Option<HashSet<String>>,
    anonymous_pull: bool,
    /// Hashes of user:password pairs already checked: bcrypt is slow on purpose, and clients
    /// send credentials with every request.
    verified: Mutex<HashSet<[u8; 32]>>,
}

pub const REALM: &str = "airgap registry";

impl Auth {
    pub fn load(htpasswd: &Path, push_users: Option<Vec<String>>, anonymous_pull: bool) -> anyhow::Result<Auth> {
        let text = std::fs::read_to_string(htpasswd)
            .with_context(|| format!("cannot read htpasswd file {}", htpasswd.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                bail!("{}:{}: expected user:hash", htpasswd.display(), i + 1);
            };
            if !hash.starts_with("$2") {
                bail!(
                    "{}:{}: user {user} does not have a bcrypt hash (create it with htpasswd -B)",
                    htpasswd.display(),
                    i + 1
                );
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if let Some(unknown) = push_users.iter().flatten().find(|u| !users.contains_key(*u)) {
            bail!("push user {unknown} is not in {}", htpasswd.display());
        }
        Ok(Auth {
            users,
            push_users: push_users.map(|p| p.into_iter().collect()),
            anonymous_pull,
            verified: Mutex::default(),
        })
    }

    /// Checks the `Authorization` header for `access`.
    pub fn check(&self, authorization: Option<&str>, access: Access) -> Result<(), ApiError> {
        let user = match authorization {
            Some(h) => Some(self.user(h)?),
            None => None,
        };
        match (user, access) {
            (None, Access::Pull) if self.anonymous_pull => Ok(()),
            (None, _) => Err(ApiError::new(Code::Unauthorized, "authentication required")),
            (Some(_), Access::Pull) => Ok(()),
            (Some(u), Access::Push) if self.push_users.as_ref().is_none_or(|p| p.contains(&u)) => Ok(()),
            (Some(u), Access::Push) => Err(ApiError::new(Code::Denied, format!("user {u} may pull but not push"))),
        }
    }

    fn user(&self, header: &str) -> Result<String, ApiError> {
        let bad = || ApiError::new(Code::Unauthorized, "invalid username or password");
        let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")).ok_or_else(bad)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        let hash = self.users.get(user).ok_or_else(bad)?;
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.verified.lock().expect("not poisoned").contains(&key) {
            return Ok(user.to_string());
        }
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return Err(bad());
        }
        self.verified.lock().expect("not poisoned").insert(key);
        Ok(user.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pw: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
    }

    #[test]
    fn pull_and_push_rights() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        let hash = |p| bcrypt::hash(p, 4).unwrap();
        std::fs::write(&file, format!("ops:{}\nreader:{}\n", hash("s3cret"), hash("r"))).unwrap();
        let auth = Auth::load(&file, Some(vec!["ops".into()]), false).unwrap();
        assert_eq!(auth.check(None, Access::Pull).unwrap_err().code, Code::Unauthorized);
        assert!(auth.check(Some(&basic("reader", "r")), Access::Pull).is_ok());
        assert_eq!(auth.check(Some(&basic("reader", "r")), Access::Push).unwrap_err().code, Code::Denied);
        assert!(auth.check(Some(&basic("ops", "s3cret")), Access::Push).is_ok());
        assert_eq!(auth.check(Some(&basic("ops", "wrong")), Access::Push).unwrap_err().code, Code::Unauthorized);
        let open = Auth::load(&file, None, true).unwrap();
        assert!(open.check(None, Access::Pull).is_ok() && open.check(None, Access::Push).is_err());
        assert!(Auth::load(&file, Some(vec!["nobody".into()]), false).is_err());
        std::fs::write(&file, "md5:$apr1$x$y\n").unwrap();
        assert!(Auth::load(&file, None, false).err().unwrap().to_string().contains("bcrypt"));
    }
}
