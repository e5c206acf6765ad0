//! A registry's `WWW-Authenticate` challenge (RFC 7235), as Docker Hub, distribution, Harbor and
//! the rest send it, and the `Authorization` values that answer one.

use std::collections::HashMap;

use base64::Engine as _;

/// What a registry asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: the user and password with every request.
    Basic,
    /// A token from the `realm` service, asked for with `service` and `scope` when given.
    Bearer {
        /// The token service's URL.
        realm: String,
        /// The name of the registry, as the token service knows it.
        service: Option<String>,
        /// What the token should allow (`repository:<name>:pull`).
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="repository:x:pull"` (quoted values may hold
/// commas) or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            v
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The `Authorization` value of HTTP Basic authentication.
pub fn basic_authorization(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// The `Authorization` value from a token service's JSON answer (its `token`, else the OAuth2
/// `access_token`); `None` when the answer holds neither.
pub fn bearer_authorization(answer: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let token = body.get("token").or_else(|| body.get("access_token"))?.as_str()?;
    Some(format!("Bearer {token}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="testkit""#), Some(Challenge::Basic));
    }

    proptest::proptest! {
        /// Any header a registry sends parses or is refused; a bearer challenge reads back
        /// what was written into it, quoted commas and escapes included.
        #[test]
        fn any_challenge_parses_or_is_refused(
            header in ".{0,120}",
            realm in "[^\"\\\\]{1,30}",
            service in proptest::option::of("[^\"\\\\]{0,20}"),
            scope in proptest::option::of("[^\"\\\\]{0,30}"),
        ) {
            let _ = parse_challenge(&header);
            let mut text = format!("Bearer realm=\"{realm}\"");
            if let Some(s) = &service {
                text += &format!(",service=\"{s}\"");
            }
            if let Some(s) = &scope {
                text += &format!(", scope=\"{s}\"");
            }
            proptest::prop_assert_eq!(parse_challenge(&text), Some(Challenge::Bearer { realm, service, scope }));
        }
    }

    #[test]
    fn quoted_commas_and_escapes_stay_in_their_value() {
        let c = parse_challenge(
            r#"bearer service="a, b",  realm="https://h/token?x=1,2", scope="repository:p\"q:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://h/token?x=1,2".into(),
                service: Some("a, b".into()),
                scope: Some(r#"repository:p"q:pull,push"#.into()),
            })
        );
        assert_eq!(parse_challenge(r#"Bearer service="x,realm=evil""#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn credentials_and_tokens() {
        assert_eq!(basic_authorization("user", "pa:ss"), "Basic dXNlcjpwYTpzcw==");
        assert_eq!(bearer_authorization(br#"{"token": "t1", "access_token": "t2"}"#).as_deref(), Some("Bearer t1"));
        assert_eq!(bearer_authorization(br#"{"access_token": "t2"}"#).as_deref(), Some("Bearer t2"));
        assert_eq!(bearer_authorization(br#"{"token": 1}"#), None);
        assert_eq!(bearer_authorization(b"<html>"), None);
    }
}
