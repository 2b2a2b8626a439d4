//! Signing deliveries the way each vendor does: used by `changehub replay`
//! to send the sample payloads in events/ to a hub, and by the tests.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use super::Origin;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A Standard Webhooks key: the base64 part of `whsec_...` decoded; a secret
/// without the prefix or not base64 is used as raw bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// `v1,<base64>` over `{id}.{timestamp}.{body}` (Standard Webhooks).
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = hmac_sha256(&standard_key(secret), &[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body]);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// The authentication headers `origin` would send for `body`, signed with
/// `secret`. `delivery` is the delivery id, where the scheme signs it.
pub fn auth_headers(origin: Origin, secret: &str, delivery: &str, body: &[u8], now: DateTime<Utc>) -> HeaderMap {
    let mut h = HeaderMap::new();
    match origin {
        Origin::Github => {
            put(
                &mut h,
                "x-hub-signature-256",
                &format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body]))),
            );
        }
        Origin::Gitlab if secret.starts_with("whsec_") => {
            put(&mut h, "webhook-id", delivery);
            put(&mut h, "webhook-timestamp", &now.timestamp().to_string());
            put(&mut h, "webhook-signature", &standard_signature(secret, delivery, now.timestamp(), body));
        }
        Origin::Gitlab => put(&mut h, "x-gitlab-token", secret),
        Origin::Pagerduty => {
            put(
                &mut h,
                "x-pagerduty-signature",
                &format!("v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body]))),
            );
        }
        Origin::Incidentio => {
            put(&mut h, "webhook-id", delivery);
            put(&mut h, "webhook-timestamp", &now.timestamp().to_string());
            put(&mut h, "webhook-signature", &standard_signature(secret, delivery, now.timestamp(), body));
        }
        Origin::Alertmanager | Origin::Argocd => put(&mut h, "authorization", &format!("Bearer {secret}")),
        Origin::Aws => {}
    }
    h
}

/// The event-type and delivery headers `origin` sends, for a sample file
/// named `<event>.<case>.json` in events/<origin>/ (GitHub: the event name;
/// GitLab: `deployment`, `merge_request`, `push`, `pipeline`).
pub fn delivery_headers(origin: Origin, file_stem: &str, delivery: &str) -> HeaderMap {
    let event = file_stem.split('.').next().unwrap_or(file_stem);
    let mut h = HeaderMap::new();
    put(&mut h, "content-type", "application/json");
    match origin {
        Origin::Github => {
            put(&mut h, "x-github-event", event);
            put(&mut h, "x-github-delivery", delivery);
            put(&mut h, "x-github-hook-id", "123456789");
        }
        Origin::Gitlab => {
            let hook = match event {
                "deployment" => "Deployment Hook",
                "merge_request" => "Merge Request Hook",
                "push" => "Push Hook",
                "pipeline" => "Pipeline Hook",
                "tag_push" => "Tag Push Hook",
                other => other,
            };
            put(&mut h, "x-gitlab-event", hook);
            put(&mut h, "x-gitlab-event-uuid", delivery);
            put(&mut h, "idempotency-key", delivery);
        }
        Origin::Pagerduty => {
            put(&mut h, "x-webhook-id", delivery);
            put(&mut h, "x-webhook-subscription", "PSUBSCR");
        }
        Origin::Incidentio => {
            put(&mut h, "webhook-id", delivery);
        }
        Origin::Alertmanager | Origin::Aws | Origin::Argocd => {}
    }
    h
}

/// Everything `origin` sends with a delivery of `body`: the event-type and
/// delivery headers for a sample named `file_stem`, and the signature made
/// with `secret`.
pub fn delivery(
    origin: Origin,
    secret: &str,
    file_stem: &str,
    delivery: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> HeaderMap {
    let mut headers = delivery_headers(origin, file_stem, delivery);
    headers.extend(auth_headers(origin, secret, delivery, body, now));
    headers
}
