//! `ApiError`, the one error type at the HTTP edge, and the NOWATCH error shape every error
//! response uses: `{"statusCode","message":[..],"error","timestamp","path"}`.
//!
//! Handlers return `ApiError`; actix's own errors (bad JSON, unknown path, wrong method, body too
//! large) are rewritten into the same shape by [`crate::startup`]'s request middleware, which is
//! also where the request path and timestamp are filled in. 5xx bodies say only "Internal server
//! error": the detail goes to the log with the request id.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::storage::StorageError;

/// `Retry-After` of a "database unavailable" 503, in seconds: about what a PostgreSQL restart
/// or fail-over takes, so clients neither hammer a database that is coming back nor wait long
/// after it is.
pub const DATABASE_RETRY_AFTER_S: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the messages name the field and the problem.
    #[error("bad request: {0:?}")]
    BadRequest(Vec<String>),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// 405 with `Allow`: a method this path never takes.
    #[error("method not allowed: {message}")]
    MethodNotAllowed { message: String, allow: &'static str },
    /// 408: the client stopped sending a body it announced.
    #[error("request timeout: {0}")]
    RequestTimeout(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 429: a per-instance limit was reached; `Retry-After` says when to come back. Built by
    /// [`ApiError::too_many_requests`], so that the message and the header agree.
    #[error("too many requests: {message}")]
    TooManyRequests { message: String, retry_after: Duration },
    /// 416, with the full length for `Content-Range: bytes */len`.
    #[error("range not satisfiable (length {0})")]
    RangeNotSatisfiable(u64),
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// 503 with `Retry-After`: the database cannot be reached (stopped, restarting, connection
    /// lost, no connection within `database.acquire_timeout_s`); the inner error is logged,
    /// never sent. Anything else the database says stays a 500.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(#[source] sea_orm::DbErr),
    /// 503: the blob store cannot be reached (S3 down or restarting); logged, never sent.
    #[error("blob storage unavailable: {0}")]
    StorageUnavailable(#[source] StorageError),
    /// 500: the inner error is logged, never sent.
    #[error("internal: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(vec![message.into()])
    }

    /// A 400 for one field: `"<field>: <problem>"`.
    pub fn field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::BadRequest(vec![format!("{field}: {problem}")])
    }

    /// The 404 of a release that does not exist (or that the caller may not see).
    pub fn firmware_not_found(id: uuid::Uuid) -> Self {
        Self::NotFound(format!("firmware {id} not found"))
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// A 429: `"<what>; retry after <n> s"`, with `Retry-After: <n>`.
    pub fn too_many_requests(what: &str, retry_after: Duration) -> Self {
        let message = format!("{what}; retry after {} s", retry_after_secs(retry_after));
        Self::TooManyRequests { message, retry_after }
    }

    /// What the client is told.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::RequestTimeout(m)
            | Self::PayloadTooLarge(m)
            | Self::UnsupportedMediaType(m)
            | Self::TooManyRequests { message: m, .. }
            | Self::MethodNotAllowed { message: m, .. }
            | Self::BadGateway(m)
            | Self::GatewayTimeout(m)
            | Self::ServiceUnavailable(m) => vec![m.clone()],
            Self::RangeNotSatisfiable(len) => {
                vec![format!("range not satisfiable: the image is {len} bytes")]
            }
            Self::DatabaseUnavailable(_) => vec!["database unavailable".into()],
            Self::StorageUnavailable(_) => vec!["blob storage unavailable".into()],
            Self::Internal(_) => vec!["Internal server error".into()],
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::ServiceUnavailable(_) | Self::DatabaseUnavailable(_) | Self::StorageUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(_) => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::RangeNotSatisfiable(len) => {
                response.insert_header(("Content-Range", format!("bytes */{len}")));
            }
            Self::DatabaseUnavailable(_) => {
                response.insert_header(("Retry-After", DATABASE_RETRY_AFTER_S.to_string()));
            }
            Self::TooManyRequests { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
            }
            Self::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        // The path and timestamp are filled in by the request middleware; this body is what a
        // response gets if it ever bypasses it.
        response.json(ErrorBody::new(self.status_code(), self.messages(), ""))
    }
}

/// `Retry-After` is whole seconds: rounded up, so that a client waiting that long is let in, and
/// at least 1, since `0` would invite a retry at once that is refused again.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The NOWATCH error shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub status_code: u16,
    pub message: Vec<String>,
    pub error: String,
    pub timestamp: String,
    pub path: String,
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: Vec<String>, path: &str) -> Self {
        Self {
            status_code: status.as_u16(),
            message,
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            path: path.to_owned(),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if is_connection_failure(&e) { Self::DatabaseUnavailable(e) } else { Self::Internal(e.into()) }
    }
}

/// Whether the database was not there to answer, as opposed to answering with an error: no
/// connection within the pool's acquire timeout, a connection that broke, or PostgreSQL saying
/// it is shutting down or starting (SQLSTATE class 08, 57P01 to 57P03).
fn is_connection_failure(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let runtime = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(error) = runtime else { return false };
    match error.as_ref() {
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(key) => Self::NotFound(format!("object {key} not found")),
            StorageError::TooLarge(limit) => {
                Self::PayloadTooLarge(format!("file: larger than the limit of {limit} bytes"))
            }
            StorageError::Client(reason) => Self::BadRequest(vec![reason]),
            unreachable @ StorageError::Unavailable(_) => Self::StorageUnavailable(unreachable),
            other => Self::Internal(other.into()),
        }
    }
}
