//! Incident records: their store contract on both stores; what the hub makes
//! of incident, alert and alarm events; `GET /incidents`.

use changehub_tests::aws;
use changehub_tests::incident_contract as contract;

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    an_incident_is_read_by_its_derived_id_and_created_once,
    a_stale_version_is_a_conflict_and_the_listing_follows_the_record,
    incidents_are_listed_newest_first_with_filters,
    a_filtered_page_reads_a_bounded_number_of_records,
    foreign_incident_cursors_are_refused,
);

// ---------------------------------------------------------------------------
// Applying canonical events to records

use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::Changes;
use changehub::app::incidents::{Applied, Incidents};
use changehub::domain::TenantId;
use changehub::domain::incident::{IncidentId, Source, Status};
use changehub::ports::{FixedClock, IncidentStore};
use changehub_tests::fixtures::{alice, seed};
use changehub_tests::t0;
use serde_json::{Value, json};

const T: &str = "acme";

struct Hub {
    app: Changes<EmbeddedStore, FixedClock>,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Changes::new(EmbeddedStore::open(dir.path().join("incidents.db")).expect("open"), FixedClock::new(t0()));
    seed(&app, T).await;
    Hub { app, _dir: dir }
}

/// The detail of a PagerDuty incident event, as ingest publishes it.
fn pagerduty(event_id: &str, at: &str, urgency: &str, service: Option<&str>) -> Value {
    json!({
        "event_id": event_id, "tenant": T, "origin": "pagerduty",
        "service": service,
        "service_resolution": {"key": {"by": "pagerduty_service", "key": "PSV7Q2K"},
                               "reason": if service.is_none() { Some("no catalog service has PagerDuty id PSV7Q2K") } else { None }},
        "environment": null, "occurred_at": at, "actor": null, "external_id": "Q1AB2C3",
        "url": "https://acme.pagerduty.com/incidents/Q1AB2C3", "delivery_id": format!("d-{event_id}"),
        "data": {"incident_id": "Q1AB2C3", "number": 7, "title": "Card payments failing", "status": "x",
                 "priority": null, "urgency": urgency, "created_at": "2026-12-01T21:50:00Z"}
    })
}

async fn apply(hub: &Hub, detail_type: &str, detail: &Value) -> Applied {
    Incidents::new(&hub.app.store, &hub.app.clock).apply_event(detail_type, detail).await.expect("applied")
}

fn record_id() -> IncidentId {
    IncidentId::of(&TenantId::parse(T).expect("tenant"), Source::Pagerduty, "Q1AB2C3")
}

#[tokio::test]
async fn a_resolve_before_its_trigger_makes_one_resolved_record_and_a_duplicate_writes_nothing() {
    let h = hub().await;
    let resolved = pagerduty("e2", "2026-12-01T22:30:00Z", "low", Some("payments"));
    let triggered = pagerduty("e1", "2026-12-01T21:51:00Z", "low", Some("payments"));
    assert!(matches!(apply(&h, "Incident Resolved", &resolved).await, Applied::Written(_)));
    // The older trigger says nothing the resolve did not (same start, same fields): nothing to write.
    let Applied::Unchanged(late) = apply(&h, "Incident Triggered", &triggered).await else { panic!("nothing new") };
    assert_eq!(late.version, 1);
    let Applied::Unchanged(again) = apply(&h, "Incident Resolved", &resolved).await else { panic!("a duplicate") };
    assert_eq!(again.version, 1);
    let tenant = TenantId::parse(T).expect("tenant");
    let record = h.app.store.get_incident(&tenant, &record_id()).await.expect("get").expect("one record");
    assert_eq!(record.status, Status::Resolved);
    assert_eq!(record.started_at.to_rfc3339(), "2026-12-01T21:50:00+00:00", "the source's own start");
    assert_eq!(record.time_to_restore_seconds, Some(40 * 60));
    assert_eq!(record.service.as_ref().map(|s| s.to_string()).as_deref(), Some("payments"));
    assert_eq!(record.links, ["https://acme.pagerduty.com/incidents/Q1AB2C3"]);
}

#[tokio::test]
async fn an_unresolved_service_still_makes_a_record_with_the_reason() {
    let h = hub().await;
    let Applied::Written(record) =
        apply(&h, "Incident Triggered", &pagerduty("e1", "2026-12-01T21:51:00Z", "low", None)).await
    else {
        panic!("written")
    };
    assert_eq!(record.service, None);
    assert_eq!(record.service_reason.as_deref(), Some("no catalog service has PagerDuty id PSV7Q2K"));
}

#[tokio::test]
async fn a_high_urgency_incident_holds_changes_while_open_and_releases_them_when_resolved() {
    let h = hub().await;
    apply(&h, "Incident Triggered", &pagerduty("e1", "2026-12-01T21:51:00Z", "high", Some("payments"))).await;
    let open = h.app.governance().incidents(&alice(T)).await.expect("read").open;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].id, record_id().to_string());
    assert_eq!(open[0].declared_by, "changehub.pagerduty");
    assert_eq!(open[0].services.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ["payments"]);
    assert_eq!(open[0].confirming_commander(&open[0].services), None, "nobody commands it in the hub");
    apply(&h, "Incident Resolved", &pagerduty("e2", "2026-12-01T22:30:00Z", "high", Some("payments"))).await;
    assert!(h.app.governance().incidents(&alice(T)).await.expect("read").open.is_empty());
}

#[tokio::test]
async fn an_alarm_back_to_ok_resolves_its_record_and_other_states_are_no_incident() {
    let h = hub().await;
    let alarm = |id: &str, at: &str, state: &str, previous: &str| {
        json!({
            "event_id": id, "tenant": T, "origin": "aws", "service": "payments",
            "service_resolution": {"key": null, "reason": null}, "environment": null, "occurred_at": at,
            "actor": null, "external_id": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:payments-5xx", "url": null,
            "delivery_id": id,
            "data": {"alarm_name": "payments-5xx", "alarm_arn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:payments-5xx",
                     "state": state, "previous_state": previous, "reason": null, "account": "123456789012", "region": "eu-west-1"}
        })
    };
    let ignored =
        apply(&h, "Alarm State Changed", &alarm("a0", "2026-12-01T21:00:00Z", "OK", "INSUFFICIENT_DATA")).await;
    assert!(matches!(ignored, Applied::Ignored(_)), "{ignored:?}");
    apply(&h, "Alarm State Changed", &alarm("a1", "2026-12-01T22:00:00Z", "ALARM", "OK")).await;
    let Applied::Written(record) =
        apply(&h, "Alarm State Changed", &alarm("a2", "2026-12-01T22:10:00Z", "OK", "ALARM")).await
    else {
        panic!("written")
    };
    assert_eq!((record.source, record.status), (Source::Cloudwatch, Status::Resolved));
    assert_eq!(record.resources, ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:payments-5xx"]);
    assert_eq!(record.time_to_restore_seconds, Some(600));
    assert!(!record.major, "an alarm names no severity");
}

#[tokio::test]
async fn a_declared_incident_is_a_major_record_of_source_hub_resolved_with_it() {
    use changehub::app::governance::DeclareIncident;
    use changehub::domain::ServiceName;
    use changehub_tests::fixtures::{carol, pat};
    let h = hub().await;
    let declare = DeclareIncident {
        id: "INC-9".into(),
        title: "Card payments failing".into(),
        services: vec![ServiceName::parse("payments").expect("svc")],
        commander: "carol@example.com".into(),
    };
    h.app.governance().declare_incident(&pat(T), declare).await.expect("declare");
    let tenant = TenantId::parse(T).expect("tenant");
    let id = IncidentId::of(&tenant, Source::Hub, "INC-9");
    let record = h.app.store.get_incident(&tenant, &id).await.expect("get").expect("a record");
    assert!(record.major && record.status == Status::Triggered);
    assert_eq!(record.declared.as_ref().map(|d| d.commander.as_str()), Some("carol@example.com"));
    h.app.governance().resolve_incident(&carol(T), "INC-9").await.expect("resolve");
    let record = h.app.store.get_incident(&tenant, &id).await.expect("get").expect("a record");
    assert_eq!((record.status, record.version), (Status::Resolved, 2));
}
