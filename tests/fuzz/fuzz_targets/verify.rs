//! Signature verification on arbitrary header values and bodies: never
//! panics, and never accepts a delivery without the secret.
#![no_main]

use changehub::ingest::signature;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((origin, mut headers, rest)) = common::delivery(data) else { return };
    // Split the rest into a signature-ish header value and a body.
    let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (value, body) = rest.split_at(cut);
    if let Ok(v) = HeaderValue::from_bytes(value) {
        for k in ["x-hub-signature-256", "x-gitlab-token", "x-pagerduty-signature", "webhook-signature", "authorization"] {
            headers.insert(k, v.clone());
        }
        headers.insert("webhook-timestamp", HeaderValue::from_static("1700000000"));
    }
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let secrets = vec!["a fuzzing secret the input cannot know".to_owned()];
    assert!(signature::verify(origin, &secrets, &headers, body, now).is_err(), "accepted a forged delivery");
});
