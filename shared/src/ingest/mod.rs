//! Ingest: authenticating, deduplicating and normalizing what sources send.
//!
//! Each vendor module is pure: `delivery_id(headers, body)` and
//! `normalize(headers, body)` see bytes and headers, never the network.
//! [`auth`] checks signatures before anything is parsed.

pub mod alertmanager;
pub mod auth;
pub mod aws;
pub mod canonical;
pub mod github;
pub mod gitlab;
pub mod incidentio;
pub mod pagerduty;

pub use canonical::{Canonical, Fact, NormalizeError, Normalized, Origin, ServiceKey};

use http::HeaderMap;

/// A header as text, if present and visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A required header, or a 400-worthy error naming it.
pub fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, NormalizeError> {
    header(headers, name).ok_or_else(|| NormalizeError::field(name, format!("the {name} header is missing")))
}

/// The body as JSON, or an error saying why not.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, NormalizeError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            NormalizeError::new(format!("the body is not valid JSON: {inner}"))
        } else {
            NormalizeError::field(path.trim_start_matches('.'), format!("unexpected payload: {inner}"))
        }
    })
}
