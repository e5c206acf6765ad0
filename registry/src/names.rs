//! What the distribution spec accepts as repository names, tags and digests. Names become
//! directory paths in the directory store, so nothing else gets past here.

use std::io::{self, Read};
use std::str::FromStr;

use bundles::digest::Digest;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ApiError, ApiResult, Code};

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 255 && !name.is_empty() && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

pub fn check_name(name: &str) -> ApiResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(Code::NameInvalid, format!("'{name}' is not a valid repository name")))
    }
}

/// Splits what follows `/charts/` or `/files/` into a repository name (checked, so it cannot
/// escape) and the `N` path components after it; `usage` is the path's shape, for the error.
pub fn split_route<'a, const N: usize>(rest: &'a str, usage: &str) -> ApiResult<(&'a str, [&'a str; N])> {
    let not_found = || ApiError::new(Code::NotFound, format!("{rest}: expected {usage}"));
    let mut parts = [""; N];
    let mut front = rest;
    for part in parts.iter_mut().rev() {
        (front, *part) = front.rsplit_once('/').ok_or_else(not_found)?;
    }
    check_name(front)?;
    Ok((front, parts))
}

/// A sha256 or sha512 digest (the two the image spec registers); bundles carry only sha256,
/// but clients may push either.
pub fn parse_digest(text: &str) -> ApiResult<Digest> {
    let d = Digest::from_str(text)
        .map_err(|e| ApiError::new(Code::DigestInvalid, format!("'{text}' is not a digest: {e}")))?;
    match d.algorithm().as_ref() {
        "sha256" | "sha512" => Ok(d),
        other => {
            Err(ApiError::new(Code::DigestInvalid, format!("'{text}': digest algorithm {other} is not supported")))
        }
    }
}

/// Hashes everything `r` gives with `algorithm` (`sha256` or `sha512`).
pub fn hash_reader(algorithm: &str, mut r: impl Read) -> io::Result<Digest> {
    fn run<H: sha2::Digest>(mut h: H, r: &mut dyn Read) -> io::Result<String> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(hex::encode(h.finalize())),
                n => h.update(&buf[..n]),
            }
        }
    }
    let hex = match algorithm {
        "sha512" => run(Sha512::new(), &mut r)?,
        _ => run(Sha256::new(), &mut r)?,
    };
    Ok(Digest::from_str(&format!("{algorithm}:{hex}")).expect("a hash we computed is a digest"))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    pub fn parse(text: &str) -> ApiResult<ManifestRef> {
        if text.contains(':') {
            parse_digest(text).map(ManifestRef::Digest)
        } else if valid_tag(text) {
            Ok(ManifestRef::Tag(text.to_string()))
        } else {
            Err(ApiError::new(Code::ManifestInvalid, format!("'{text}' is neither a tag nor a digest")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        for ok in ["a", "docker.io/mosipid/config-server", "a__b/c---d", "x.y_z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "..", "a/../b", "a/./b", "A", "a//b", "/a", "a/", "a_.b", "a___b", "-a", "a:5000/b", "_a"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_name(&"a".repeat(256)));
    }

    #[test]
    fn routes_split_into_a_checked_name_and_components() {
        assert_eq!(
            split_route::<1>("mosip.github.io/mosip-helm/index.yaml", "u").unwrap(),
            ("mosip.github.io/mosip-helm", ["index.yaml"])
        );
        assert_eq!(split_route::<2>("files.x/tool/1.0/hello", "u").unwrap(), ("files.x/tool", ["1.0", "hello"]));
        assert_eq!(split_route::<2>("tool/hello", "u").unwrap_err().code, Code::NotFound);
        assert_eq!(split_route::<1>("../etc/passwd", "u").unwrap_err().code, Code::NameInvalid);
    }

    #[test]
    fn tags_and_digests() {
        assert!(valid_tag("1.1.2") && valid_tag("_x") && !valid_tag(".x") && !valid_tag("a/b"));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(matches!(ManifestRef::parse("latest"), Ok(ManifestRef::Tag(_))));
        assert_eq!(ManifestRef::parse("sha256:../x").unwrap_err().code, Code::DigestInvalid);
        assert_eq!(parse_digest("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err().code, Code::DigestInvalid);
        let d = hash_reader("sha512", &b"abc"[..]).unwrap();
        assert!(d.to_string().starts_with("sha512:ddaf35a193617aba"));
        assert_eq!(parse_digest(d.as_ref()).unwrap(), d);
    }
}
