//! The bytes under a writable store: objects named by `/`-separated keys, as distribution's
//! storage drivers see them. A driver knows nothing of blobs, repositories, tags or uploads;
//! [`super::layout`] writes those once, for every driver.
//!
//! Drivers block (a disk, an HTTP request); the server calls them on tokio's blocking pool.

use std::io::{Read, Write};
use std::time::SystemTime;

use crate::error::ApiResult;

/// One name directly below a listed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The whole key; a directory's ends in `/`.
    pub key: String,
    /// Whether it is a directory (a common prefix, to S3) rather than an object.
    pub dir: bool,
    /// An object's length (0 for a directory).
    pub size: u64,
    /// When an object was last written, where the driver knows.
    pub modified: Option<SystemTime>,
}

/// A driver: bytes under keys, and nothing of what they mean.
pub trait ObjectStore: Send + Sync {
    /// The whole object; `None` when there is none.
    fn get(&self, key: &str) -> ApiResult<Option<Vec<u8>>>;
    /// `len` bytes from `start`; the caller has checked the range against [`ObjectStore::head`].
    fn read(&self, key: &str, start: u64, len: u64) -> ApiResult<Box<dyn Read + Send>>;
    /// The object's length; `None` when there is none.
    fn head(&self, key: &str) -> ApiResult<Option<u64>>;
    /// The objects and directories whose keys start with `prefix` and go no further than the next
    /// `/`, sorted by key. A directory may be listed that holds nothing any more.
    fn list(&self, prefix: &str) -> ApiResult<Vec<Entry>>;
    /// Writes a whole object: readers see the old content or the new, never a part.
    fn put(&self, key: &str, bytes: &[u8]) -> ApiResult<()>;
    /// `false` when there was no such object.
    fn delete(&self, key: &str) -> ApiResult<bool>;
    /// Moves the object at `from` (which must exist) to `to`, replacing what was there: readers of
    /// `to` see the old object or the whole new one, and `from` is gone. An upload of one piece is
    /// committed this way, without its bytes being written a second time.
    fn rename(&self, from: &str, to: &str) -> ApiResult<()>;
    /// A streamed object that appears only when committed.
    fn writer<'a>(&'a self, key: &str) -> ApiResult<Box<dyn ObjectWriter + 'a>>;
}

/// An object being written; dropped or aborted, it leaves nothing.
pub trait ObjectWriter: Write {
    /// Makes the object visible, whole, replacing what the key held.
    fn commit(self: Box<Self>) -> ApiResult<()>;
    /// Gives the object up, leaving the key as it was (as a drop does, said outright).
    fn abort(self: Box<Self>);
}

/// 128 random bits in hex: upload ids, temporary names.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS provides randomness");
    hex::encode(b)
}
