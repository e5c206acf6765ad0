//! Errors as the distribution spec words them: a code clients act on, an HTTP status, and a
//! message that names the thing that was wrong.

use serde_json::json;

/// The error codes of the distribution spec, which clients branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A blob the repository does not hold.
    BlobUnknown,
    /// An upload's body did not arrive whole or does not fit the session.
    BlobUploadInvalid,
    /// An upload session that is not (or no longer) open.
    BlobUploadUnknown,
    /// Content that does not hash to the digest given for it.
    DigestInvalid,
    /// A manifest that names a blob the repository does not hold.
    ManifestBlobUnknown,
    /// A manifest that does not parse or breaks the image spec.
    ManifestInvalid,
    /// A manifest or tag the repository does not hold.
    ManifestUnknown,
    /// A repository name the spec's grammar refuses.
    NameInvalid,
    /// A repository the registry does not hold.
    NameUnknown,
    /// Content whose length is not the one declared, or too large to accept.
    SizeInvalid,
    /// No credentials, or wrong ones: the client should authenticate (401).
    Unauthorized,
    /// Credentials that may not do this, such as a pull-only user's push (403).
    Denied,
    /// An operation this registry does not offer: deletes when they are off, pushes when it is
    /// read-only (405).
    Unsupported,
    /// A chunk or a `Range` that does not fit the content (416).
    RangeInvalid,
    /// A path outside the API, or a file or chart the registry does not serve.
    NotFound,
    /// An `n` query parameter that is not a count.
    PaginationNumberInvalid,
    /// The server's own failure (storage, a bundle it cannot read): not the client's fault.
    Internal,
}

impl Code {
    /// The code as the spec spells it in an error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::NotFound => "NOT_FOUND",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::Internal => "INTERNAL_ERROR",
        }
    }

    fn status(self) -> u16 {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown
            | Code::NotFound => 404,
            Code::Unauthorized => 401,
            Code::Denied => 403,
            Code::Unsupported => 405,
            Code::RangeInvalid => 416,
            Code::Internal => 500,
            _ => 400,
        }
    }
}

/// A refusal or failure as a client receives it: the JSON error body and an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// What kind of error, for clients.
    pub code: Code,
    /// The HTTP status; the code's own unless [`ApiError::with_status`] changed it.
    pub status: u16,
    /// What was wrong, naming the thing (repository, digest, upload).
    pub message: String,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, status: code.status(), message: message.into() }
    }

    /// The same error under another status, where the spec asks for one the code does not imply.
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    /// A failure of the server's own storage, reported without leaking more than the path; a
    /// full disk is 507, which clients report as the server's problem rather than their upload's.
    pub fn io(context: impl std::fmt::Display, e: std::io::Error) -> ApiError {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ApiError::new(Code::Internal, format!("the registry's storage is full: {context}: {e}"))
                    .with_status(507)
            }
            _ => ApiError::new(Code::Internal, format!("{context}: {e}")),
        }
    }

    /// A request body that did not arrive whole: the client's failure (`BLOB_UPLOAD_INVALID`),
    /// or a refusal raised while reading it, such as a chunk that does not fill its Content-Range.
    pub fn request_body(what: impl std::fmt::Display, e: std::io::Error) -> ApiError {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<ApiError>()) {
            Some(refusal) => refusal.clone(),
            None => ApiError::new(Code::BlobUploadInvalid, format!("{what}: {e}")),
        }
    }

    /// The spec's JSON error body: `{"errors": [{code, message, detail}]}`.
    pub fn body(&self) -> Vec<u8> {
        let v = json!({"errors": [{"code": self.code.as_str(), "message": self.message, "detail": null}]});
        serde_json::to_vec(&v).expect("an error body serializes")
    }
}

impl From<bundles::Error> for ApiError {
    fn from(e: bundles::Error) -> ApiError {
        ApiError::new(Code::Internal, e.to_string())
    }
}

/// What storage and handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
