//! The incident records contract: every case runs against the embedded and the DynamoDB store.

use changehub::domain::incident::{Incident, IncidentEvent, IncidentId, MajorRule, Signal, Source, Status};
use changehub::domain::{ServiceName, TenantId};
use changehub::ports::{Cursor, IncidentQuery, IncidentStore, MAX_EVALUATED, Page, StoreError};
use chrono::{DateTime, Duration, Utc};

use crate::t0;

/// A tenant of its own for this run (the DynamoDB table is shared by test runs).
fn tenant() -> TenantId {
    TenantId::parse(&crate::unique("acme")).expect("tenant")
}

fn svc(name: &str) -> ServiceName {
    ServiceName::parse(name).expect("service")
}

/// A triggered incident `external_id` of `source` on `service`, started at `at`.
pub fn incident(
    tenant: &TenantId,
    source: Source,
    external_id: &str,
    at: DateTime<Utc>,
    service: Option<&str>,
) -> Incident {
    let event = IncidentEvent {
        event_id: format!("{external_id}-0"),
        at,
        signal: Some(Signal::Triggered),
        started_at: Some(at),
        title: Some(format!("incident {external_id}")),
        service: service.map(svc),
        service_reason: service.is_none().then(|| "the event names no service".to_owned()),
        ..IncidentEvent::default()
    };
    let mut incident = Incident::new(tenant, source, external_id, &event, &MajorRule::default());
    incident.version = 1;
    incident
}

/// `incident` with `event` applied, at the next version.
fn next(incident: &Incident, event: &IncidentEvent) -> Incident {
    let mut after = incident.clone();
    after.apply(event, &MajorRule::default());
    after.version += 1;
    after
}

async fn stored<S: IncidentStore>(store: &S, incidents: &[Incident]) {
    for i in incidents {
        store.put_incident(None, i).await.expect("put");
    }
}

/// Every page of `q`, following the cursors; each page no longer than `q.limit`.
async fn pages<S: IncidentStore>(store: &S, q: &IncidentQuery) -> Vec<Page<Incident>> {
    let mut q = q.clone();
    let mut pages = Vec::new();
    loop {
        let page = store.incidents(&q).await.expect("a page");
        assert!(page.items.len() <= q.limit, "{} records on a page of {}", page.items.len(), q.limit);
        q.after = page.next.clone();
        pages.push(page);
        if q.after.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the cursors never end");
    }
}

async fn listed<S: IncidentStore>(store: &S, q: &IncidentQuery) -> Vec<String> {
    pages(store, q).await.into_iter().flat_map(|p| p.items).map(|i| i.external_id).collect()
}

pub async fn an_incident_is_read_by_its_derived_id_and_created_once<S: IncidentStore>(store: S) {
    let acme = tenant();
    let first = incident(&acme, Source::Pagerduty, "Q1AB2C3", t0(), Some("payments"));
    store.put_incident(None, &first).await.expect("create");
    let id = IncidentId::of(&acme, Source::Pagerduty, "Q1AB2C3");
    assert_eq!(store.get_incident(&acme, &id).await.expect("get"), Some(first.clone()));
    assert_eq!(store.get_incident(&tenant(), &id).await.expect("get"), None, "another tenant's");
    // A second consumer creating the same incident loses: one record.
    let err = store.put_incident(None, &first).await.expect_err("exists");
    assert!(matches!(err, StoreError::VersionConflict { expected: 0 }), "{err:?}");
}

pub async fn a_stale_version_is_a_conflict_and_the_listing_follows_the_record<S: IncidentStore>(store: S) {
    let acme = tenant();
    let v1 = incident(&acme, Source::Pagerduty, "Q1", t0(), Some("payments"));
    store.put_incident(None, &v1).await.expect("create");
    // An earlier start (the source's own) moves the record in both listings.
    let earlier = IncidentEvent {
        event_id: "Q1-1".into(),
        at: t0() + Duration::minutes(5),
        signal: Some(Signal::Resolved),
        started_at: Some(t0() - Duration::hours(1)),
        ..IncidentEvent::default()
    };
    let v2 = next(&v1, &earlier);
    store.put_incident(Some(&v1), &v2).await.expect("update");
    let err = store.put_incident(Some(&v1), &next(&v1, &earlier)).await.expect_err("stale");
    assert!(matches!(err, StoreError::VersionConflict { expected: 1 }), "{err:?}");
    let got = store.get_incident(&acme, &v1.id).await.expect("get").expect("stored");
    assert_eq!((got.version, got.status), (2, Status::Resolved));
    let all = store.incidents(&IncidentQuery::new(acme.clone(), 10)).await.expect("list");
    assert_eq!(all.items, vec![v2.clone()], "one listing entry, the new one");
    let window =
        IncidentQuery::of_service(acme, svc("payments"), t0() - Duration::hours(2), t0() - Duration::minutes(30), 10);
    assert_eq!(store.incidents(&window).await.expect("list").items, vec![v2]);
}

pub async fn incidents_are_listed_newest_first_with_filters<S: IncidentStore>(store: S) {
    let (acme, other) = (tenant(), tenant());
    let h = Duration::hours;
    let mut major = incident(&acme, Source::Incidentio, "B", t0() - h(1), Some("payments"));
    major.major = true;
    stored(
        &store,
        &[
            incident(&acme, Source::Pagerduty, "A", t0() - h(3), Some("payments")),
            major,
            incident(&acme, Source::Alertmanager, "C", t0() - h(2), Some("search")),
            incident(&acme, Source::Cloudwatch, "D", t0(), None),
            incident(&other, Source::Pagerduty, "E", t0(), Some("payments")),
        ],
    )
    .await;
    let all = IncidentQuery::new(acme.clone(), 2);
    assert_eq!(listed(&store, &all).await, ["D", "B", "C", "A"]);
    let by_service = IncidentQuery { service: Some(svc("payments")), ..all.clone() };
    assert_eq!(listed(&store, &by_service).await, ["B", "A"]);
    let window = IncidentQuery::of_service(acme.clone(), svc("payments"), t0() - h(3), t0() - h(2), 10);
    assert_eq!(listed(&store, &window).await, ["A"], "started in [from, to], both included");
    let pagerduty = IncidentQuery { source: Some(Source::Pagerduty), external_id: Some("A".into()), ..all.clone() };
    assert_eq!(listed(&store, &pagerduty).await, ["A"]);
    assert_eq!(listed(&store, &IncidentQuery { major: Some(true), ..all.clone() }).await, ["B"]);
    assert_eq!(
        listed(&store, &IncidentQuery { change_related: Some(true), ..all.clone() }).await,
        Vec::<String>::new()
    );
    assert_eq!(listed(&store, &IncidentQuery { status: Some(Status::Triggered), ..all.clone() }).await.len(), 4);
    let since = IncidentQuery { since: Some(t0() - h(2)), until: Some(t0() - h(1)), ..all };
    assert_eq!(listed(&store, &since).await, ["B", "C"]);
}

pub async fn a_filtered_page_reads_a_bounded_number_of_records<S: IncidentStore>(store: S) {
    let acme = tenant();
    let many: Vec<Incident> = (0..MAX_EVALUATED + 5)
        .map(|i| {
            incident(&acme, Source::Pagerduty, &format!("N{i:04}"), t0() - Duration::minutes(i as i64), Some("search"))
        })
        .collect();
    let wanted = incident(&acme, Source::Incidentio, "OLD", t0() - Duration::days(1), Some("search"));
    stored(&store, &many).await;
    stored(&store, std::slice::from_ref(&wanted)).await;
    let q = IncidentQuery { source: Some(Source::Incidentio), ..IncidentQuery::new(acme, 10) };
    let first = store.incidents(&q).await.expect("page");
    assert!(first.items.is_empty(), "the first {MAX_EVALUATED} rows read hold no match");
    assert!(first.next.is_some(), "a cursor even though the page is empty");
    assert_eq!(listed(&store, &q).await, ["OLD"]);
}

pub async fn foreign_incident_cursors_are_refused<S: IncidentStore>(store: S) {
    let q = IncidentQuery {
        after: Some(Cursor::parse("not-a-cursor").expect("well formed")),
        ..IncidentQuery::new(tenant(), 10)
    };
    let err = store.incidents(&q).await.expect_err("refused");
    assert!(matches!(err, StoreError::InvalidCursor(_)), "{err:?}");
}
