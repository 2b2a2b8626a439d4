//! The problem store's contract, through the problem use cases: every case
//! runs against the embedded and the DynamoDB store.

use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::app::problems::{ProblemListRequest, Recorded};
use changehub::domain::ChangeId;
use changehub::domain::problem::{IncidentSeen, ProblemStatus, Recurs};
use changehub::domain::{ServiceName, TenantId};
use changehub::ports::{
    Cursor, FixedClock, IncidentCounterKey, IncidentCounts, ProblemQuery, ProblemStore, StoreError,
};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use crate::fixtures::{alice, seed};
use crate::{new_change, t0};

type App<S> = Arc<Changes<S, FixedClock>>;

async fn app<S: ChangeStore + ProblemStore>(store: S) -> (App<S>, String) {
    let app = Arc::new(Changes::new(store, FixedClock::new(t0())));
    let tenant = crate::unique("acme");
    seed(&app, &tenant).await;
    (app, tenant)
}

/// An incident on `service` that started `hours` before t0.
pub fn incident(tenant: &str, id: &str, service: &str, hours: i64, change_related: bool) -> IncidentSeen {
    IncidentSeen {
        tenant: TenantId::parse(tenant).expect("tenant"),
        incident_id: id.to_owned(),
        service: ServiceName::parse(service).expect("service"),
        fingerprint: None,
        change_related,
        related_changes: vec![],
        started_at: t0() - Duration::hours(hours),
    }
}

fn month(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// The service's incident counters of t0's month and the month before, summed.
async fn counts<S: ChangeStore>(app: &App<S>, tenant: &str, service: &str) -> IncidentCounts {
    let key = |t: DateTime<Utc>| IncidentCounterKey {
        tenant: TenantId::parse(tenant).expect("tenant"),
        service: ServiceName::parse(service).expect("service"),
        month: month(t),
    };
    let keys = [key(t0()), key(t0() - Duration::days(30))];
    let (outcomes, incidents) = app.store.history(&[], &keys).await.expect("history");
    assert!(outcomes.is_empty());
    incidents.iter().fold(IncidentCounts::default(), |sum, c| IncidentCounts {
        incidents: sum.incidents + c.incidents,
        change_related: sum.change_related + c.change_related,
        problems: sum.problems + c.problems,
    })
}

pub async fn an_incident_is_counted_once_however_often_and_concurrently_it_is_recorded<
    S: ChangeStore + ProblemStore,
>(
    store: S,
) {
    let (app, tenant) = app(store).await;
    let seen = incident(&tenant, "pd:1", "payments", 1, false);
    let calls = (0..4).map(|_| {
        let (app, seen) = (app.clone(), seen.clone());
        tokio::spawn(async move { app.record_incident(&seen).await })
    });
    let mut counted = 0;
    for call in calls {
        if let Recorded::Counted { .. } = call.await.expect("join").expect("record") {
            counted += 1;
        }
    }
    assert_eq!(counted, 1, "one of the concurrent calls counts it");
    assert_eq!(counts(&app, &tenant, "payments").await, IncidentCounts { incidents: 1, ..Default::default() });
    // Tagged change-related later: counted as such once, however often.
    let tagged = IncidentSeen { change_related: true, ..seen.clone() };
    assert!(matches!(app.record_incident(&tagged).await.expect("tag"), Recorded::Counted { .. }));
    assert_eq!(app.record_incident(&tagged).await.expect("again"), Recorded::AlreadyCounted);
    assert_eq!(app.record_incident(&seen).await.expect("untagged again"), Recorded::AlreadyCounted);
    let expected = IncidentCounts { incidents: 1, change_related: 1, problems: 0 };
    assert_eq!(counts(&app, &tenant, "payments").await, expected);
}

pub async fn recurring_incidents_open_one_problem_that_later_ones_join<S: ChangeStore + ProblemStore>(store: S) {
    let (app, tenant) = app(store).await;
    let caller = alice(&tenant);
    // Five change-related incidents on payments within a week, recorded at once.
    let calls = (0..5).map(|i| {
        let (app, seen) = (app.clone(), incident(&tenant, &format!("pd:{i}"), "payments", 24 * i, true));
        tokio::spawn(async move { app.record_incident(&seen).await })
    });
    for call in calls {
        call.await.expect("join").expect("record");
    }
    let page = app.problems(&caller, ProblemListRequest::default()).await.expect("list");
    assert_eq!(page.items.len(), 1, "one problem, however the incidents raced: {:?}", page.items);
    let problem = &page.items[0];
    assert_eq!((problem.status, &problem.recurs), (ProblemStatus::Open, &Recurs::ChangeRelated));
    assert_eq!(problem.incident_count, 5);
    assert_eq!((problem.first_seen, problem.last_seen), (t0() - Duration::hours(96), t0()));
    let expected = IncidentCounts { incidents: 5, change_related: 5, problems: 1 };
    assert_eq!(counts(&app, &tenant, "payments").await, expected);
    // Incidents elsewhere, or unrelated ones, open nothing.
    for i in 0..3 {
        app.record_incident(&incident(&tenant, &format!("other:{i}"), "search", i, false)).await.expect("record");
    }
    let only_search = ProblemListRequest { service: Some("search".into()), ..Default::default() };
    assert!(app.problems(&caller, only_search).await.expect("list").items.is_empty());
    // The fingerprint of an alert recurs on its own.
    for i in 0..3 {
        let seen = IncidentSeen {
            fingerprint: Some("disk-full".into()),
            ..incident(&tenant, &format!("am:{i}"), "search", i, false)
        };
        app.record_incident(&seen).await.expect("record");
    }
    let on_search = ProblemListRequest { service: Some("search".into()), ..Default::default() };
    let found = app.problems(&caller, on_search).await.expect("list").items;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].recurs, Recurs::Fingerprint { fingerprint: "disk-full".into() });
    // Risk scoring reads the incident history beside the outcome counters.
    let change =
        app.create(&caller, new_change("x", &["payments"], t0() + Duration::days(1), 1)).await.expect("create");
    let factor = change
        .risk
        .as_ref()
        .and_then(|r| r.factors.iter().find(|f| f.factor == "incident_history"))
        .expect("incident history factor");
    assert_eq!(factor.points, 10, "5 change-related × 2 + 1 problem × 5, capped at 10");
    assert_eq!(
        factor.detail,
        "5 incidents (5 change-related) and 1 problem on the affected services in the last 3 months, capped at 10"
    );
}

pub async fn problems_are_listed_newest_first_by_page_and_filter<S: ChangeStore + ProblemStore>(store: S) {
    let (app, tenant) = app(store).await;
    for fp in ["a", "b", "c"] {
        for i in 0..3 {
            let seen = IncidentSeen {
                fingerprint: Some(fp.into()),
                ..incident(&tenant, &format!("{fp}:{i}"), "ledger", i, false)
            };
            app.record_incident(&seen).await.expect("record");
        }
    }
    let query = |after: Option<Cursor>| ProblemQuery {
        tenant: TenantId::parse(&tenant).expect("tenant"),
        service: None,
        status: None,
        limit: 2,
        after,
    };
    let first = app.store.list_problems(&query(None)).await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let second = app.store.list_problems(&query(first.next.clone())).await.expect("page 2");
    assert_eq!((second.items.len(), second.next.clone()), (1, None));
    let order: Vec<String> = first.items.iter().chain(&second.items).map(|p| p.recurs.key()).collect();
    assert_eq!(order, ["fingerprint:c", "fingerprint:b", "fingerprint:a"]);
    let fixed = ProblemQuery { status: Some(ProblemStatus::Fixed), ..query(None) };
    assert!(app.store.list_problems(&fixed).await.expect("none fixed").items.is_empty());
    let foreign = Cursor::parse("CHG#2026-11-30T00:00:00.000000Z#x").expect("cursor");
    match app.store.list_problems(&query(Some(foreign))).await {
        Err(StoreError::InvalidCursor(_)) => {}
        other => panic!("expected InvalidCursor, got {other:?}"),
    }
}

pub async fn a_problem_is_replaced_only_at_the_version_read<S: ChangeStore + ProblemStore>(store: S) {
    let (app, tenant) = app(store).await;
    for i in 0..3 {
        app.record_incident(&incident(&tenant, &format!("pd:{i}"), "payments", i, true)).await.expect("record");
    }
    let caller = alice(&tenant);
    let problem = app.problems(&caller, ProblemListRequest::default()).await.expect("list").items.remove(0);
    let fixed = problem.fixed_by(ChangeId::new(), "carol", t0()).expect("fix");
    app.store.put_problem(&fixed).await.expect("at the version read");
    match app.store.put_problem(&fixed).await {
        Err(StoreError::VersionConflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stored = app.store.get_problem(&problem.tenant, &problem.id).await.expect("get").expect("stored");
    assert_eq!(stored, fixed);
}
