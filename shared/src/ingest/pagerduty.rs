//! PagerDuty V3 webhooks: one incident event per delivery.
//!
//! The delivery id is the `X-Webhook-Id` header, which PagerDuty repeats on
//! every retry of the same webhook. The event type is only in the body
//! (`event.event_type`):
//!
//! | `event_type` | fact |
//! | --- | --- |
//! | `incident.triggered` | Incident Triggered |
//! | `incident.acknowledged` | Incident Acknowledged |
//! | `incident.resolved` | Incident Resolved |
//! | `incident.reopened` | Incident Reopened |
//! | `incident.priority_updated` | Incident Priority Changed |
//! | anything else (`incident.annotated`, `service.*`, `pagey.ping`, ...) | ignored |
//!
//! The body is read twice: first only the event type, then, for the types
//! above, the whole event. An ignored type is therefore never rejected for a
//! `data` shape the hub does not know (a service, a ping).

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;

use super::canonical::{Canonical, Fact, Incident, NormalizeError, Normalized, Origin, ServiceKey};
use super::{parse_body, required_header};

/// The header PagerDuty repeats on every attempt of one webhook.
pub const DELIVERY_HEADER: &str = "X-Webhook-Id";

/// The `X-Webhook-Id` header.
pub fn delivery_id(headers: &HeaderMap, _body: &[u8]) -> Result<String, NormalizeError> {
    required_header(headers, DELIVERY_HEADER).map(str::to_owned)
}

/// The signed body's `event.id`, unique per PagerDuty event, if it has one.
pub fn event_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Delivery<Id>>(body).ok().map(|d| d.event.id).filter(|id| !id.trim().is_empty())
}

/// One incident fact, or `Ignored(event_type)` for the types the hub does not use.
pub fn normalize(_headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let head: Delivery<EventHead> = parse_body(body)?;
    let event_type = head.event.event_type;
    let make: fn(Incident) -> Fact = match event_type.as_str() {
        "incident.triggered" => Fact::IncidentTriggered,
        "incident.acknowledged" => Fact::IncidentAcknowledged,
        "incident.resolved" => Fact::IncidentResolved,
        "incident.reopened" => Fact::IncidentReopened,
        "incident.priority_updated" => Fact::IncidentPriorityChanged,
        _ => return Ok(Normalized::Ignored(event_type)),
    };
    let event = parse_body::<Delivery<IncidentEvent>>(body)?.event;
    let data = event.data;
    let incident = Incident {
        incident_id: data.id.clone(),
        number: data.number,
        title: data.title,
        status: data.status,
        priority: data.priority.and_then(|p| non_empty(p.summary)),
        urgency: non_empty(data.urgency),
        created_at: data.created_at,
    };
    Ok(Normalized::Events(vec![Canonical {
        origin: Origin::Pagerduty,
        fact: make(incident),
        external_id: data.id,
        occurred_at: event.occurred_at,
        actor: event.agent.and_then(|a| non_empty(a.email).or(non_empty(a.summary))),
        environment: None,
        url: non_empty(data.html_url),
        service_key: data.service.and_then(|s| non_empty(s.id)).map(ServiceKey::PagerdutyService),
    }]))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
struct Delivery<E> {
    event: E,
}

#[derive(Deserialize)]
struct EventHead {
    event_type: String,
}

#[derive(Deserialize)]
struct IncidentEvent {
    occurred_at: DateTime<Utc>,
    /// `null` when automation triggered the event.
    agent: Option<Reference>,
    data: IncidentData,
}

#[derive(Deserialize)]
struct IncidentData {
    id: String,
    number: Option<u64>,
    title: String,
    status: String,
    priority: Option<Reference>,
    urgency: Option<String>,
    created_at: Option<DateTime<Utc>>,
    html_url: Option<String>,
    service: Option<Reference>,
}

/// A PagerDuty `*_reference` object (user, service, priority...).
#[derive(Deserialize)]
struct Reference {
    id: Option<String>,
    summary: Option<String>,
    /// Not in user references today; used when present.
    email: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::support::testing as fuzz;
    use crate::ingest::support::testing::at;
    use http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::json;

    const TRIGGERED: &[u8] = include_bytes!("../../../events/pagerduty/incident.triggered.json");
    const ACKNOWLEDGED: &[u8] = include_bytes!("../../../events/pagerduty/incident.acknowledged.json");
    const RESOLVED: &[u8] = include_bytes!("../../../events/pagerduty/incident.resolved.json");
    const REOPENED: &[u8] = include_bytes!("../../../events/pagerduty/incident.reopened.json");
    const PRIORITY_UPDATED: &[u8] = include_bytes!("../../../events/pagerduty/incident.priority_updated.json");
    const SAMPLES: &[&[u8]] = &[TRIGGERED, ACKNOWLEDGED, RESOLVED, REOPENED, PRIORITY_UPDATED];

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-webhook-id", HeaderValue::from_static("b4f3a2c1-7e6d-4f5a-9b8c-0d1e2f3a4b5c"));
        h
    }

    fn one(body: &[u8]) -> Canonical {
        match normalize(&headers(), body) {
            Ok(Normalized::Events(mut events)) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn incident(fact: &Fact) -> &Incident {
        match fact {
            Fact::IncidentTriggered(i)
            | Fact::IncidentAcknowledged(i)
            | Fact::IncidentResolved(i)
            | Fact::IncidentReopened(i)
            | Fact::IncidentPriorityChanged(i) => i,
            other => panic!("not an incident fact: {other:?}"),
        }
    }

    #[test]
    fn triggered_sample_becomes_incident_triggered_without_actor() {
        let c = one(TRIGGERED);
        assert!(matches!(c.fact, Fact::IncidentTriggered(_)));
        let i = incident(&c.fact);
        assert_eq!(i.incident_id, "Q2LKX3U8ZP7WNM");
        assert_eq!(i.number, Some(4821));
        assert_eq!(i.title, "[FIRING:2] HighErrorRate checkout-service (critical)");
        assert_eq!(i.status, "triggered");
        assert_eq!(i.priority.as_deref(), Some("P2"));
        assert_eq!(i.urgency.as_deref(), Some("high"));
        assert_eq!(i.created_at, Some(at("2026-09-14T10:41:07Z")));
        assert_eq!(c.origin, Origin::Pagerduty);
        assert_eq!(c.external_id, "Q2LKX3U8ZP7WNM");
        assert_eq!(c.occurred_at, at("2026-09-14T10:41:07.512Z"));
        assert_eq!(c.actor, None, "agent is null for automation");
        assert_eq!(c.environment, None);
        assert_eq!(c.url.as_deref(), Some("https://acme.pagerduty.com/incidents/Q2LKX3U8ZP7WNM"));
        assert_eq!(c.service_key, Some(ServiceKey::PagerdutyService("PSV7Q2K".into())));
    }

    #[test]
    fn acknowledged_sample_becomes_incident_acknowledged_by_the_agent() {
        let c = one(ACKNOWLEDGED);
        assert!(matches!(c.fact, Fact::IncidentAcknowledged(_)));
        assert_eq!(incident(&c.fact).status, "acknowledged");
        assert_eq!(c.actor.as_deref(), Some("Ana Acme"));
        assert_eq!(c.occurred_at, at("2026-09-14T10:43:55.208Z"));
    }

    #[test]
    fn resolved_sample_becomes_incident_resolved() {
        let c = one(RESOLVED);
        assert!(matches!(c.fact, Fact::IncidentResolved(_)));
        assert_eq!(incident(&c.fact).status, "resolved");
        assert_eq!(c.actor.as_deref(), Some("Raj Acme"));
        assert_eq!(c.service_key, Some(ServiceKey::PagerdutyService("PSV7Q2K".into())));
    }

    #[test]
    fn reopened_sample_becomes_incident_reopened() {
        let c = one(REOPENED);
        assert!(matches!(c.fact, Fact::IncidentReopened(_)));
        assert_eq!(incident(&c.fact).status, "triggered");
        assert_eq!(c.occurred_at, at("2026-09-14T11:29:03.118Z"));
    }

    #[test]
    fn priority_updated_sample_becomes_priority_changed_with_the_new_priority() {
        let c = one(PRIORITY_UPDATED);
        assert!(matches!(c.fact, Fact::IncidentPriorityChanged(_)));
        assert_eq!(incident(&c.fact).priority.as_deref(), Some("P1"));
    }

    #[test]
    fn agent_email_is_preferred_over_its_summary() {
        let mut v: serde_json::Value = serde_json::from_slice(ACKNOWLEDGED).expect("json");
        v["event"]["agent"]["email"] = json!("ana@acme.example");
        let c = one(&serde_json::to_vec(&v).expect("json"));
        assert_eq!(c.actor.as_deref(), Some("ana@acme.example"));
    }

    #[test]
    fn removed_priority_is_none() {
        let mut v: serde_json::Value = serde_json::from_slice(PRIORITY_UPDATED).expect("json");
        v["event"]["data"]["priority"] = json!(null);
        let c = one(&serde_json::to_vec(&v).expect("json"));
        assert_eq!(incident(&c.fact).priority, None);
    }

    #[test]
    fn other_event_types_are_ignored_whatever_their_data() {
        for event_type in ["incident.annotated", "service.updated", "pagey.ping", "incident.delegated"] {
            let body = json!({"event": {"event_type": event_type, "data": {"type": "service", "id": 7}}});
            let got = normalize(&headers(), &serde_json::to_vec(&body).expect("json")).expect("ignored, not an error");
            assert_eq!(got, Normalized::Ignored(event_type.to_owned()));
        }
    }

    #[test]
    fn delivery_id_is_the_webhook_id_header() {
        assert_eq!(delivery_id(&headers(), TRIGGERED).expect("id"), "b4f3a2c1-7e6d-4f5a-9b8c-0d1e2f3a4b5c");
    }

    #[test]
    fn missing_webhook_id_header_is_an_error_naming_it() {
        let err = delivery_id(&HeaderMap::new(), TRIGGERED).expect_err("no header");
        assert_eq!(err.field.as_deref(), Some(DELIVERY_HEADER));
        assert!(err.message.contains(DELIVERY_HEADER), "{err}");
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = normalize(&headers(), b"{\"event\": ").expect_err("truncated");
        assert!(err.message.contains("not valid JSON"), "{err}");
        assert!(normalize(&headers(), b"").is_err());
    }

    #[test]
    fn missing_event_type_is_an_error_naming_it() {
        let err = normalize(&headers(), br#"{"event": {"data": {}}}"#).expect_err("no type");
        assert!(err.message.contains("event_type"), "{err}");
    }

    #[test]
    fn wrong_typed_field_is_an_error_naming_its_path() {
        let mut v: serde_json::Value = serde_json::from_slice(TRIGGERED).expect("json");
        v["event"]["data"]["number"] = json!("4821");
        let err = normalize(&headers(), &serde_json::to_vec(&v).expect("json")).expect_err("string number");
        assert_eq!(err.field.as_deref(), Some("event.data.number"));

        let mut v: serde_json::Value = serde_json::from_slice(TRIGGERED).expect("json");
        v["event"]["occurred_at"] = json!("yesterday");
        let err = normalize(&headers(), &serde_json::to_vec(&v).expect("json")).expect_err("bad time");
        assert_eq!(err.field.as_deref(), Some("event.occurred_at"));
    }

    const WORDS: &[&str] = &[
        "event",
        "event_type",
        "data",
        "id",
        "occurred_at",
        "agent",
        "summary",
        "email",
        "number",
        "title",
        "status",
        "priority",
        "urgency",
        "created_at",
        "html_url",
        "service",
        "incident.triggered",
        "incident.resolved",
        "incident.priority_updated",
        "pagey.ping",
    ];

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), id in "\\PC{0,24}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&id) {
                h.insert("x-webhook-id", v);
            }
            let _ = delivery_id(&h, &body);
            let _ = normalize(&h, &body);
        }

        #[test]
        fn arbitrary_json_never_panics(v in fuzz::json_with(WORDS)) {
            let body = serde_json::to_vec(&v).expect("json");
            let _ = normalize(&headers(), &body);
            let _ = normalize(&headers(), &serde_json::to_vec(&json!({"event": v})).expect("json"));
        }

        #[test]
        fn mutated_samples_never_panic(body in fuzz::mutated(SAMPLES, WORDS)) {
            if let Err(e) = normalize(&headers(), &body) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
