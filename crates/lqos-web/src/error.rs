//! The one error type of the web layer: every failure becomes an [`ApiError`], which renders
//! as `{"error": code, "message": …, "errors": [...]}` with a 4xx for bad input and a bland 5xx
//! (logged once) for internal failures.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use lqos_bus::{CommandError, Response};
use lqos_config::Diagnostic;
use serde::Serialize;

/// A problem with one form field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Field name (for the shaped devices editor: the CSV column header, e.g. `Download Max Mbps`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid session.
    #[error("login required")]
    Unauthorized,
    /// Logged in but not allowed.
    #[error("{message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// No such object.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Why.
        message: String,
    },
    /// Field-level validation failed; nothing was changed.
    #[error("invalid input ({} problems); nothing was changed", errors.len())]
    Validation {
        /// One entry per problem.
        errors: Vec<FieldError>,
        /// Input diagnostics from lqos-config, when they came from there.
        diagnostics: Vec<Diagnostic>,
    },
    /// Too many failed logins.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt is allowed.
        retry_after_secs: u64,
    },
    /// Too many user-management changes from one client or admin.
    #[error("too many user changes; try again in {retry_after_secs} s")]
    TooManyChanges {
        /// Seconds until the next change is allowed.
        retry_after_secs: u64,
    },
    /// A per-session or per-client quota is used up (live streams).
    #[error("{message}")]
    TooMany {
        /// Which quota.
        message: String,
    },
    /// lqosd refused or failed a command.
    #[error("{source}")]
    Backend {
        /// lqosd's error.
        #[source]
        source: CommandError,
    },
    /// lqosd sent an answer of the wrong kind.
    #[error("unexpected answer from lqosd: {answer}")]
    UnexpectedAnswer {
        /// The answer's kind.
        answer: String,
    },
    /// The file changed since the client read it (optimistic concurrency): nothing written.
    #[error(
        "ShapedDevices.csv changed since you loaded it (another admin or the scheduler saved it); nothing was written: reload it and repeat your edit"
    )]
    Stale {
        /// The file's current entity tag.
        etag: String,
    },
    /// A write without `If-Match`.
    #[error("send If-Match with the ETag you read, so that no other change is overwritten")]
    PreconditionRequired,
    /// The file on disk has problems an edit would carry on; nothing written.
    #[error("{message}")]
    FileHasErrors {
        /// Which lines and what to do.
        message: String,
        /// The problems.
        diagnostics: Vec<Diagnostic>,
    },
    /// Anything else (I/O on the users file…); details are logged, not shown.
    #[error("internal error: {message}")]
    Internal {
        /// Logged details.
        message: String,
    },
}

impl ApiError {
    /// A bad request with a message.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest { message: message.into() }
    }

    /// Maps a bus answer that is not the expected one.
    pub fn from_response(answer: Response) -> Self {
        match answer {
            Response::Error(source) => ApiError::Backend { source },
            other => {
                let kind = serde_json::to_value(&other)
                    .ok()
                    .and_then(|v| v.get("response").and_then(|r| r.as_str().map(str::to_owned)))
                    .unwrap_or_else(|| "unknown".into());
                ApiError::UnexpectedAnswer { answer: kind }
            }
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::Stale { .. } => (StatusCode::CONFLICT, "stale"),
            ApiError::PreconditionRequired => {
                (StatusCode::PRECONDITION_REQUIRED, "precondition_required")
            }
            ApiError::FileHasErrors { .. } => (StatusCode::CONFLICT, "file_has_errors"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            ApiError::RateLimited { .. } | ApiError::TooManyChanges { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
            ApiError::Backend { source } => match source {
                CommandError::InvalidInput { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
                }
                CommandError::Unavailable { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                CommandError::ApplyFailed { .. } => (StatusCode::BAD_GATEWAY, "apply_failed"),
                CommandError::Internal { .. } => (StatusCode::BAD_GATEWAY, "lqosd_error"),
            },
            ApiError::UnexpectedAnswer { .. } => (StatusCode::BAD_GATEWAY, "lqosd_error"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Every error answer of the API.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// Machine-readable code: `unauthorized`, `forbidden`, `bad_request`, `not_found`,
    /// `conflict`, `stale`, `validation`, `rate_limited`, `unavailable`, `internal`…
    error: &'a str,
    /// For people.
    message: String,
    /// Field errors (`validation`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    errors: &'a [FieldError],
    /// Input diagnostics from lqos-config, with file, line and field.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<Diagnostic>)]
    diagnostics: &'a [Diagnostic],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let message = if let ApiError::Internal { message } = &self {
            tracing::error!(error = %message, "request failed");
            "internal error (see lqos_web's log)".to_owned()
        } else {
            self.to_string()
        };
        let (errors, diagnostics): (&[FieldError], &[Diagnostic]) = match &self {
            ApiError::Validation { errors, diagnostics } => (errors, diagnostics),
            ApiError::FileHasErrors { diagnostics, .. } => (&[], diagnostics),
            ApiError::Backend { source: CommandError::InvalidInput { diagnostics } } => {
                (&[], diagnostics)
            }
            _ => (&[], &[]),
        };
        let mut resp =
            (status, Json(ErrorBody { error: code, message, errors, diagnostics })).into_response();
        if let ApiError::Stale { etag } = &self
            && let Ok(v) = HeaderValue::from_str(etag)
        {
            resp.headers_mut().insert(header::ETAG, v);
        }
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::TooManyChanges { retry_after_secs } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
