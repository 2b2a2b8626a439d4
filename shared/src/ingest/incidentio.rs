//! incident.io webhooks (public incident events, Standard Webhooks delivery).
//!
//! The delivery id is the `webhook-id` header, the same on every retry. The
//! body is `{"event_type": T, T: payload}`; the event type is in the body only.
//!
//! Which fact an event becomes depends on the incident's status *category*
//! (incident.io's fixed enum; status names such as "Fixing" are per
//! organisation):
//!
//! | event | new category | fact |
//! | --- | --- | --- |
//! | any of the three | closed: `learning`, `closed`, `declined`, `canceled`, `merged` | Incident Resolved |
//! | `incident_status_updated_v2` | open (any other), `previous_status` closed | Incident Reopened |
//! | `incident_created_v2` | open | Incident Triggered |
//! | `incident_updated_v2`, `incident_status_updated_v2` | `triage` | Incident Triggered (nobody has accepted it yet) |
//! | `incident_updated_v2`, `incident_status_updated_v2` | `live`, `paused`, any category added later | Incident Acknowledged |
//!
//! Rules apply top to bottom. `learning` is incident.io's post-incident
//! phase: the incident itself is over. `declined`, `canceled` and `merged`
//! end it as well (a triage that was not a real incident, or one folded into
//! another); the fact's `status` keeps the status name, which tells them
//! apart. An incident *created* closed was declared after the fact (a
//! retrospective incident): it is reported resolved, never as open.
//! `incident_updated_v2` carries no previous status, so only
//! `incident_status_updated_v2` can report a reopening. If incident.io sends
//! both events for one status change (unverified), that change gives two
//! facts, with different delivery ids.
//!
//! Ignored: every other event type (including `private_incident.*`, whose
//! payload is only an id), and incidents in `test` or `tutorial` mode, which
//! are not real incidents.
//!
//! The fact's `status` is the incident's status name (e.g. "Fixing"),
//! `priority` its severity name, `number` the digits of its reference
//! (`INC-1187` → 1187). The service key is the first value of the first
//! custom field whose name mentions "service" (e.g. "Affected service").

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Deserialize;

use super::canonical::{Canonical, Fact, Incident, NormalizeError, Normalized, Origin, ServiceKey};
use super::{parse_body, required_header};

/// The Standard Webhooks message id, the same on every retry.
pub const DELIVERY_HEADER: &str = "webhook-id";

const CREATED: &str = "public_incident.incident_created_v2";
const UPDATED: &str = "public_incident.incident_updated_v2";
const STATUS_UPDATED: &str = "public_incident.incident_status_updated_v2";

/// Status categories in which the incident is over.
const CLOSED_CATEGORIES: [&str; 5] = ["learning", "closed", "declined", "canceled", "merged"];

/// The `webhook-id` header.
pub fn delivery_id(headers: &HeaderMap, _body: &[u8]) -> Result<String, NormalizeError> {
    required_header(headers, DELIVERY_HEADER).map(str::to_owned)
}

/// One incident fact, or `Ignored` (see the module docs for the mapping).
pub fn normalize(_headers: &HeaderMap, body: &[u8]) -> Result<Normalized, NormalizeError> {
    let head: Head = parse_body(body)?;
    let (incident, previous_category, created) = match head.event_type.as_str() {
        CREATED => (parse_body::<Created>(body)?.incident, None, true),
        UPDATED => (parse_body::<Updated>(body)?.incident, None, false),
        STATUS_UPDATED => {
            let update = parse_body::<StatusUpdated>(body)?.update;
            let mut incident = update.incident;
            // The event's own new status wins over the embedded incident's.
            if let Some(new_status) = update.new_status {
                incident.incident_status = new_status;
            }
            (incident, update.previous_status.map(|s| s.category), false)
        }
        _ => return Ok(Normalized::Ignored(head.event_type)),
    };
    if let Some(mode @ ("test" | "tutorial")) = incident.mode.as_deref() {
        return Ok(Normalized::Ignored(format!("incident.io {mode} incident")));
    }

    let category = incident.incident_status.category.as_str();
    let closed = |c: &str| CLOSED_CATEGORIES.contains(&c);
    let make: fn(Incident) -> Fact = if closed(category) {
        Fact::IncidentResolved
    } else if previous_category.as_deref().is_some_and(closed) {
        Fact::IncidentReopened
    } else if created || category == "triage" {
        Fact::IncidentTriggered
    } else {
        Fact::IncidentAcknowledged
    };

    let service_key = affected_service(&incident.custom_field_entries).map(ServiceKey::IncidentioService);
    let actor = if created { incident.creator.and_then(Creator::actor) } else { None };
    let occurred_at = if created { incident.created_at } else { incident.updated_at.unwrap_or(incident.created_at) };
    let fact = make(Incident {
        incident_id: incident.id.clone(),
        number: incident.reference.as_deref().and_then(reference_number),
        title: incident.name,
        status: incident.incident_status.name,
        priority: incident.severity.and_then(|s| non_empty(s.name)),
        urgency: None,
        created_at: Some(incident.created_at),
    });
    Ok(Normalized::Events(vec![Canonical {
        origin: Origin::Incidentio,
        fact,
        external_id: incident.id,
        occurred_at,
        actor,
        environment: None,
        url: non_empty(incident.permalink),
        service_key,
    }]))
}

/// `INC-1187` → 1187.
fn reference_number(reference: &str) -> Option<u64> {
    reference.rsplit('-').next().and_then(|n| n.trim().parse().ok())
}

/// The first value of the first custom field named like "Affected service".
fn affected_service(entries: &[CustomFieldEntry]) -> Option<String> {
    entries
        .iter()
        .filter(|e| e.custom_field.name.as_deref().is_some_and(|n| n.to_ascii_lowercase().contains("service")))
        .flat_map(|e| e.values.iter())
        .find_map(|v| {
            v.value_catalog_entry
                .as_ref()
                .and_then(|c| non_empty(c.name.clone()))
                .or_else(|| v.value_option.as_ref().and_then(|o| non_empty(o.value.clone())))
                .or_else(|| non_empty(v.value_text.clone()))
        })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
struct Head {
    event_type: String,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "public_incident.incident_created_v2")]
    incident: IncidentV2,
}

#[derive(Deserialize)]
struct Updated {
    #[serde(rename = "public_incident.incident_updated_v2")]
    incident: IncidentV2,
}

#[derive(Deserialize)]
struct StatusUpdated {
    #[serde(rename = "public_incident.incident_status_updated_v2")]
    update: StatusUpdate,
}

#[derive(Deserialize)]
struct StatusUpdate {
    incident: IncidentV2,
    new_status: Option<Status>,
    previous_status: Option<Status>,
}

/// The parts of incident.io's `IncidentV2` the hub reads.
#[derive(Deserialize)]
struct IncidentV2 {
    id: String,
    name: String,
    reference: Option<String>,
    incident_status: Status,
    severity: Option<Named>,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
    permalink: Option<String>,
    creator: Option<Creator>,
    /// standard, retrospective, test, tutorial
    mode: Option<String>,
    #[serde(default)]
    custom_field_entries: Vec<CustomFieldEntry>,
}

#[derive(Deserialize)]
struct Status {
    /// triage, live, paused, learning, closed, declined, canceled, merged
    category: String,
    name: String,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

/// Who created the incident: a user, an API key or a workflow.
#[derive(Deserialize)]
struct Creator {
    user: Option<User>,
    api_key: Option<Named>,
    workflow: Option<Named>,
}

impl Creator {
    fn actor(self) -> Option<String> {
        let user = self.user.and_then(|u| non_empty(u.email).or(non_empty(u.name)));
        user.or_else(|| self.api_key.and_then(|k| non_empty(k.name)))
            .or_else(|| self.workflow.and_then(|w| non_empty(w.name)))
    }
}

#[derive(Deserialize)]
struct User {
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct CustomFieldEntry {
    custom_field: CustomField,
    #[serde(default)]
    values: Vec<CustomFieldValue>,
}

#[derive(Deserialize)]
struct CustomField {
    name: Option<String>,
}

#[derive(Deserialize)]
struct CustomFieldValue {
    value_catalog_entry: Option<Named>,
    value_option: Option<CustomFieldOption>,
    value_text: Option<String>,
}

#[derive(Deserialize)]
struct CustomFieldOption {
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::support::testing as fuzz;
    use crate::ingest::support::testing::{at, edited as edit};
    use http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const CREATED_SAMPLE: &[u8] = include_bytes!("../../../events/incidentio/public_incident.incident_created_v2.json");
    const UPDATED_SAMPLE: &[u8] = include_bytes!("../../../events/incidentio/public_incident.incident_updated_v2.json");
    const STATUS_UPDATED_SAMPLE: &[u8] =
        include_bytes!("../../../events/incidentio/public_incident.incident_status_updated_v2.json");
    const SAMPLES: &[&[u8]] = &[CREATED_SAMPLE, UPDATED_SAMPLE, STATUS_UPDATED_SAMPLE];

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_2mQk70Yb8HcT1pVxR3sN5eLwZ9aJ"));
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

    fn status(category: &str, name: &str) -> Value {
        json!({"category": category, "name": name, "id": "01STATUS", "rank": 1})
    }

    #[test]
    fn created_sample_becomes_incident_triggered_by_its_creator() {
        let c = one(CREATED_SAMPLE);
        assert!(matches!(c.fact, Fact::IncidentTriggered(_)));
        let i = incident(&c.fact);
        assert_eq!(i.incident_id, "01J8ZR2K4M6P8R0T2V4X6Z8B0D");
        assert_eq!(i.number, Some(1187));
        assert_eq!(i.title, "Elevated 5xx on checkout-service after DB pool change");
        assert_eq!(i.status, "Investigating");
        assert_eq!(i.priority.as_deref(), Some("Major"));
        assert_eq!(i.urgency, None);
        assert_eq!(i.created_at, Some(at("2026-09-14T10:44:18.204815Z")));
        assert_eq!(c.origin, Origin::Incidentio);
        assert_eq!(c.external_id, "01J8ZR2K4M6P8R0T2V4X6Z8B0D");
        assert_eq!(c.occurred_at, at("2026-09-14T10:44:18.204815Z"));
        assert_eq!(c.actor.as_deref(), Some("ana@acme.example"));
        assert_eq!(c.environment, None);
        assert_eq!(c.url.as_deref(), Some("https://app.incident.io/acme/incidents/1187"));
        assert_eq!(c.service_key, Some(ServiceKey::IncidentioService("checkout-service".into())));
    }

    #[test]
    fn updated_sample_in_a_live_status_becomes_incident_acknowledged() {
        let c = one(UPDATED_SAMPLE);
        assert!(matches!(c.fact, Fact::IncidentAcknowledged(_)));
        assert_eq!(incident(&c.fact).status, "Fixing");
        assert_eq!(c.occurred_at, at("2026-09-14T10:58:31.662190Z"));
        assert_eq!(c.actor, None, "the creator did not make the update");
        assert_eq!(c.service_key, Some(ServiceKey::IncidentioService("checkout-service".into())));
    }

    #[test]
    fn status_updated_sample_becomes_incident_acknowledged_with_the_new_status() {
        let c = one(STATUS_UPDATED_SAMPLE);
        assert!(matches!(c.fact, Fact::IncidentAcknowledged(_)));
        let i = incident(&c.fact);
        assert_eq!(i.status, "Fixing");
        assert_eq!(i.number, Some(1187));
        assert_eq!(c.external_id, "01J8ZR2K4M6P8R0T2V4X6Z8B0D");
        assert_eq!(c.occurred_at, at("2026-09-14T10:58:31.662190Z"));
        assert_eq!(c.url.as_deref(), Some("https://app.incident.io/acme/incidents/1187"));
    }

    #[test]
    fn closed_categories_become_incident_resolved() {
        for category in ["learning", "closed", "declined", "canceled", "merged"] {
            let body = edit(UPDATED_SAMPLE, |v| v[UPDATED]["incident_status"] = status(category, "Done"));
            assert!(matches!(one(&body).fact, Fact::IncidentResolved(_)), "{category}");
            let body = edit(STATUS_UPDATED_SAMPLE, |v| v[STATUS_UPDATED]["new_status"] = status(category, "Done"));
            assert!(matches!(one(&body).fact, Fact::IncidentResolved(_)), "{category}");
        }
    }

    #[test]
    fn triage_update_stays_incident_triggered() {
        let body = edit(UPDATED_SAMPLE, |v| v[UPDATED]["incident_status"] = status("triage", "Triage"));
        assert!(matches!(one(&body).fact, Fact::IncidentTriggered(_)));
    }

    #[test]
    fn paused_and_unknown_categories_become_incident_acknowledged() {
        for category in ["paused", "something_new"] {
            let body = edit(UPDATED_SAMPLE, |v| v[UPDATED]["incident_status"] = status(category, "X"));
            assert!(matches!(one(&body).fact, Fact::IncidentAcknowledged(_)), "{category}");
        }
    }

    #[test]
    fn status_update_out_of_a_closed_category_becomes_incident_reopened() {
        for new in ["live", "triage"] {
            let body = edit(STATUS_UPDATED_SAMPLE, |v| {
                v[STATUS_UPDATED]["previous_status"] = status("learning", "Post-incident");
                v[STATUS_UPDATED]["new_status"] = status(new, "Investigating");
            });
            let c = one(&body);
            assert!(matches!(c.fact, Fact::IncidentReopened(_)), "{new}");
            assert_eq!(incident(&c.fact).status, "Investigating");
        }
    }

    #[test]
    fn incident_created_already_closed_becomes_incident_resolved() {
        let body = edit(CREATED_SAMPLE, |v| {
            v[CREATED]["mode"] = json!("retrospective");
            v[CREATED]["incident_status"] = status("closed", "Closed");
        });
        assert!(matches!(one(&body).fact, Fact::IncidentResolved(_)));
    }

    #[test]
    fn test_and_tutorial_incidents_are_ignored() {
        for mode in ["test", "tutorial"] {
            let body = edit(CREATED_SAMPLE, |v| v[CREATED]["mode"] = json!(mode));
            assert_eq!(
                normalize(&headers(), &body).expect("ignored"),
                Normalized::Ignored(format!("incident.io {mode} incident"))
            );
        }
    }

    #[test]
    fn other_event_types_are_ignored() {
        for event_type in [
            "private_incident.incident_created_v2",
            "public_incident.follow_up_created_v1",
            "public_incident.action_updated_v1",
        ] {
            let body = json!({"event_type": event_type, event_type: {"id": "01PRIVATE"}});
            let got = normalize(&headers(), &serde_json::to_vec(&body).expect("json")).expect("ignored");
            assert_eq!(got, Normalized::Ignored(event_type.to_owned()));
        }
    }

    #[test]
    fn service_comes_from_a_catalog_entry_or_text_and_is_absent_without_a_service_field() {
        let body = edit(CREATED_SAMPLE, |v| {
            v[CREATED]["custom_field_entries"][0]["values"] =
                json!([{"value_catalog_entry": {"id": "01CAT", "name": "payments-api"}}]);
        });
        assert_eq!(one(&body).service_key, Some(ServiceKey::IncidentioService("payments-api".into())));

        let body = edit(CREATED_SAMPLE, |v| {
            v[CREATED]["custom_field_entries"] = json!([
                {"custom_field": {"name": "Affected services"}, "values": []},
                {"custom_field": {"name": "Service"}, "values": [{"value_text": " ledger "}]},
            ]);
        });
        assert_eq!(one(&body).service_key, Some(ServiceKey::IncidentioService("ledger".into())));

        let body = edit(CREATED_SAMPLE, |v| {
            v[CREATED]["custom_field_entries"] =
                json!([{"custom_field": {"name": "Related change"}, "values": [{"value_text": "CHG-1042"}]}]);
        });
        assert_eq!(one(&body).service_key, None);
    }

    #[test]
    fn delivery_id_is_the_webhook_id_header() {
        assert_eq!(delivery_id(&headers(), CREATED_SAMPLE).expect("id"), "msg_2mQk70Yb8HcT1pVxR3sN5eLwZ9aJ");
    }

    #[test]
    fn missing_webhook_id_header_is_an_error_naming_it() {
        let err = delivery_id(&HeaderMap::new(), CREATED_SAMPLE).expect_err("no header");
        assert_eq!(err.field.as_deref(), Some(DELIVERY_HEADER));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = normalize(&headers(), b"{\"event_type\": \"public_incident").expect_err("truncated");
        assert!(err.message.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn missing_payload_is_an_error_naming_it() {
        let err =
            normalize(&headers(), format!(r#"{{"event_type": "{CREATED}"}}"#).as_bytes()).expect_err("no payload");
        assert!(err.message.contains(CREATED), "{err}");
    }

    #[test]
    fn wrong_typed_field_is_an_error_naming_its_path() {
        let body = edit(CREATED_SAMPLE, |v| v[CREATED]["incident_status"]["category"] = json!(1));
        let err = normalize(&headers(), &body).expect_err("numeric category");
        assert_eq!(err.field.as_deref(), Some(format!("{CREATED}.incident_status.category").as_str()));

        let body = edit(STATUS_UPDATED_SAMPLE, |v| v[STATUS_UPDATED]["incident"]["created_at"] = json!(false));
        let err = normalize(&headers(), &body).expect_err("boolean time");
        assert_eq!(err.field.as_deref(), Some(format!("{STATUS_UPDATED}.incident.created_at").as_str()));
    }

    const WORDS: &[&str] = &[
        "event_type",
        CREATED,
        UPDATED,
        STATUS_UPDATED,
        "incident",
        "new_status",
        "previous_status",
        "id",
        "name",
        "reference",
        "incident_status",
        "category",
        "severity",
        "created_at",
        "updated_at",
        "permalink",
        "creator",
        "user",
        "email",
        "mode",
        "custom_field_entries",
        "custom_field",
        "values",
        "value_option",
        "value_text",
        "value",
        "live",
        "closed",
        "triage",
        "INC-12",
    ];

    proptest! {
        #![proptest_config(fuzz::config())]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), id in "\\PC{0,24}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&id) {
                h.insert("webhook-id", v);
            }
            let _ = delivery_id(&h, &body);
            let _ = normalize(&h, &body);
        }

        #[test]
        fn arbitrary_json_never_panics(v in fuzz::json_with(WORDS), event_type in proptest::sample::select(&[CREATED, UPDATED, STATUS_UPDATED][..])) {
            let _ = normalize(&headers(), &serde_json::to_vec(&v).expect("json"));
            let wrapped = json!({"event_type": event_type, event_type: v});
            let _ = normalize(&headers(), &serde_json::to_vec(&wrapped).expect("json"));
        }

        #[test]
        fn mutated_samples_never_panic(body in fuzz::mutated(SAMPLES, WORDS)) {
            if let Err(e) = normalize(&headers(), &body) {
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
