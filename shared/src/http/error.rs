//! The API's error body: `{"error": {"code", "message", "field"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::ChangeError;
use crate::domain::{FieldError, FieldErrors};
use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Every problem of a document checked whole (`PUT /catalog`); the first
    /// is also `field` and `message`. Empty otherwise, and then not sent.
    pub errors: Vec<FieldError>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, errors: Vec::new() }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        let first = e.first().field.clone();
        ApiError { errors: e.listed().to_vec(), ..ApiError::invalid(first, e.summary()) }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The cause goes to the log; the client gets a stable message.
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "store failure");
        match e {
            StoreError::Backend { retryable: true, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is busy; retry shortly")
            }
            _ => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the store failed; the failure is logged")
            }
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let message = e.to_string();
        match e {
            ChangeError::Invalid(f) => f.into(),
            ChangeError::InvalidDocument(errors) => errors.into(),
            ChangeError::NotFound(_) | ChangeError::Missing(_) => ApiError::not_found(message),
            ChangeError::VersionConflict { .. } => ApiError {
                field: Some("version".into()),
                ..ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
            },
            ChangeError::IllegalTransition(_) => ApiError {
                field: Some("to".into()),
                ..ApiError::new(StatusCode::CONFLICT, "illegal_transition", message)
            },
            ChangeError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            ChangeError::DocConflict { .. } => ApiError {
                field: Some("if-match".into()),
                ..ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
            },
            ChangeError::Refused { code, field, .. } => {
                ApiError { field: field.map(str::to_owned), ..ApiError::new(StatusCode::CONFLICT, code, message) }
            }
            ChangeError::Store(s) => s.into(),
        }
    }
}

/// The message of an error answer, kept on the response (as an extension)
/// for the layers around the handler: a refusal is recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error =
            Inner { code: self.code, message: &self.message, field: self.field.as_deref(), errors: &self.errors };
        let body = Body { error };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorMessage(self.message));
        response
    }
}
