//! Request extractors that answer bad input with a JSON error naming the problem.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::ApiError;
pub use super::query::TypedQuery;
use crate::domain::ChangeId;
use crate::json::JsonError;

/// The `{id}` of a `/changes/{id}...` route, parsed; any failure is a 400
/// naming `id`. Read from the path's second segment, so that it is checked
/// on its own whatever other parameters the route has (a UUID has no
/// percent-escapes: one makes the id invalid).
pub struct ChangeIdPath(pub ChangeId);

impl<S: Send + Sync> FromRequestParts<S> for ChangeIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.path().split('/').nth(2).unwrap_or("");
        ChangeId::parse(raw).map(ChangeIdPath).map_err(|_| ApiError::invalid("id", "change id must be a UUID"))
    }
}

/// Path parameters other than a change id, as text; a value that does not
/// percent-decode to UTF-8 is answered like an unknown one: 404 with a JSON error.
pub struct PathText<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathText<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathText(v))
            .map_err(|_| ApiError::not_found(format!("nothing exists at {}", parts.uri.path())))
    }
}

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body: `application/json`, at most [`MAX_BODY_BYTES`], and every
/// decoding error reported with the path of the field at fault.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + serde::Serialize> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the body as application/json (got {:?})", content_type),
            ));
        }
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The request body, at most [`MAX_BODY_BYTES`].
async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {MAX_BODY_BYTES} bytes"),
        )
    })
}

/// Decodes a JSON object (nested structs objects too), naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned + serde::Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::json::decode_strict(bytes).map_err(|e| match e {
        JsonError::Malformed(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {m}"))
        }
        JsonError::NotObject => ApiError::invalid("body", "the body must be a JSON object"),
        JsonError::Invalid { field, message } => ApiError::invalid(field.unwrap_or_else(|| "body".to_owned()), message),
    })
}

/// A catalog document: JSON (`application/json`) or YAML (`application/yaml`),
/// every error naming the field at fault (and, for YAML, its line).
pub struct CatalogBody(pub crate::domain::catalog::Catalog);

impl<S: Send + Sync> FromRequest<S> for CatalogBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(mime.as_str(), "application/yaml" | "application/x-yaml" | "text/yaml") {
            let JsonBody(catalog) = JsonBody::from_request(req, state).await?;
            return Ok(CatalogBody(catalog));
        }
        let bytes = read_body(req).await?;
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::invalid("body", "the YAML is not UTF-8"))?;
        crate::domain::catalog::parse_yaml(text).map(CatalogBody).map_err(ApiError::from)
    }
}
