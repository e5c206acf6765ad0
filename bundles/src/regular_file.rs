//! Files a bundle names (SHA256SUMS, bundle.json, the lock, the parts), opened without trusting
//! the name: only a regular file is read, since a FIFO would hang the reader and a device such as
//! `/dev/zero` would never end; and a file read whole is refused beyond a bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Opens `path` for reading when it is a regular file (or a link to one). The open does not
/// block on a FIFO, and the type is checked on the opened file, so nothing can be swapped in
/// between. Any other type is an `InvalidInput` error that says what it is.
pub fn open(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what}, not a regular file: refusing to read it")))
}

/// Reads a whole regular file of at most `limit` bytes; `what` names the file in the error.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = open(path).at(path)?;
    let too_large = |len: u64| {
        Error::invalid(
            path,
            format!("{len} bytes is more than any {what} holds (at most {limit}): refusing to read it"),
        )
    };
    let len = file.metadata().at(path)?.len();
    if len > limit {
        return Err(too_large(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut out).at(path)?;
    if out.len() as u64 > limit {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_device_is_named_and_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("SHA256SUMS");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let err = open(&fifo).unwrap_err().to_string();
        assert!(err.contains("a FIFO, not a regular file"), "{err}");
        let err = read_bounded(Path::new("/dev/zero"), 10, "checksum file").unwrap_err().to_string();
        assert!(err.contains("/dev/zero") && err.contains("a character device"), "{err}");
        let err = read_bounded(dir.path(), 10, "checksum file").unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }

    #[test]
    fn a_file_over_the_bound_is_refused_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bundle.json");
        std::fs::write(&p, [b'x'; 11]).unwrap();
        let err = read_bounded(&p, 10, "bundle.json").unwrap_err().to_string();
        assert!(err.contains("11 bytes") && err.contains("at most 10"), "{err}");
        assert_eq!(read_bounded(&p, 11, "bundle.json").unwrap().len(), 11);
    }
}
