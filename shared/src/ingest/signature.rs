//! Webhook authentication, checked before anything is parsed.
//!
//! [`verify`] checks one delivery against the secrets configured for its
//! origin. Several secrets may be valid at once (rotation); any one of them
//! may match. Unsigned deliveries are never accepted: an origin with no
//! secret configured refuses everything.
//!
//! | origin | what is checked |
//! | --- | --- |
//! | github | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` |
//! | gitlab | `X-Gitlab-Token` against plain secrets, and Standard Webhooks signatures against `whsec_` keys |
//! | pagerduty | `X-PagerDuty-Signature: v1=<hex>[, v1=<hex>…]`, HMAC-SHA256(secret as raw bytes, body) |
//! | incidentio | Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` |
//! | alertmanager, argocd | `Authorization: Bearer <token>` |
//! | aws | nothing: AWS events arrive through EventBridge, never as webhooks |
//!
//! Every comparison of a secret-derived value is constant-time (the MAC's
//! `verify_slice`, or HMACs of both values for plain tokens). An [`AuthError`] names
//! the failed check; it never contains a secret or a header value.

use super::{Origin, header};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// One origin's check: its non-blank secrets, the headers, the raw body and now.
type Check = fn(&[&str], &HeaderMap, &[u8], DateTime<Utc>) -> Result<(), AuthError>;

/// GitHub's signature header.
pub const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// GitLab's plain secret token header.
pub const GITLAB_TOKEN: &str = "X-Gitlab-Token";
/// PagerDuty v3's signature header.
pub const PAGERDUTY_SIGNATURE: &str = "X-PagerDuty-Signature";
/// Standard Webhooks headers (incident.io, GitLab signing tokens).
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Alertmanager's bearer token header.
pub const AUTHORIZATION: &str = "Authorization";

/// Standard Webhooks signing keys are serialized with this prefix.
pub const SIGNING_KEY_PREFIX: &str = "whsec_";
/// How far `webhook-timestamp` may be from now, either way (5 minutes, as in
/// the Standard Webhooks reference libraries).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Standard base64 that accepts keys and signatures with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A failed authentication check: it names what failed, and never contains
/// a secret or a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("AWS events arrive through EventBridge, not as webhooks; there is no webhook to accept")]
    NotAWebhook,
    #[error("no secret is configured for {} webhooks; they are refused", origin.as_str())]
    NoSecret { origin: Origin },
    #[error("the {header} header is missing")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is empty or not visible ASCII")]
    UnreadableHeader { header: &'static str },
    /// The header is there but not in the vendor's format; `problem` says how.
    #[error("{problem}")]
    Malformed { header: &'static str, problem: &'static str },
    #[error("the {WEBHOOK_TIMESTAMP} header is {age} s in the past; at most {TIMESTAMP_TOLERANCE_SECS} s is accepted")]
    TooOld { age: i64 },
    #[error(
        "the {WEBHOOK_TIMESTAMP} header is {ahead} s in the future; at most {TIMESTAMP_TOLERANCE_SECS} s is accepted"
    )]
    TooNew { ahead: u64 },
    /// Well formed, but signed with (or equal to) none of the configured secrets.
    #[error("the {header} header matches no secret configured for {}{}", origin.as_str(), skipped_keys(*skipped))]
    NoMatch { header: &'static str, origin: Origin, skipped: usize },
    #[error("a {WEBHOOK_SIGNATURE} header was sent but no {SIGNING_KEY_PREFIX} signing key is configured for {}", origin.as_str())]
    SignatureWithoutKey { origin: Origin },
    #[error("no signing key configured for {} is {SIGNING_KEY_PREFIX} followed by base64; fix the configuration", origin.as_str())]
    NoValidKey { origin: Origin },
    #[error("an HMAC-SHA256 key was rejected")]
    KeyRejected,
}

fn skipped_keys(skipped: usize) -> String {
    if skipped > 0 {
        format!(" ({skipped} configured key(s) are not valid base64 and were skipped)")
    } else {
        String::new()
    }
}

/// Verifies a delivery from `origin` against the secrets configured for it
/// (several may be valid at once, for rotation). `now` is injected for tests.
///
/// Blank secrets are ignored: a blank HMAC key or token would let anyone in.
pub fn verify(
    origin: Origin,
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let check: Check = match origin {
        Origin::Aws => {
            return Err(AuthError::NotAWebhook);
        }
        Origin::Github => github,
        Origin::Gitlab => gitlab,
        Origin::Pagerduty => pagerduty,
        Origin::Incidentio => incidentio,
        Origin::Alertmanager => alertmanager,
        Origin::Argocd => argocd,
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).filter(|s| !s.trim().is_empty()).collect();
    if secrets.is_empty() {
        return Err(AuthError::NoSecret { origin });
    }
    check(&secrets, headers, body, now)
}

// ----------------------------------------------------------------------------
// Vendors

/// GitHub: `X-Hub-Signature-256: sha256=<64 hex>` over the raw body.
fn github(secrets: &[&str], headers: &HeaderMap, body: &[u8], _now: DateTime<Utc>) -> Result<(), AuthError> {
    let value = required(headers, GITHUB_SIGNATURE)?;
    let signature = value.strip_prefix("sha256=").and_then(decode_sha256_hex).ok_or(AuthError::Malformed {
        header: GITHUB_SIGNATURE,
        problem: "the X-Hub-Signature-256 header is not sha256= followed by 64 hex digits",
    })?;
    for secret in secrets {
        if mac(secret.as_bytes())?.chain_update(body).verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(AuthError::NoMatch { header: GITHUB_SIGNATURE, origin: Origin::Github, skipped: 0 })
}

/// GitLab: plain secrets are `X-Gitlab-Token` values; `whsec_` secrets are
/// Standard Webhooks signing keys.
///
/// - If any plain token is configured, `X-Gitlab-Token` must equal one of them.
/// - If `webhook-signature` is sent, it must verify with a `whsec_` key.
/// - If only signing keys are configured, the signature headers are required.
fn gitlab(secrets: &[&str], headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<(), AuthError> {
    let (keys, tokens): (Vec<&str>, Vec<&str>) = secrets.iter().partition(|s| s.starts_with(SIGNING_KEY_PREFIX));
    if !tokens.is_empty() {
        let given = required(headers, GITLAB_TOKEN)?;
        if !any_token_matches(given, &tokens)? {
            return Err(AuthError::NoMatch { header: GITLAB_TOKEN, origin: Origin::Gitlab, skipped: 0 });
        }
    }
    let signed = headers.contains_key(WEBHOOK_SIGNATURE);
    if signed && keys.is_empty() {
        return Err(AuthError::SignatureWithoutKey { origin: Origin::Gitlab });
    }
    if signed || tokens.is_empty() {
        standard_webhooks(Origin::Gitlab, &keys, headers, body, now)?;
    }
    Ok(())
}

/// PagerDuty v3: `X-PagerDuty-Signature` holds comma-separated `v1=<hex>`
/// values (one per active secret); any one matching any secret passes.
/// Unknown versions are ignored.
fn pagerduty(secrets: &[&str], headers: &HeaderMap, body: &[u8], _now: DateTime<Utc>) -> Result<(), AuthError> {
    let value = required(headers, PAGERDUTY_SIGNATURE)?;
    let v1: Vec<&str> = value
        .split(',')
        .filter_map(|entry| entry.trim().split_once('='))
        .filter(|(version, _)| version.trim() == "v1")
        .map(|(_, sig)| sig.trim())
        .collect();
    if v1.is_empty() {
        return Err(AuthError::Malformed {
            header: PAGERDUTY_SIGNATURE,
            problem: "the X-PagerDuty-Signature header has no v1= signature",
        });
    }
    let signatures: Vec<Vec<u8>> = v1.into_iter().filter_map(decode_sha256_hex).collect();
    if signatures.is_empty() {
        return Err(AuthError::Malformed {
            header: PAGERDUTY_SIGNATURE,
            problem: "no v1= value in the X-PagerDuty-Signature header is 64 hex digits",
        });
    }
    for secret in secrets {
        // The secret is used as raw bytes, not base64-decoded.
        if any_signature_matches(&mac(secret.as_bytes())?.chain_update(body), &signatures) {
            return Ok(());
        }
    }
    Err(AuthError::NoMatch { header: PAGERDUTY_SIGNATURE, origin: Origin::Pagerduty, skipped: 0 })
}

/// incident.io: Standard Webhooks; every secret is a signing key (`whsec_` prefix optional).
fn incidentio(secrets: &[&str], headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<(), AuthError> {
    standard_webhooks(Origin::Incidentio, secrets, headers, body, now)
}

/// Alertmanager: `Authorization: Bearer <token>`.
fn alertmanager(secrets: &[&str], headers: &HeaderMap, _body: &[u8], _now: DateTime<Utc>) -> Result<(), AuthError> {
    bearer(Origin::Alertmanager, secrets, headers)
}

/// Argo CD Notifications: the webhook service's `Authorization: Bearer <token>` header.
fn argocd(secrets: &[&str], headers: &HeaderMap, _body: &[u8], _now: DateTime<Utc>) -> Result<(), AuthError> {
    bearer(Origin::Argocd, secrets, headers)
}

/// `Authorization: Bearer <token>`, the token equal to one of `secrets`.
fn bearer(origin: Origin, secrets: &[&str], headers: &HeaderMap) -> Result<(), AuthError> {
    let value = required(headers, AUTHORIZATION)?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(AuthError::Malformed {
            header: AUTHORIZATION,
            problem: "the Authorization header is not a Bearer token",
        })?;
    if any_token_matches(token, secrets)? {
        Ok(())
    } else {
        Err(AuthError::NoMatch { header: AUTHORIZATION, origin, skipped: 0 })
    }
}

// ----------------------------------------------------------------------------
// Standard Webhooks (https://github.com/standard-webhooks/standard-webhooks)

/// Verifies `webhook-id`, `webhook-timestamp` and `webhook-signature` with one
/// of `keys` (`whsec_<base64>`; the prefix is optional). The signed content is
/// `{id}.{timestamp}.{body}`; `webhook-signature` is a space-separated list of
/// `<version>,<base64>` entries, of which only `v1` is checked. The timestamp
/// must be within [`TIMESTAMP_TOLERANCE_SECS`] of `now`, either way.
fn standard_webhooks(
    origin: Origin,
    keys: &[&str],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let id = required(headers, WEBHOOK_ID)?;
    let timestamp: i64 = required(headers, WEBHOOK_TIMESTAMP)?.parse().map_err(|_| AuthError::Malformed {
        header: WEBHOOK_TIMESTAMP,
        problem: "the webhook-timestamp header is not a whole number of unix seconds",
    })?;
    let age = now.timestamp().saturating_sub(timestamp);
    if age > TIMESTAMP_TOLERANCE_SECS {
        return Err(AuthError::TooOld { age });
    }
    if age < -TIMESTAMP_TOLERANCE_SECS {
        return Err(AuthError::TooNew { ahead: age.unsigned_abs() });
    }

    let value = required(headers, WEBHOOK_SIGNATURE)?;
    let v1: Vec<&str> = value
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .map(|(_, sig)| sig)
        .collect();
    if v1.is_empty() {
        return Err(AuthError::Malformed {
            header: WEBHOOK_SIGNATURE,
            problem: "the webhook-signature header has no v1, signature",
        });
    }
    let signatures: Vec<Vec<u8>> = v1.into_iter().filter_map(|sig| BASE64.decode(sig).ok()).collect();
    if signatures.is_empty() {
        return Err(AuthError::Malformed {
            header: WEBHOOK_SIGNATURE,
            problem: "no v1, value in the webhook-signature header is valid base64",
        });
    }

    let decoded: Vec<Option<Vec<u8>>> = keys
        .iter()
        .map(|key| {
            let raw = key.strip_prefix(SIGNING_KEY_PREFIX).unwrap_or(key);
            BASE64.decode(raw).ok().filter(|k| !k.is_empty())
        })
        .collect();
    let invalid = decoded.iter().filter(|k| k.is_none()).count();
    if invalid == decoded.len() {
        return Err(AuthError::NoValidKey { origin });
    }
    // The reference libraries sign the timestamp as they parsed it.
    let timestamp = timestamp.to_string();
    for key in decoded.iter().flatten() {
        let signed =
            mac(key)?.chain_update(id).chain_update(".").chain_update(&timestamp).chain_update(".").chain_update(body);
        if any_signature_matches(&signed, &signatures) {
            return Ok(());
        }
    }
    Err(AuthError::NoMatch { header: WEBHOOK_SIGNATURE, origin, skipped: invalid })
}

// ----------------------------------------------------------------------------
// Helpers

/// A header that must be there, as trimmed visible ASCII.
fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    match header(headers, name) {
        Some(value) => Ok(value),
        None if headers.contains_key(name) => Err(AuthError::UnreadableHeader { header: name }),
        None => Err(AuthError::MissingHeader { header: name }),
    }
}

/// An HMAC-SHA256 keyed with `key`.
fn mac(key: &[u8]) -> Result<HmacSha256, AuthError> {
    // HMAC takes keys of any length, so this does not fail in practice.
    HmacSha256::new_from_slice(key).map_err(|_| AuthError::KeyRejected)
}

/// Whether the MAC computed so far equals any of `signatures`, each compared in constant time.
fn any_signature_matches(computed: &HmacSha256, signatures: &[Vec<u8>]) -> bool {
    signatures.iter().any(|sig| computed.clone().verify_slice(sig).is_ok())
}

/// `sha256=`-style hex: exactly 64 hex digits, as 32 bytes.
fn decode_sha256_hex(hex_digits: &str) -> Option<Vec<u8>> {
    if hex_digits.len() != 64 {
        return None;
    }
    hex::decode(hex_digits).ok()
}

/// Whether `given` equals any configured token, compared in constant time.
fn any_token_matches(given: &str, tokens: &[&str]) -> Result<bool, AuthError> {
    let mut matched = false;
    for token in tokens {
        matched |= same_token(given, token)?;
    }
    Ok(matched)
}

/// Constant-time equality of a presented token and a configured one: both
/// are HMACed under a fixed key and the MACs compared with `verify_slice`, so
/// neither the position of the first difference nor a length mismatch shows
/// in the timing of the comparison.
fn same_token(given: &str, configured: &str) -> Result<bool, AuthError> {
    const KEY: &[u8] = b"changehub: constant-time token comparison";
    let expected = mac(KEY)?.chain_update(configured).finalize().into_bytes();
    Ok(mac(KEY)?.chain_update(given).verify_slice(&expected).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    // Published vectors (events/README.md quotes their sources).
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_PAYLOAD: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE_VALUE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const SW_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TIMESTAMP: i64 = 1614265330;
    const SW_PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const PD_SECRET: &str = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK";
    const PD_SIGNATURE: &str = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd";
    /// go-pagerduty's "mismatch" case: a well-formed v1 value that does not match `PD_BODY`.
    const PD_MISMATCH: &str = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5";
    /// `defaultBody` of PagerDuty/go-pagerduty `webhookv3/webhookv3_test.go`, byte for byte (1655 bytes).
    const PD_BODY: &str = r#"{"event":{"id":"01BWDWL3NYY7LUFPZCC28QUCMK","event_type":"incident.priority_updated","resource_type":"incident","occurred_at":"2021-04-26T17:36:27.458Z","agent":{"html_url":"https://acme.pagerduty.com/users/PLH1HKV","id":"PLH1HKV","self":"https://api.pagerduty.com/users/PLH1HKV","summary":"Tenex Engineer","type":"user_reference"},"client":null,"data":{"id":"PGR0VU2","type":"incident","self":"https://api.pagerduty.com/incidents/PGR0VU2","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","title":"A little bump in the road","service":{"html_url":"https://acme.pagerduty.com/services/PF9KMXH","id":"PF9KMXH","self":"https://api.pagerduty.com/services/PF9KMXH","summary":"API Service","type":"service_reference"},"assignees":[{"html_url":"https://acme.pagerduty.com/users/PTUXL6G","id":"PTUXL6G","self":"https://api.pagerduty.com/users/PTUXL6G","summary":"User 123","type":"user_reference"}],"escalation_policy":{"html_url":"https://acme.pagerduty.com/escalation_policies/PUS0KTE","id":"PUS0KTE","self":"https://api.pagerduty.com/escalation_policies/PUS0KTE","summary":"Default","type":"escalation_policy_reference"},"teams":[{"html_url":"https://acme.pagerduty.com/teams/PFCVPS0","id":"PFCVPS0","self":"https://api.pagerduty.com/teams/PFCVPS0","summary":"Engineering","type":"team_reference"}],"priority":{"html_url":"https://acme.pagerduty.com/account/incident_priorities","id":"PSO75BM","self":"https://api.pagerduty.com/priorities/PSO75BM","summary":"P1","type":"priority_reference"},"urgency":"high","conference_bridge":{"conference_number":1000,"conference_url":"https://example.com"},"resolve_reason":null}}}"#;

    // Secrets made up for the negative cases.
    const OTHER_SECRET: &str = "not-the-secret";
    /// A valid Standard Webhooks key that is not `SW_KEY`.
    const OTHER_KEY: &str = "whsec_c2lnbmluZy1rZXktb2YtdGVuYW50LWItMDEyMzQ1Njc=";
    const GITLAB_SECRET_TOKEN: &str = "glpat-like-plain-token-7d1e";
    const ALERTMANAGER_TOKEN: &str = "am-bearer-5f0c2b8e";

    // incident.io and GitLab samples: the timestamps events/README.md signed them at.
    const INCIDENTIO_TIMESTAMP: i64 = 1789382658;
    const GITLAB_TIMESTAMP: i64 = 1789381306;
    const GITLAB_ID: &str = "9c1e5a7b-3d2f-4e8a-b6c0-1f2e3d4c5b6a";
    const GITLAB_SIGNATURE: &str = "v1,C2NXhZMfHwaeQ+GxwDl/LTmzjjzKqeVKuVRjg5s8HBU=";
    const GITLAB_MR_MERGE: &[u8] = include_bytes!("../../../events/gitlab/merge_request.merge.json");

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            map.append(name, HeaderValue::from_str(value).expect("test header value"));
        }
        map
    }

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("test time in range")
    }

    fn any_time() -> DateTime<Utc> {
        at(1_700_000_000)
    }

    fn refused(result: Result<(), AuthError>) -> String {
        match result {
            Ok(()) => panic!("the delivery was accepted but should have been refused"),
            Err(e) => e.to_string(),
        }
    }

    fn sw_headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        headers(&[(WEBHOOK_ID, id), (WEBHOOK_TIMESTAMP, &timestamp.to_string()), (WEBHOOK_SIGNATURE, signature)])
    }

    /// Signs like a vendor would, to build deliveries the published vectors do not cover.
    fn hex_hmac(key: &[u8], body: &[u8]) -> String {
        hex::encode(mac(key).expect("hmac key").chain_update(body).finalize().into_bytes())
    }

    fn sw_sign(key: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = BASE64.decode(key.trim_start_matches(SIGNING_KEY_PREFIX)).expect("test key is base64");
        let content = [id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body].concat();
        let tag = mac(&key).expect("hmac key").chain_update(content).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    // ------------------------------------------------------------------------
    // Every origin

    #[test]
    fn aws_is_refused_because_its_events_arrive_through_eventbridge() {
        let check = refused(verify(Origin::Aws, &secrets(&["anything"]), &HeaderMap::new(), b"{}", any_time()));
        assert!(check.contains("EventBridge"), "{check}");
    }

    #[test]
    fn every_webhook_origin_without_a_secret_refuses_even_a_validly_signed_delivery() {
        let cases: [(Origin, HeaderMap, &[u8], DateTime<Utc>); 5] = [
            (Origin::Github, headers(&[(GITHUB_SIGNATURE, GITHUB_SIGNATURE_VALUE)]), GITHUB_PAYLOAD, any_time()),
            (Origin::Gitlab, sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE), SW_PAYLOAD, at(SW_TIMESTAMP)),
            (Origin::Pagerduty, headers(&[(PAGERDUTY_SIGNATURE, PD_SIGNATURE)]), PD_BODY.as_bytes(), any_time()),
            (Origin::Incidentio, sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE), SW_PAYLOAD, at(SW_TIMESTAMP)),
            (Origin::Alertmanager, headers(&[(AUTHORIZATION, "Bearer x")]), b"{}", any_time()),
        ];
        for (origin, headers, body, now) in cases {
            let check = refused(verify(origin, &[], &headers, body, now));
            assert_eq!(check, format!("no secret is configured for {} webhooks; they are refused", origin.as_str()));
        }
    }

    #[test]
    fn blank_secrets_count_as_no_secret() {
        let blank_signature = format!("sha256={}", hex_hmac(b"", b"{}"));
        let check = refused(verify(
            Origin::Github,
            &secrets(&["", "  "]),
            &headers(&[(GITHUB_SIGNATURE, &blank_signature)]),
            b"{}",
            any_time(),
        ));
        assert!(check.starts_with("no secret is configured for github"), "{check}");
    }

    #[test]
    fn errors_never_contain_a_secret_or_the_presented_value() {
        let wrong_token = "tenant-a-token-123456";
        let cases: Vec<(Origin, Vec<String>, HeaderMap, &[u8])> = vec![
            (Origin::Github, secrets(&[GITHUB_SECRET]), headers(&[(GITHUB_SIGNATURE, "sha256=zz")]), b"x"),
            (Origin::Gitlab, secrets(&[GITLAB_SECRET_TOKEN, SW_KEY]), headers(&[(GITLAB_TOKEN, wrong_token)]), b"x"),
            (Origin::Gitlab, secrets(&["whsec_!!not-base64!!"]), sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE), b"x"),
            (Origin::Pagerduty, secrets(&[PD_SECRET]), headers(&[(PAGERDUTY_SIGNATURE, PD_MISMATCH)]), b"x"),
            (Origin::Incidentio, secrets(&[SW_KEY, "whsec_%%%"]), sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE), b"x"),
            (
                Origin::Alertmanager,
                secrets(&[ALERTMANAGER_TOKEN]),
                headers(&[(AUTHORIZATION, "Bearer tenant-a-token-123456")]),
                b"x",
            ),
        ];
        for (origin, configured, headers, body) in cases {
            let check = refused(verify(origin, &configured, &headers, body, at(SW_TIMESTAMP)));
            for secret in &configured {
                assert!(!check.contains(secret.as_str()), "{origin:?}: {check}");
                let raw = secret.trim_start_matches(SIGNING_KEY_PREFIX);
                assert!(!check.contains(raw), "{origin:?}: {check}");
            }
            assert!(!check.contains(wrong_token), "{origin:?}: {check}");
            assert!(!check.contains("g0hM9SsE"), "{origin:?}: {check}");
        }
    }

    // ------------------------------------------------------------------------
    // GitHub

    fn github(configured: &[&str], signature: Option<&str>, body: &[u8]) -> Result<(), AuthError> {
        let headers = match signature {
            Some(value) => headers(&[(GITHUB_SIGNATURE, value)]),
            None => HeaderMap::new(),
        };
        verify(Origin::Github, &secrets(configured), &headers, body, any_time())
    }

    #[test]
    fn github_published_vector_verifies() {
        assert_eq!(github(&[GITHUB_SECRET], Some(GITHUB_SIGNATURE_VALUE), GITHUB_PAYLOAD), Ok(()));
    }

    #[test]
    fn github_header_name_is_case_insensitive() {
        let headers = headers(&[("x-hub-signature-256", GITHUB_SIGNATURE_VALUE)]);
        assert_eq!(verify(Origin::Github, &secrets(&[GITHUB_SECRET]), &headers, GITHUB_PAYLOAD, any_time()), Ok(()));
    }

    #[test]
    fn github_sample_files_verify_with_the_signatures_listed_in_the_events_readme() {
        let samples: [(&[u8], &str); 11] = [
            (
                include_bytes!("../../../events/github/deployment.created.json"),
                "6090da82fc8e0e7a8b75b32e2d2ee98553413644b46a988c2fed9c48524b8c19",
            ),
            (
                include_bytes!("../../../events/github/deployment_protection_rule.requested.json"),
                "de004fa554ab2996aa312cf249d0636b68e0dd29746a209a6f2bb0965e6f3944",
            ),
            (
                include_bytes!("../../../events/github/deployment_status.failure.json"),
                "4f4370ab97841a7911bd6034e7a428000589145375c7d15d47be0b944795a9f4",
            ),
            (
                include_bytes!("../../../events/github/deployment_status.success.json"),
                "1cf04b984e484d421c8b351c10c10fdf6bf69414854104001851d72ee185f739",
            ),
            (
                include_bytes!("../../../events/github/ping.json"),
                "bce00400615777f147f96ddc6aadf31664f7a1b5445a39c044d57f4d3cbb3ac5",
            ),
            (
                include_bytes!("../../../events/github/pull_request.closed_merged.json"),
                "aeba9324fd673ac9890604579e01f7434cd41deb82354c475e61f79d3ffb41cd",
            ),
            (
                include_bytes!("../../../events/github/pull_request.opened.json"),
                "64f233cec1c9e5b0a7358da816e907b4eb649f96eb870dc0f3abba781721967d",
            ),
            (
                include_bytes!("../../../events/github/pull_request.synchronize.json"),
                "ce2ed91dfcbd2ec48716cdb5a05db77b80e0624ecee92069779d3f28f9971545",
            ),
            (
                include_bytes!("../../../events/github/push.default_branch.json"),
                "facf2ae77e9edc457e3825a193319bd5d5e4b5846ef5f92122c7c221d0def78d",
            ),
            (
                include_bytes!("../../../events/github/star.created.json"),
                "9c449b3309158bc98cc4a0607438eaef4daeaf2d5bb209c94cb1731f9cf89c9c",
            ),
            (
                include_bytes!("../../../events/github/workflow_run.completed.json"),
                "656f25973334d0887c763ffe0d364b3bd95bf037b3c3cff6728a5cc4ceaa5ed6",
            ),
        ];
        for (body, hex_signature) in samples {
            assert_eq!(
                github(&[GITHUB_SECRET], Some(&format!("sha256={hex_signature}")), body),
                Ok(()),
                "{hex_signature}"
            );
        }
    }

    #[test]
    fn github_missing_signature_header_is_refused_as_missing() {
        let check = refused(github(&[GITHUB_SECRET], None, GITHUB_PAYLOAD));
        assert_eq!(check, "the X-Hub-Signature-256 header is missing");
    }

    #[test]
    fn github_empty_signature_header_is_refused() {
        let check = refused(github(&[GITHUB_SECRET], Some(""), GITHUB_PAYLOAD));
        assert!(check.contains("empty"), "{check}");
    }

    #[test]
    fn github_truncated_signature_is_refused_as_malformed() {
        let truncated = &GITHUB_SIGNATURE_VALUE[..GITHUB_SIGNATURE_VALUE.len() - 2];
        let check = refused(github(&[GITHUB_SECRET], Some(truncated), GITHUB_PAYLOAD));
        assert!(check.contains("not sha256= followed by 64 hex digits"), "{check}");
    }

    #[test]
    fn github_non_hex_signature_is_refused_as_malformed() {
        let bad = format!("sha256={}", "zz".repeat(32));
        let check = refused(github(&[GITHUB_SECRET], Some(&bad), GITHUB_PAYLOAD));
        assert!(check.contains("not sha256= followed by 64 hex digits"), "{check}");
    }

    #[test]
    fn github_signature_without_sha256_prefix_is_refused_as_malformed() {
        let sha1_style = GITHUB_SIGNATURE_VALUE.replace("sha256=", "sha1=");
        for value in [&GITHUB_SIGNATURE_VALUE["sha256=".len()..], sha1_style.as_str()] {
            let check = refused(github(&[GITHUB_SECRET], Some(value), GITHUB_PAYLOAD));
            assert!(check.contains("not sha256="), "{check}");
        }
    }

    #[test]
    fn github_wrong_secret_is_refused_as_no_match() {
        let check = refused(github(&[OTHER_SECRET], Some(GITHUB_SIGNATURE_VALUE), GITHUB_PAYLOAD));
        assert_eq!(check, "the X-Hub-Signature-256 header matches no secret configured for github");
    }

    #[test]
    fn github_body_changed_after_signing_is_refused() {
        let check = refused(github(&[GITHUB_SECRET], Some(GITHUB_SIGNATURE_VALUE), b"Hello, World?"));
        assert!(check.contains("matches no secret"), "{check}");
    }

    #[test]
    fn github_rotated_second_secret_is_accepted() {
        assert_eq!(github(&[OTHER_SECRET, GITHUB_SECRET], Some(GITHUB_SIGNATURE_VALUE), GITHUB_PAYLOAD), Ok(()));
    }

    #[test]
    fn github_delivery_signed_for_another_tenant_is_refused() {
        let tenant_a = "tenant-a-github-secret";
        let signature = format!("sha256={}", hex_hmac(tenant_a.as_bytes(), GITHUB_PAYLOAD));
        assert_eq!(github(&[tenant_a], Some(&signature), GITHUB_PAYLOAD), Ok(()));
        refused(github(&["tenant-b-github-secret", "tenant-b-rotated"], Some(&signature), GITHUB_PAYLOAD));
    }

    // ------------------------------------------------------------------------
    // Standard Webhooks, through incident.io

    fn incidentio(configured: &[&str], headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), AuthError> {
        verify(Origin::Incidentio, &secrets(configured), headers, body, at(now))
    }

    #[test]
    fn standard_webhooks_published_vector_verifies() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        assert_eq!(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
    }

    #[test]
    fn incidentio_sample_files_verify_with_the_signatures_listed_in_the_events_readme() {
        let samples: [(&[u8], &str, &str); 3] = [
            (
                include_bytes!("../../../events/incidentio/public_incident.incident_created_v2.json"),
                "msg_2mQk70Yb8HcT1pVxR3sN5eLwZ9aJ",
                "v1,PQcyxp/rRGylyxr4Wac5j44bvU7tWtjm7SRHmQN4A48=",
            ),
            (
                include_bytes!("../../../events/incidentio/public_incident.incident_status_updated_v2.json"),
                "msg_2mQk71Yb8HcT1pVxR3sN5eLwZ9aJ",
                "v1,BnCAeNDTmtl6vJEom4cEsEexan6W2b0spbil/wq/3CE=",
            ),
            (
                include_bytes!("../../../events/incidentio/public_incident.incident_updated_v2.json"),
                "msg_2mQk72Yb8HcT1pVxR3sN5eLwZ9aJ",
                "v1,IjxI82dAIQeYxqlfqUnkws13ad6ZiOIkS+0E7hbIf3I=",
            ),
        ];
        for (body, id, signature) in samples {
            let headers = sw_headers(id, INCIDENTIO_TIMESTAMP, signature);
            assert_eq!(incidentio(&[SW_KEY], &headers, body, INCIDENTIO_TIMESTAMP), Ok(()), "{id}");
        }
    }

    #[test]
    fn incidentio_key_without_whsec_prefix_is_still_a_signing_key() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        let bare = &SW_KEY[SIGNING_KEY_PREFIX.len()..];
        assert_eq!(incidentio(&[bare], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
    }

    #[test]
    fn incidentio_each_missing_header_is_refused_by_name() {
        let ts = SW_TIMESTAMP.to_string();
        let all = [(WEBHOOK_ID, SW_ID), (WEBHOOK_TIMESTAMP, ts.as_str()), (WEBHOOK_SIGNATURE, SW_SIGNATURE)];
        for left_out in [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE] {
            let kept: Vec<(&str, &str)> = all.iter().copied().filter(|(name, _)| *name != left_out).collect();
            let check = refused(incidentio(&[SW_KEY], &headers(&kept), SW_PAYLOAD, SW_TIMESTAMP));
            assert_eq!(check, format!("the {left_out} header is missing"));
        }
    }

    #[test]
    fn incidentio_wrong_key_is_refused_as_no_match() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        let check = refused(incidentio(&[OTHER_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
        assert_eq!(check, "the webhook-signature header matches no secret configured for incidentio");
    }

    #[test]
    fn incidentio_truncated_signature_is_refused() {
        let truncated = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ";
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, truncated);
        let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
        assert!(check.contains("matches no secret"), "{check}");
    }

    #[test]
    fn incidentio_malformed_base64_signature_is_refused() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, "v1,g0hM9SsE+OTPJTGt/tmIKtS*ZlE3uFJELVlNIOLJ1OE=");
        let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
        assert!(check.contains("valid base64"), "{check}");
    }

    #[test]
    fn incidentio_signature_without_a_v1_entry_is_refused() {
        for value in
            ["v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="]
        {
            let headers = sw_headers(SW_ID, SW_TIMESTAMP, value);
            let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
            assert!(check.contains("no v1, signature"), "{check}");
        }
    }

    #[test]
    fn incidentio_matching_entry_among_several_signatures_is_accepted() {
        let value = format!("v1a,AAAA v1,{} {}", BASE64.encode([7u8; 32]), SW_SIGNATURE);
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, &value);
        assert_eq!(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
    }

    #[test]
    fn incidentio_six_minute_old_timestamp_is_refused_saying_how_far_off() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP + 360));
        assert_eq!(check, "the webhook-timestamp header is 360 s in the past; at most 300 s is accepted");
    }

    #[test]
    fn incidentio_six_minute_future_timestamp_is_refused_saying_how_far_off() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP - 360));
        assert_eq!(check, "the webhook-timestamp header is 360 s in the future; at most 300 s is accepted");
    }

    #[test]
    fn incidentio_timestamp_exactly_five_minutes_off_is_accepted() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        assert_eq!(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP + 300), Ok(()));
        assert_eq!(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP - 300), Ok(()));
    }

    #[test]
    fn incidentio_fresh_signature_with_an_old_timestamp_is_still_refused() {
        let now = SW_TIMESTAMP + 3600;
        let old = now - 360;
        let headers = sw_headers(SW_ID, old, &sw_sign(SW_KEY, SW_ID, old, SW_PAYLOAD));
        let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, now));
        assert!(check.contains("360 s in the past"), "{check}");
    }

    #[test]
    fn incidentio_non_numeric_or_absurd_timestamp_is_refused() {
        for ts in ["yesterday", "1614265330.5", "99999999999999999999999"] {
            let headers = headers(&[(WEBHOOK_ID, SW_ID), (WEBHOOK_TIMESTAMP, ts), (WEBHOOK_SIGNATURE, SW_SIGNATURE)]);
            let check = refused(incidentio(&[SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
            assert!(check.contains("not a whole number of unix seconds"), "{ts}: {check}");
        }
        let extreme = sw_headers(SW_ID, i64::MIN, SW_SIGNATURE);
        refused(incidentio(&[SW_KEY], &extreme, SW_PAYLOAD, SW_TIMESTAMP));
        let extreme = sw_headers(SW_ID, i64::MAX, SW_SIGNATURE);
        refused(incidentio(&[SW_KEY], &extreme, SW_PAYLOAD, SW_TIMESTAMP));
    }

    #[test]
    fn incidentio_body_changed_after_signing_is_refused() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        refused(incidentio(&[SW_KEY], &headers, br#"{"test": 2432232315}"#, SW_TIMESTAMP));
    }

    #[test]
    fn incidentio_signature_replayed_under_another_id_or_timestamp_is_refused() {
        let other_id = sw_headers("msg_other", SW_TIMESTAMP, SW_SIGNATURE);
        refused(incidentio(&[SW_KEY], &other_id, SW_PAYLOAD, SW_TIMESTAMP));
        let other_ts = sw_headers(SW_ID, SW_TIMESTAMP + 1, SW_SIGNATURE);
        refused(incidentio(&[SW_KEY], &other_ts, SW_PAYLOAD, SW_TIMESTAMP));
    }

    #[test]
    fn incidentio_rotated_second_key_is_accepted() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        assert_eq!(incidentio(&[OTHER_KEY, SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
    }

    #[test]
    fn incidentio_delivery_signed_for_another_tenant_is_refused() {
        let tenant_a = "whsec_dGVuYW50LWEtc2lnbmluZy1rZXktMDEyMzQ1Njc4OQ==";
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, &sw_sign(tenant_a, SW_ID, SW_TIMESTAMP, SW_PAYLOAD));
        assert_eq!(incidentio(&[tenant_a], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
        refused(incidentio(&[OTHER_KEY, SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
    }

    #[test]
    fn incidentio_invalid_configured_key_is_reported_and_skipped() {
        let headers = sw_headers(SW_ID, SW_TIMESTAMP, SW_SIGNATURE);
        let check = refused(incidentio(&["whsec_***"], &headers, SW_PAYLOAD, SW_TIMESTAMP));
        assert!(check.contains("fix the configuration"), "{check}");
        // A broken key next to a good one does not block rotation.
        assert_eq!(incidentio(&["whsec_***", SW_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP), Ok(()));
        let check = refused(incidentio(&["whsec_***", OTHER_KEY], &headers, SW_PAYLOAD, SW_TIMESTAMP));
        assert!(check.contains("1 configured key(s) are not valid base64"), "{check}");
    }

    // ------------------------------------------------------------------------
    // GitLab

    fn gitlab_headers(token: Option<&str>, signed: bool) -> HeaderMap {
        let mut map = if signed { sw_headers(GITLAB_ID, GITLAB_TIMESTAMP, GITLAB_SIGNATURE) } else { HeaderMap::new() };
        if let Some(token) = token {
            map.insert(GITLAB_TOKEN, HeaderValue::from_str(token).expect("test token"));
        }
        map
    }

    fn gitlab(configured: &[&str], headers: &HeaderMap) -> Result<(), AuthError> {
        verify(Origin::Gitlab, &secrets(configured), headers, GITLAB_MR_MERGE, at(GITLAB_TIMESTAMP))
    }

    #[test]
    fn gitlab_matching_token_is_accepted() {
        assert_eq!(gitlab(&[GITLAB_SECRET_TOKEN], &gitlab_headers(Some(GITLAB_SECRET_TOKEN), false)), Ok(()));
    }

    #[test]
    fn gitlab_missing_token_is_refused_when_a_token_is_configured() {
        let check = refused(gitlab(&[GITLAB_SECRET_TOKEN], &gitlab_headers(None, false)));
        assert_eq!(check, "the X-Gitlab-Token header is missing");
    }

    #[test]
    fn gitlab_wrong_or_truncated_or_extended_token_is_refused() {
        let truncated = &GITLAB_SECRET_TOKEN[..GITLAB_SECRET_TOKEN.len() - 1];
        let extended = format!("{GITLAB_SECRET_TOKEN}x");
        for token in [OTHER_SECRET, truncated, extended.as_str()] {
            let check = refused(gitlab(&[GITLAB_SECRET_TOKEN], &gitlab_headers(Some(token), false)));
            assert_eq!(check, "the X-Gitlab-Token header matches no secret configured for gitlab");
        }
    }

    #[test]
    fn gitlab_rotated_second_token_is_accepted() {
        let headers = gitlab_headers(Some(GITLAB_SECRET_TOKEN), false);
        assert_eq!(gitlab(&[OTHER_SECRET, GITLAB_SECRET_TOKEN], &headers), Ok(()));
    }

    #[test]
    fn gitlab_token_of_another_tenant_is_refused() {
        let headers = gitlab_headers(Some("tenant-a-gitlab-token"), false);
        refused(gitlab(&["tenant-b-gitlab-token", "tenant-b-rotated"], &headers));
    }

    #[test]
    fn gitlab_signed_sample_verifies_with_the_signature_listed_in_the_events_readme() {
        assert_eq!(gitlab(&[SW_KEY], &gitlab_headers(None, true)), Ok(()));
    }

    #[test]
    fn gitlab_signing_key_only_requires_the_signature_headers() {
        let check = refused(gitlab(&[SW_KEY], &gitlab_headers(None, false)));
        assert_eq!(check, "the webhook-id header is missing");
        // A token is no substitute when only signing keys are configured.
        let check = refused(gitlab(&[SW_KEY], &gitlab_headers(Some(GITLAB_SECRET_TOKEN), false)));
        assert_eq!(check, "the webhook-id header is missing");
    }

    #[test]
    fn gitlab_valid_token_and_valid_signature_are_accepted() {
        let headers = gitlab_headers(Some(GITLAB_SECRET_TOKEN), true);
        assert_eq!(gitlab(&[GITLAB_SECRET_TOKEN, SW_KEY], &headers), Ok(()));
    }

    #[test]
    fn gitlab_valid_token_without_signature_is_accepted_when_both_are_configured() {
        let headers = gitlab_headers(Some(GITLAB_SECRET_TOKEN), false);
        assert_eq!(gitlab(&[GITLAB_SECRET_TOKEN, SW_KEY], &headers), Ok(()));
    }

    #[test]
    fn gitlab_valid_signature_without_token_is_refused_when_a_token_is_configured() {
        let check = refused(gitlab(&[GITLAB_SECRET_TOKEN, SW_KEY], &gitlab_headers(None, true)));
        assert_eq!(check, "the X-Gitlab-Token header is missing");
    }

    #[test]
    fn gitlab_valid_token_with_a_bad_signature_is_refused() {
        let mut headers = gitlab_headers(Some(GITLAB_SECRET_TOKEN), true);
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_static(SW_SIGNATURE));
        let check = refused(gitlab(&[GITLAB_SECRET_TOKEN, SW_KEY], &headers));
        assert!(check.contains("matches no secret configured for gitlab"), "{check}");
    }

    #[test]
    fn gitlab_signature_sent_without_a_configured_signing_key_is_refused_saying_so() {
        let check = refused(gitlab(&[GITLAB_SECRET_TOKEN], &gitlab_headers(Some(GITLAB_SECRET_TOKEN), true)));
        assert_eq!(check, "a webhook-signature header was sent but no whsec_ signing key is configured for gitlab");
    }

    #[test]
    fn gitlab_empty_signature_header_does_not_bypass_the_signature_check() {
        let mut headers = gitlab_headers(Some(GITLAB_SECRET_TOKEN), true);
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_static(""));
        let check = refused(gitlab(&[GITLAB_SECRET_TOKEN, SW_KEY], &headers));
        assert!(check.contains("webhook-signature header is empty"), "{check}");
    }

    #[test]
    fn gitlab_stale_or_future_signature_is_refused() {
        let headers = gitlab_headers(None, true);
        for now in [GITLAB_TIMESTAMP + 360, GITLAB_TIMESTAMP - 360] {
            let check = refused(verify(Origin::Gitlab, &secrets(&[SW_KEY]), &headers, GITLAB_MR_MERGE, at(now)));
            assert!(check.contains("360 s"), "{check}");
        }
    }

    #[test]
    fn gitlab_body_changed_after_signing_is_refused() {
        let mut body = GITLAB_MR_MERGE.to_vec();
        body.pop();
        let headers = gitlab_headers(None, true);
        refused(verify(Origin::Gitlab, &secrets(&[SW_KEY]), &headers, &body, at(GITLAB_TIMESTAMP)));
    }

    #[test]
    fn gitlab_truncated_or_malformed_signature_is_refused() {
        for value in ["v1,C2NXhZMfHwaeQ+GxwDl/LTmzjjzKqeVKuVRjg5s8", "v1,C2NXhZMf&&&&"] {
            let mut headers = gitlab_headers(None, true);
            headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_static(value));
            refused(gitlab(&[SW_KEY], &headers));
        }
    }

    #[test]
    fn gitlab_rotated_signing_key_is_accepted_and_another_tenants_key_is_refused() {
        let headers = gitlab_headers(None, true);
        assert_eq!(gitlab(&[OTHER_KEY, SW_KEY], &headers), Ok(()));
        refused(gitlab(&[OTHER_KEY], &headers));
    }

    // ------------------------------------------------------------------------
    // PagerDuty

    fn pagerduty(configured: &[&str], signature: Option<&str>, body: &[u8]) -> Result<(), AuthError> {
        let headers = match signature {
            Some(value) => headers(&[(PAGERDUTY_SIGNATURE, value)]),
            None => HeaderMap::new(),
        };
        verify(Origin::Pagerduty, &secrets(configured), &headers, body, any_time())
    }

    #[test]
    fn pagerduty_go_pagerduty_published_vector_verifies() {
        assert_eq!(PD_BODY.len(), 1655);
        assert_eq!(pagerduty(&[PD_SECRET], Some(PD_SIGNATURE), PD_BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn pagerduty_go_pagerduty_mismatch_vector_is_refused() {
        let check = refused(pagerduty(&[PD_SECRET], Some(PD_MISMATCH), PD_BODY.as_bytes()));
        assert_eq!(check, "the X-PagerDuty-Signature header matches no secret configured for pagerduty");
    }

    #[test]
    fn pagerduty_sample_files_verify_with_the_signatures_listed_in_the_events_readme() {
        let samples: [(&[u8], &str); 5] = [
            (
                include_bytes!("../../../events/pagerduty/incident.acknowledged.json"),
                "v1=20b71a0f9eab54a0d4276dfb4f59a15f5aee122280f776405d8bb8a174436df1",
            ),
            (
                include_bytes!("../../../events/pagerduty/incident.priority_updated.json"),
                "v1=ff712d8af0b38191879b5bd403e52746fc8072f460cea1fea99c851b6ed0a99d",
            ),
            (
                include_bytes!("../../../events/pagerduty/incident.reopened.json"),
                "v1=7fabb7b7a48bfe3dbcec95448dd7ab278488d9e4c3892b4944cf76eefd4178e9",
            ),
            (
                include_bytes!("../../../events/pagerduty/incident.resolved.json"),
                "v1=bdd24ddf51811df9a0c7aa0d657a7d4e11632495d1a1157d60e26720ac1e4d85",
            ),
            (
                include_bytes!("../../../events/pagerduty/incident.triggered.json"),
                "v1=f4970f1f8b7c2a97349925da4f4dae81ca51d64d92017901c0eeb40600ae7e94",
            ),
        ];
        for (body, signature) in samples {
            assert_eq!(pagerduty(&[PD_SECRET], Some(signature), body), Ok(()), "{signature}");
        }
    }

    #[test]
    fn pagerduty_second_of_several_signatures_matching_is_accepted() {
        let header = format!("{PD_MISMATCH} ,  {PD_SIGNATURE}");
        assert_eq!(pagerduty(&[PD_SECRET], Some(&header), PD_BODY.as_bytes()), Ok(()));
        let no_spaces = format!("{PD_MISMATCH},{PD_SIGNATURE}");
        assert_eq!(pagerduty(&[PD_SECRET], Some(&no_spaces), PD_BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn pagerduty_unknown_versions_are_ignored() {
        let header = format!("v2=abc, v0={}, {PD_SIGNATURE}", "ab".repeat(32));
        assert_eq!(pagerduty(&[PD_SECRET], Some(&header), PD_BODY.as_bytes()), Ok(()));
        let only_unknown = PD_SIGNATURE.replace("v1=", "v2=");
        let check = refused(pagerduty(&[PD_SECRET], Some(&only_unknown), PD_BODY.as_bytes()));
        assert_eq!(check, "the X-PagerDuty-Signature header has no v1= signature");
    }

    #[test]
    fn pagerduty_missing_signature_header_is_refused() {
        let check = refused(pagerduty(&[PD_SECRET], None, PD_BODY.as_bytes()));
        assert_eq!(check, "the X-PagerDuty-Signature header is missing");
    }

    #[test]
    fn pagerduty_wrong_secret_is_refused() {
        refused(pagerduty(&[OTHER_SECRET], Some(PD_SIGNATURE), PD_BODY.as_bytes()));
    }

    #[test]
    fn pagerduty_secret_is_used_as_raw_bytes_not_base64_decoded() {
        let decoded = BASE64.decode(PD_SECRET).expect("the go-pagerduty secret happens to be base64");
        let signature = format!("v1={}", hex_hmac(&decoded, PD_BODY.as_bytes()));
        refused(pagerduty(&[PD_SECRET], Some(&signature), PD_BODY.as_bytes()));
    }

    #[test]
    fn pagerduty_truncated_or_malformed_hex_signature_is_refused_as_malformed() {
        let truncated = &PD_SIGNATURE[..PD_SIGNATURE.len() - 1];
        let not_hex = format!("v1={}", "g".repeat(64));
        for value in [truncated, not_hex.as_str(), "v1=", "v1"] {
            let check = refused(pagerduty(&[PD_SECRET], Some(value), PD_BODY.as_bytes()));
            assert!(check.contains("64 hex digits") || check.contains("no v1= signature"), "{value}: {check}");
        }
    }

    #[test]
    fn pagerduty_body_changed_after_signing_is_refused() {
        let changed = PD_BODY.replace("\"P1\"", "\"P2\"");
        refused(pagerduty(&[PD_SECRET], Some(PD_SIGNATURE), changed.as_bytes()));
    }

    #[test]
    fn pagerduty_rotated_second_secret_is_accepted() {
        assert_eq!(pagerduty(&[OTHER_SECRET, PD_SECRET], Some(PD_SIGNATURE), PD_BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn pagerduty_delivery_signed_for_another_tenant_is_refused() {
        let signature = format!("v1={}", hex_hmac(b"tenant-a-pd-secret", PD_BODY.as_bytes()));
        assert_eq!(pagerduty(&["tenant-a-pd-secret"], Some(&signature), PD_BODY.as_bytes()), Ok(()));
        refused(pagerduty(&["tenant-b-pd-secret", PD_SECRET], Some(&signature), PD_BODY.as_bytes()));
    }

    // ------------------------------------------------------------------------
    // Alertmanager

    fn alertmanager(configured: &[&str], authorization: Option<&str>) -> Result<(), AuthError> {
        let headers = match authorization {
            Some(value) => headers(&[(AUTHORIZATION, value)]),
            None => HeaderMap::new(),
        };
        verify(Origin::Alertmanager, &secrets(configured), &headers, b"{}", any_time())
    }

    #[test]
    fn alertmanager_matching_bearer_token_is_accepted_with_any_scheme_case() {
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let value = format!("{scheme} {ALERTMANAGER_TOKEN}");
            assert_eq!(alertmanager(&[ALERTMANAGER_TOKEN], Some(&value)), Ok(()), "{scheme}");
        }
    }

    #[test]
    fn alertmanager_missing_authorization_is_refused() {
        let check = refused(alertmanager(&[ALERTMANAGER_TOKEN], None));
        assert_eq!(check, "the Authorization header is missing");
    }

    #[test]
    fn alertmanager_non_bearer_authorization_is_refused_as_malformed() {
        for value in ["Basic YWxlcnQ6bWFuYWdlcg==", ALERTMANAGER_TOKEN, "Bearer"] {
            let check = refused(alertmanager(&[ALERTMANAGER_TOKEN], Some(value)));
            assert_eq!(check, "the Authorization header is not a Bearer token", "{value}");
        }
    }

    #[test]
    fn alertmanager_wrong_or_truncated_token_is_refused() {
        let truncated = format!("Bearer {}", &ALERTMANAGER_TOKEN[..ALERTMANAGER_TOKEN.len() - 1]);
        for value in ["Bearer wrong", truncated.as_str()] {
            let check = refused(alertmanager(&[ALERTMANAGER_TOKEN], Some(value)));
            assert_eq!(check, "the Authorization header matches no secret configured for alertmanager");
        }
    }

    #[test]
    fn alertmanager_rotated_second_token_is_accepted() {
        let value = format!("Bearer {ALERTMANAGER_TOKEN}");
        assert_eq!(alertmanager(&[OTHER_SECRET, ALERTMANAGER_TOKEN], Some(&value)), Ok(()));
    }

    #[test]
    fn alertmanager_token_of_another_tenant_is_refused() {
        refused(alertmanager(&["tenant-b-token"], Some("Bearer tenant-a-token")));
    }

    #[test]
    fn argocd_bearer_token_is_checked_and_named_as_argocds() {
        let check = |value: Option<&str>| {
            let headers = value.map(|v| headers(&[(AUTHORIZATION, v)])).unwrap_or_default();
            verify(Origin::Argocd, &secrets(&[ALERTMANAGER_TOKEN]), &headers, b"{}", any_time())
        };
        assert_eq!(check(Some(&format!("Bearer {ALERTMANAGER_TOKEN}"))), Ok(()));
        assert_eq!(
            refused(check(Some("Bearer wrong"))),
            "the Authorization header matches no secret configured for argocd"
        );
        assert_eq!(refused(check(None)), "the Authorization header is missing");
        assert_eq!(
            verify(Origin::Argocd, &[], &HeaderMap::new(), b"{}", any_time()),
            Err(AuthError::NoSecret { origin: Origin::Argocd })
        );
    }

    // ------------------------------------------------------------------------
    // Nothing from outside panics

    const NAMES: [&str; 8] = [
        GITHUB_SIGNATURE,
        GITLAB_TOKEN,
        PAGERDUTY_SIGNATURE,
        WEBHOOK_ID,
        WEBHOOK_TIMESTAMP,
        WEBHOOK_SIGNATURE,
        AUTHORIZATION,
        "svix-signature",
    ];

    fn header_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..120),
            "sha256=[0-9a-fA-Fz]{0,70}".prop_map(String::into_bytes),
            "(v[0-9a]{0,2}[=,][A-Za-z0-9+/=]{0,70}[ ,]{0,3}){0,4}".prop_map(String::into_bytes),
            "[-+]?[0-9]{0,22}".prop_map(String::into_bytes),
            "(Bearer|bearer|Basic)? ?[ -~]{0,40}".prop_map(String::into_bytes),
            Just(SW_SIGNATURE.as_bytes().to_vec()),
            Just(PD_SIGNATURE.as_bytes().to_vec()),
            Just(b"1614265330".to_vec()),
        ]
    }

    fn configured() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![
                "[ -~]{0,30}",
                "whsec_[A-Za-z0-9+/=*]{0,48}",
                Just(SW_KEY.to_string()),
                Just(GITLAB_SECRET_TOKEN.to_string()),
            ],
            0..4,
        )
    }

    proptest! {
        #[test]
        fn arbitrary_headers_and_bodies_never_panic_verify(
            pairs in proptest::collection::vec((0..NAMES.len(), header_value()), 0..10),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            configured in configured(),
            now in -8_000_000_000i64..8_000_000_000,
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    headers.append(NAMES[name], value);
                }
            }
            let now = at(now);
            for origin in Origin::ALL {
                let _ = verify(origin, &configured, &headers, &body, now);
            }
        }
    }
}
