//! Git repositories over git's dumb HTTP protocol, straight from a git artifact's layer (a tar of
//! a bare repository prepared with `git update-server-info`): `git clone
//! https://registry/git/<repository>.git` fetches `info/refs`, `HEAD` and the packs, each served
//! as a byte range of the tar. `<repository>:<tag>.git` picks a tag when there are several.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use bundles::artifact::GIT_LAYER_MEDIA_TYPE;
use hyper::header::HeaderMap;
use hyper::Response;

use crate::artifacts::{described_blob_len, manifest_json, single_layer};
use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult, Code};
use crate::names::{check_name, valid_tag};
use crate::routes::{blob_response, BlobSlice};
use crate::server::State;
use crate::storage;

/// Regular files of the bare repository → (offset in the tar, size).
pub struct TarIndex {
    files: HashMap<String, (u64, u64)>,
}

impl TarIndex {
    /// Reads the tar (`len` bytes) once. The repository may sit at the top of the tar or in one
    /// directory.
    pub fn build(reader: impl Read, len: u64) -> std::io::Result<TarIndex> {
        let mut all = HashMap::new();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries()? {
            let entry = entry?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
            let (offset, size) = (entry.raw_file_position(), entry.size());
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{path} runs past the end of the {len}-byte tar"),
                ));
            }
            all.insert(path, (offset, size));
        }
        let root = all
            .keys()
            .filter(|p| *p == "HEAD" || p.ends_with("/HEAD") && p.matches('/').count() == 1)
            .min_by_key(|p| p.len())
            .map(|p| p.trim_end_matches("HEAD").to_string())
            .unwrap_or_default();
        let files = all.into_iter().filter_map(|(p, v)| p.strip_prefix(&root).map(|s| (s.to_string(), v))).collect();
        Ok(TarIndex { files })
    }
}

pub(crate) async fn route(state: &Arc<State>, rest: &str, head: bool) -> ApiResult<Response<Body>> {
    let usage = || ApiError::new(Code::NotFound, format!("/git/{rest}: expected /git/<repository>[:<tag>].git/<path>"));
    let (repo_tag, path) = rest.split_once(".git/").ok_or_else(usage)?;
    let (repo, tag) = match repo_tag.rsplit_once(':') {
        Some((r, t)) if valid_tag(t) => (r, Some(t)),
        _ => (repo_tag, None),
    };
    check_name(repo)?;
    let (repo_owned, tag_owned) = (repo.to_string(), tag.map(str::to_string));
    let (layer, len) = storage::call(&state.stores, state.clone(), move |s| {
        let stores = &s.stores;
        let tag = match tag_owned {
            Some(t) => t,
            None => {
                let tags = stores.tags(&repo_owned)?.unwrap_or_default();
                match tags.as_slice() {
                    [only] => only.clone(),
                    [] => return Err(ApiError::new(Code::NotFound, format!("no git repository {repo_owned}"))),
                    many => {
                        return Err(ApiError::new(
                            Code::NotFound,
                            format!(
                                "{repo_owned} has tags {}; name one as /git/{repo_owned}:<tag>.git",
                                many.join(", ")
                            ),
                        ))
                    }
                }
            }
        };
        let not_git = || ApiError::new(Code::NotFound, format!("{repo_owned}:{tag} is not a git repository artifact"));
        let (_, manifest) = manifest_json(stores, &repo_owned, &tag)?.ok_or_else(not_git)?;
        let layer = single_layer(&manifest).filter(|l| l.media_type == GIT_LAYER_MEDIA_TYPE).ok_or_else(not_git)?;
        let len = described_blob_len(stores, &repo_owned, &layer.digest, layer.size)?;
        Ok((layer, len))
    })
    .await?;
    let index = tar_index(state, repo, &layer.digest, len).await?;
    let (offset, size) =
        *index.files.get(path).ok_or_else(|| ApiError::new(Code::NotFound, format!("{repo}.git has no {path}")))?;
    let slice =
        BlobSlice { repo, digest: &layer.digest, base: offset, len: size, content_type: "application/octet-stream" };
    blob_response(state, slice, &HeaderMap::new(), head).await
}

async fn tar_index(state: &Arc<State>, repo: &str, d: &bundles::digest::Digest, size: u64) -> ApiResult<Arc<TarIndex>> {
    if let Some(i) = state.git_indexes.lock().expect("not poisoned").get(&d.to_string()) {
        return Ok(i.clone());
    }
    let (stores, r, dd) = (state.stores.clone(), repo.to_string(), d.clone());
    let index = body::blocking(move || {
        let reader = stores.open_blob(&r, &dd, 0, size)?;
        TarIndex::build(reader, size)
            .map_err(|e| ApiError::new(Code::Internal, format!("git layer {dd} of {r} is not a readable tar: {e}")))
    })
    .await?;
    let index = Arc::new(index);
    state.git_indexes.lock().expect("not poisoned").insert(d.to_string(), index.clone());
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn indexes_a_bare_repository_at_the_top_or_in_a_directory() {
        for prefix in ["", "repo.git/"] {
            let tar = tar_of(&[
                (&format!("{prefix}HEAD"), b"ref: refs/heads/main\n"),
                (&format!("{prefix}info/refs"), b"abc\trefs/heads/main\n"),
            ]);
            let index = TarIndex::build(&tar[..], tar.len() as u64).unwrap();
            let (off, size) = index.files["info/refs"];
            assert_eq!(&tar[off as usize..(off + size) as usize], b"abc\trefs/heads/main\n", "prefix {prefix:?}");
            assert!(index.files.contains_key("HEAD"));
        }
    }
}
