//! Errors as the distribution spec words them: a code clients act on, an HTTP status, and a
//! message that names the thing that was wrong.

use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    RangeInvalid,
    NotFound,
    PaginationNumberInvalid,
    Internal,
}

impl Code {
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

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: Code,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, status: code.status(), message: message.into() }
    }

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

pub type ApiResult<T> = Result<T, ApiError>;
