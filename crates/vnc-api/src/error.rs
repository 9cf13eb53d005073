//! Errors of the store and of API operations.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Failure to open, read or write the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("config database: {0}")]
    Db(#[from] redb::Error),
    #[error("config database directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("config database is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Failure of an API operation; maps one to one onto the HTTP status the
/// upstream API server uses. The text is sent as the plain-text body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, bad CIDR, missing or mistyped field, change of
    /// an immutable field.
    #[error("{0}")]
    BadRequest(String),
    /// 404: unknown type, object or reference target.
    #[error("{0}")]
    NotFound(String),
    /// 409: duplicate fq_name / uuid / address / MAC, delete of an object
    /// still referred to or with children, exhausted subnet.
    #[error("{0}")]
    Conflict(String),
    /// 500: the database failed; nothing was changed.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, self.to_string()).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

pub(crate) fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::NotFound(msg.into())
}

pub(crate) fn conflict(msg: impl Into<String>) -> ApiError {
    ApiError::Conflict(msg.into())
}
