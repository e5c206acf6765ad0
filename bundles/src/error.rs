use std::path::PathBuf;

/// Every failure names the thing it is about: a file, a part, a member or a reference.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is wrong: what is wrong and where.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or member, or part).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value that does not read as what it should be (a digest, a reference, a size, a member
    /// name): the message quotes the text and says what is wrong with it.
    #[error("{0}")]
    Malformed(String),
    /// A request that cannot be met, said as it is.
    #[error("{0}")]
    Usage(String),
    /// An artifact the bundle cannot name.
    #[error("{what}: {message}")]
    Name {
        /// Which artifact: `files: <url>`, `git: <url>`.
        what: String,
        /// Why it has no name.
        message: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A value that does not parse; `message` quotes it.
    pub fn malformed(message: impl Into<String>) -> Self {
        Error::Malformed(message.into())
    }

    /// Wrong content in `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.into(), message: message.into() }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O result, so errors say which file failed.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
