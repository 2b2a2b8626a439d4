//! Ingest: authenticating, deduplicating and normalizing what sources send.
//!
//! Each vendor module is pure: `delivery_id(headers, body)` and
//! `normalize(headers, body)` see bytes and headers, never the network.
//! [`signature`] checks signatures before anything is parsed.

pub mod alertmanager;
pub mod argocd;
pub mod aws;
pub mod canonical;
pub mod github;
pub mod gitlab;
pub mod incidentio;
pub mod pagerduty;
pub mod sign;
pub mod signature;
pub(crate) mod support;

pub use canonical::{Canonical, Fact, NormalizeError, Normalized, Origin, ServiceKey};

use http::HeaderMap;

use crate::json::JsonError;

/// A header as text, if present and visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A required header, or a 400-worthy error naming it.
pub fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, NormalizeError> {
    header(headers, name).ok_or_else(|| NormalizeError::field(name, format!("the {name} header is missing")))
}

/// The body as `T`, which must be a JSON object. Errors name the field at
/// fault by its full path (`pull_request.title`), a missing field included.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, NormalizeError> {
    crate::json::decode_object(body).map_err(|e| match e {
        JsonError::Malformed(m) => NormalizeError::malformed(format!("the body is not valid JSON: {m}")),
        JsonError::NotObject => NormalizeError::new("the body is not a JSON object"),
        JsonError::Invalid { field, message } => {
            NormalizeError { field, message: format!("unexpected payload: {message}"), malformed: false }
        }
    })
}

/// The sender's delivery id for a webhook from `origin`.
pub fn delivery_id(origin: Origin, headers: &HeaderMap, body: &[u8]) -> Result<String, NormalizeError> {
    match origin {
        Origin::Github => github::delivery_id(headers, body),
        Origin::Gitlab => gitlab::delivery_id(headers, body),
        Origin::Pagerduty => pagerduty::delivery_id(headers, body),
        Origin::Alertmanager => alertmanager::delivery_id(headers, body),
        Origin::Incidentio => incidentio::delivery_id(headers, body),
        Origin::Aws => aws::delivery_id(body),
        Origin::Argocd => argocd::delivery_id(headers, body),
    }
}

/// The header naming a delivery's event type, for the senders that name it
/// in a header (GitHub, GitLab); the others name it in the body (Argo CD:
/// its operation's phase).
pub fn event_header(origin: Origin) -> Option<&'static str> {
    match origin {
        Origin::Github => Some(github::EVENT_HEADER),
        Origin::Gitlab => Some(gitlab::EVENT_HEADER),
        Origin::Pagerduty | Origin::Alertmanager | Origin::Incidentio | Origin::Aws | Origin::Argocd => None,
    }
}

/// An id the sender signed, if it has one: PagerDuty's `event.id` (inside
/// the signed body) and Standard Webhooks' `webhook-id` (part of the signed
/// content). Only meaningful once [`signature::verify`] has passed.
pub fn signed_id(origin: Origin, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    match origin {
        Origin::Pagerduty => pagerduty::event_id(body),
        Origin::Incidentio | Origin::Gitlab if headers.contains_key(signature::WEBHOOK_SIGNATURE) => {
            header(headers, signature::WEBHOOK_ID).map(str::to_owned)
        }
        _ => None,
    }
}

/// Normalizes one delivery from `origin`.
pub fn normalize(origin: Origin, headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    match origin {
        Origin::Github => github::normalize(headers, body),
        Origin::Gitlab => gitlab::normalize(headers, body),
        Origin::Pagerduty => pagerduty::normalize(headers, body),
        Origin::Alertmanager => alertmanager::normalize(headers, body),
        Origin::Incidentio => incidentio::normalize(headers, body),
        Origin::Aws => aws::normalize(body),
        Origin::Argocd => argocd::normalize(headers, body),
    }
}
