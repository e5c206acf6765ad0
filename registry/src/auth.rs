//! htpasswd users with pull or push rights.
//!
//! The file is Apache's `htpasswd -B` format (bcrypt only). Users named in `push_users` may push;
//! when that list is absent every user in the file may. Anonymous clients may pull when
//! `anonymous_pull` is set, and never push.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

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
    /// What an unknown user's password is checked against: a real hash of the dearest cost in
    /// the file, so an unknown name costs as long as a wrong password and timing tells no names.
    dummy: String,
    verified: Verified,
    /// bcrypt runs on the blocking pool, at most this many at once: it is slow on purpose, and
    /// must neither stall the async workers nor crowd out storage work on the pool.
    hashing: Semaphore,
}

/// Credentials checked recently: clients send them with every request, and bcrypt costs tens to
/// hundreds of milliseconds each time. Keyed by a hash of user and password salted per process,
/// so the table holds no password, bounded, and each entry is trusted only for [`VERIFIED_FOR`].
struct Verified {
    salt: [u8; 16],
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

const VERIFIED_FOR: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 256;

impl Verified {
    fn new() -> Verified {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).expect("the OS provides randomness");
        Verified { salt, seen: Mutex::default() }
    }

    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        let seen = self.seen.lock().expect("not poisoned");
        seen.get(key).is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= VERIFIED_MAX {
            seen.retain(|_, at| at.elapsed() < VERIFIED_FOR);
        }
        if seen.len() >= VERIFIED_MAX {
            let oldest = seen.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                seen.remove(&k);
            }
        }
        seen.insert(key, Instant::now());
    }
}

pub const REALM: &str = "airgap registry";

/// The cost a bcrypt hash was made with (`$2y$12$…` → 12).
fn cost(hash: &str) -> u32 {
    hash.split('$').nth(2).and_then(|c| c.parse().ok()).unwrap_or(0)
}

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
        let Some(dummy) = users.values().max_by_key(|h| cost(h)).cloned() else {
            bail!("{} has no users", htpasswd.display());
        };
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Auth {
            users,
            push_users: push_users.map(|p| p.into_iter().collect()),
            anonymous_pull,
            dummy,
            verified: Verified::new(),
            hashing: Semaphore::new(parallel),
        })
    }

    /// Checks the `Authorization` header for `access`.
    pub async fn check(&self, authorization: Option<&str>, access: Access) -> Result<(), ApiError> {
        let user = match authorization {
            Some(h) => Some(self.user(h).await?),
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

    async fn user(&self, header: &str) -> Result<String, ApiError> {
        let bad = || ApiError::new(Code::Unauthorized, "invalid username or password");
        let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")).ok_or_else(bad)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        let key = self.verified.key(user, password);
        if self.verified.contains(&key) {
            return Ok(user.to_string());
        }
        let known = self.users.get(user);
        let hash = known.unwrap_or(&self.dummy).clone();
        let password = password.to_string();
        let _turn = self.hashing.acquire().await.expect("the semaphore is never closed");
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .map_err(|e| ApiError::new(Code::Internal, format!("checking a password failed: {e}")))?;
        if !(matches && known.is_some()) {
            return Err(bad());
        }
        self.verified.insert(key);
        Ok(user.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pw: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
    }

    #[tokio::test]
    async fn pull_and_push_rights() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        let hash = |p| bcrypt::hash(p, 4).unwrap();
        std::fs::write(&file, format!("ops:{}\nreader:{}\n", hash("s3cret"), hash("r"))).unwrap();
        let auth = Auth::load(&file, Some(vec!["ops".into()]), false).unwrap();
        assert_eq!(auth.check(None, Access::Pull).await.unwrap_err().code, Code::Unauthorized);
        assert!(auth.check(Some(&basic("reader", "r")), Access::Pull).await.is_ok());
        assert_eq!(auth.check(Some(&basic("reader", "r")), Access::Push).await.unwrap_err().code, Code::Denied);
        assert!(auth.check(Some(&basic("ops", "s3cret")), Access::Push).await.is_ok());
        let wrong = auth.check(Some(&basic("ops", "wrong")), Access::Push).await;
        assert_eq!(wrong.unwrap_err().code, Code::Unauthorized);
        // An unknown user is refused even with the password of the hash it is checked against.
        let unknown = auth.check(Some(&basic("nobody", "s3cret")), Access::Pull).await;
        assert_eq!(unknown.unwrap_err().code, Code::Unauthorized);
        let open = Auth::load(&file, None, true).unwrap();
        assert!(open.check(None, Access::Pull).await.is_ok() && open.check(None, Access::Push).await.is_err());
        assert!(Auth::load(&file, Some(vec!["nobody".into()]), false).is_err());
        std::fs::write(&file, "md5:$apr1$x$y\n").unwrap();
        assert!(Auth::load(&file, None, false).err().unwrap().to_string().contains("bcrypt"));
    }

    #[test]
    fn the_verified_table_stays_small() {
        let verified = Verified::new();
        for i in 0..VERIFIED_MAX + 10 {
            verified.insert(verified.key("u", &i.to_string()));
        }
        assert_eq!(verified.seen.lock().unwrap().len(), VERIFIED_MAX);
        assert!(verified.contains(&verified.key("u", &(VERIFIED_MAX + 9).to_string())));
        assert!(!verified.contains(&verified.key("u", "0")), "the oldest entry made room");
        assert_ne!(verified.key("ab", "c"), verified.key("a", "bc"), "the user and password stay apart");
    }
}
