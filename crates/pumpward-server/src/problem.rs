//! RFC 9457 problem details: every API error is `application/problem+json`
//! with a stable `type` URI per kind of error, so clients can branch on it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use pumpward_store::StoreError;
use serde::Serialize;

/// An API error. `kind` picks the status and the stable `type`.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    /// Field-level problems, for validation errors.
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Validation,
    Unauthenticated,
    Forbidden,
    CsrfFailed,
    NotFound,
    Conflict,
    IllegalTransition,
    PayloadTooLarge,
    UnsupportedMediaType,
    Locked,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden | ErrorKind::CsrfFailed => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::IllegalTransition => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Locked => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable slug in the problem `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Validation => "validation-failed",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::CsrfFailed => "csrf-failed",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::IllegalTransition => "illegal-lifecycle-transition",
            ErrorKind::PayloadTooLarge => "payload-too-large",
            ErrorKind::UnsupportedMediaType => "unsupported-media-type",
            ErrorKind::Locked => "account-locked",
            ErrorKind::Unavailable => "store-unavailable",
            ErrorKind::Internal => "internal-error",
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "The request is malformed",
            ErrorKind::Validation => "Some values are not valid",
            ErrorKind::Unauthenticated => "Authentication is required",
            ErrorKind::Forbidden => "Your role does not allow this",
            ErrorKind::CsrfFailed => "The request's CSRF token is missing or wrong",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Conflict => "The request conflicts with the current state",
            ErrorKind::IllegalTransition => "This lifecycle transition is not allowed",
            ErrorKind::PayloadTooLarge => "The request body is too large",
            ErrorKind::UnsupportedMediaType => "Unsupported content type",
            ErrorKind::Locked => "Too many failed attempts",
            ErrorKind::Unavailable => "The store is unavailable",
            ErrorKind::Internal => "Internal error",
        }
    }
}

/// The URI prefix of every problem type; `docs/API.md` lists them.
pub const PROBLEM_BASE: &str = "urn:pumpward:problem:";

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::Conflict(m) => ApiError::new(ErrorKind::Conflict, m),
            StoreError::Invalid(m) => ApiError::new(ErrorKind::Validation, m),
            StoreError::Forbidden(m) => ApiError::new(ErrorKind::Forbidden, m),
            StoreError::Transition(t) => ApiError::new(ErrorKind::IllegalTransition, t.to_string()),
            StoreError::Unavailable(m) | StoreError::Open { reason: m, .. } => {
                tracing::error!(error = %m, "store unavailable");
                ApiError::new(
                    ErrorKind::Unavailable,
                    "the store is unavailable; try again shortly",
                )
            }
            StoreError::Db(e) => {
                // Never leak SQL or driver detail to clients; log it instead.
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    ErrorKind::Internal,
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl From<pumpward_core::inventory::DraftErrors> for ApiError {
    fn from(e: pumpward_core::inventory::DraftErrors) -> Self {
        ApiError {
            kind: ErrorKind::Validation,
            detail: e.to_string(),
            errors: e
                .0
                .into_iter()
                .map(|f| FieldProblem {
                    field: f.field.to_string(),
                    message: f.message,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldProblem],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = Body {
            type_: format!("{PROBLEM_BASE}{}", self.kind.slug()),
            title: self.kind.title(),
            status: status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let mut res = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&body).expect("problem serialises"),
        )
            .into_response();
        if self.kind == ErrorKind::Unauthenticated {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"pumpward\""),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
