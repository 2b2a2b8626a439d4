//! Turns fuzzer bytes into a webhook delivery: the first byte picks the
//! source, the second an event type header, the rest is the body.

use changehub::ingest::Origin;
use http::{HeaderMap, HeaderValue};

pub const ORIGINS: [Origin; 5] = [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio];

const GITHUB_EVENTS: [&str; 8] =
    ["deployment", "deployment_status", "workflow_run", "pull_request", "push", "deployment_protection_rule", "ping", "star"];
const GITLAB_EVENTS: [&str; 4] = ["Deployment Hook", "Merge Request Hook", "Push Hook", "Pipeline Hook"];

pub fn delivery(data: &[u8]) -> Option<(Origin, HeaderMap, &[u8])> {
    let (&pick, rest) = data.split_first()?;
    let (&event, body) = rest.split_first()?;
    let origin = ORIGINS[pick as usize % ORIGINS.len()];
    let mut h = HeaderMap::new();
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut h, "x-github-event", GITHUB_EVENTS[event as usize % GITHUB_EVENTS.len()]);
    set(&mut h, "x-gitlab-event", GITLAB_EVENTS[event as usize % GITLAB_EVENTS.len()]);
    for k in ["x-github-delivery", "x-gitlab-event-uuid", "idempotency-key", "x-webhook-id", "webhook-id"] {
        set(&mut h, k, "fuzz-delivery");
    }
    Some((origin, h, body))
}
