//! The implementation index's contract (what correlation reads) and the
//! correlator over it: every case runs against the embedded and the DynamoDB store.

use changehub::app::correlate::{Correlator, ReadCost};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::catalog::Catalog;
use changehub::domain::correlation::{IncidentFacts, Reason};
use changehub::domain::{Change, ChangeId, ChangeState, NewChange, ServiceName, TenantId};
use changehub::ports::{ChangeReader, ChangeWriter, ImplementationQuery, ImplementationReader};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::collections::BTreeSet;

use crate::store_contract::plain_update;
use crate::t0;

pub fn tenant() -> TenantId {
    TenantId::parse(&crate::unique("acme")).expect("tenant")
}

fn service(s: &str) -> ServiceName {
    ServiceName::parse(s).expect("service")
}

pub fn m(minutes: i64) -> Duration {
    Duration::minutes(minutes)
}

/// How a change ran: started at `start`, then each (state, time) in turn.
pub struct Ran<'a> {
    services: &'a [&'a str],
    environment: &'a str,
    /// Planned start (an hour long).
    planned: DateTime<Utc>,
    start: Option<DateTime<Utc>>,
    then: Vec<(ChangeState, DateTime<Utc>)>,
}

impl<'a> Ran<'a> {
    pub fn on(services: &'a [&'a str], start: DateTime<Utc>) -> Self {
        Ran { services, environment: "production", planned: start, start: Some(start), then: vec![] }
    }

    /// Completed at `at`.
    pub fn done(self, at: DateTime<Utc>) -> Self {
        self.then(&[(ChangeState::Completed, at)])
    }

    pub fn then(self, then: &[(ChangeState, DateTime<Utc>)]) -> Self {
        Ran { then: then.to_vec(), ..self }
    }
}

/// Stores a change as `ran` says, through the store's own writes (insert,
/// then one conditional update per transition), so every index moves as it would in use.
pub async fn record<S: ChangeWriter>(store: &S, tenant: &TenantId, ran: Ran<'_>) -> Change {
    let planned = ran.planned;
    let draft = NewChange {
        description: "correlation contract".into(),
        ..NewChange::basic("x", ran.services, ran.environment, planned, planned + m(60))
    }
    .validate()
    .expect("valid")
    .into_draft(ChangeId::new(), tenant.clone(), "alice".into(), planned - Duration::days(2));
    let (mut change, entry) = audit::record(None, draft, "alice", AuditAction::Created, None);
    store.insert_change(&change, &entry).await.expect("insert");
    let mut steps = Vec::new();
    if let Some(start) = ran.start {
        let before = planned.min(start);
        steps.extend([
            (ChangeState::Submitted, before - m(180)),
            (ChangeState::Approved, before - m(120)),
            (ChangeState::Scheduled, before - m(60)),
            (ChangeState::Implementing, start),
        ]);
    }
    steps.extend(ran.then);
    for (state, at) in steps {
        let next = change.transition(state, at).expect("a legal transition");
        let (next, entry) = audit::record(Some(&change), next, "alice", AuditAction::Transitioned, None);
        store.update_change(plain_update(&change, &next, std::slice::from_ref(&entry))).await.expect("update");
        change = next;
    }
    change
}

fn query(tenant: &TenantId, services: &[&str], at: DateTime<Utc>) -> ImplementationQuery {
    ImplementationQuery {
        tenant: tenant.clone(),
        services: services.iter().map(|s| service(s)).collect(),
        since: at - Duration::hours(4),
        at,
    }
}

fn ids(changes: &[Change]) -> BTreeSet<ChangeId> {
    changes.iter().map(|c| c.id).collect()
}

/// Every change whose implementation overlaps `[t − 4h, t]` or ran through
/// t is read, whatever its plan said (overran, early, started more than 31
/// days before, finished long after), the window's edges included; nothing
/// else is, and the read costs a fixed number of calls.
pub async fn implementations_are_read_by_when_they_ran<S: ChangeWriter + ImplementationReader>(store: S) {
    let (tenant, t) = (tenant(), t0());
    let (h, d) = (Duration::hours, Duration::days);
    let pay: &[&str] = &["payments"];
    let mut wanted = BTreeSet::new();
    let mut keep = |c: Change| wanted.insert(c.id);
    keep(record(&store, &tenant, Ran::on(pay, t - m(60)).done(t - m(30))).await);
    record(&store, &tenant, Ran::on(pay, t - h(6)).done(t - h(5))).await; // too old
    record(&store, &tenant, Ran::on(pay, t + m(1))).await; // after the incident started
    keep(record(&store, &tenant, Ran::on(pay, t - h(5)).done(t - h(4))).await); // ended at t − window
    record(&store, &tenant, Ran::on(pay, t - h(5)).done(t - h(4) - Duration::seconds(1))).await; // a second before
    keep(record(&store, &tenant, Ran::on(pay, t).done(t + m(10))).await); // started at t
    keep(record(&store, &tenant, Ran::on(pay, t - d(3))).await); // overran: still implementing
    keep(record(&store, &tenant, Ran::on(pay, t - d(2)).done(t + h(2))).await); // overran, finished after t
    keep(record(&store, &tenant, Ran::on(pay, t - h(30)).done(t - h(1))).await); // overran by 28h
    let early = Ran { planned: t + h(5), ..Ran::on(pay, t - m(20)).done(t - m(10)) };
    keep(record(&store, &tenant, early).await); // started before its planned start
    keep(record(&store, &tenant, Ran::on(pay, t - d(40))).await); // implementing at t, 40 days on
    keep(record(&store, &tenant, Ran::on(pay, t - d(40)).done(t + d(10))).await); // the same, read after it ended
    keep(record(&store, &tenant, Ran::on(pay, t - d(400)).done(t - h(2))).await); // longer than a year
    record(&store, &tenant, Ran::on(pay, t - d(60)).done(t - d(20))).await; // long, but over
    let failed = [(ChangeState::Failed, t - m(80)), (ChangeState::RolledBack, t - m(60))];
    keep(record(&store, &tenant, Ran::on(pay, t - m(90)).then(&failed)).await);
    let staging = Ran { environment: "staging", ..Ran::on(pay, t - m(50)).done(t - m(45)) };
    keep(record(&store, &tenant, staging).await); // the store keeps every environment; the rule drops it
    keep(record(&store, &tenant, Ran::on(&["ledger"], t - m(30)).done(t - m(20))).await);
    keep(record(&store, &tenant, Ran::on(&["payments", "ledger"], t - m(50)).done(t - m(40))).await);
    record(&store, &tenant, Ran::on(&["search"], t - m(30)).done(t - m(20))).await;
    record(&store, &tenant, Ran { start: None, ..Ran::on(pay, t - m(30)) }).await; // never started
    record(&store, &self::tenant(), Ran::on(pay, t - m(30)).done(t - m(20))).await; // another tenant's

    let found = store.implemented(&query(&tenant, &["payments", "ledger"], t)).await.expect("read");
    assert_eq!(ids(&found.changes), wanted, "each wanted change, once");
    assert_eq!(found.changes.len(), wanted.len());
    // Two services × five classes, one batch read; 17 index entries (two of
    // them read and dropped: ended a second early, long but over) and 14 records.
    assert_eq!(found.cost, ReadCost { calls: 11, items: 17 + 14 });
    let none = store.implemented(&query(&tenant, &["search"], t - d(30))).await.expect("read");
    assert_eq!((none.changes.len(), none.cost), (0, ReadCost { calls: 5, items: 0 }));
}

/// A change's entry moves as it runs: while implementing it is found
/// however long ago it started; once it finished it is found only by windows it overlaps.
pub async fn the_implementation_index_follows_the_record<S: ChangeWriter + ChangeReader + ImplementationReader>(
    store: S,
) {
    let (tenant, t) = (tenant(), t0());
    let running = record(&store, &tenant, Ran::on(&["payments"], t - Duration::hours(5))).await;
    let read = |at| {
        let q = query(&tenant, &["payments"], at);
        let store = &store;
        async move { ids(&store.implemented(&q).await.expect("read").changes) }
    };
    assert_eq!(read(t).await, BTreeSet::from([running.id]), "implementing at t");
    let done = running.transition(ChangeState::Completed, t - Duration::minutes(270)).expect("legal");
    let (done, entry) = audit::record(Some(&running), done, "alice", AuditAction::Transitioned, None);
    store.update_change(plain_update(&running, &done, std::slice::from_ref(&entry))).await.expect("update");
    assert_eq!(read(t).await, BTreeSet::new(), "it ended 4h30 before t: no stale entry finds it");
    assert_eq!(read(t - Duration::hours(1)).await, BTreeSet::from([running.id]), "it ended within 4h of t − 1h");
    let stored = store.get_change(&tenant, &running.id).await.expect("get").expect("stored");
    assert_eq!(stored.implementation, done.implementation);
}

/// web → payments → ledger → db (each depends on the next); search stands alone.
pub fn catalog(correlation: serde_json::Value) -> Catalog {
    let service = |name: &str, depends_on: &[&str]| json!({"name": name, "owner_group": format!("{name}-team"), "tier": 2, "depends_on": depends_on});
    let catalog: Catalog = serde_json::from_value(json!({
        "correlation": correlation,
        "services": [
            service("web", &["payments"]),
            service("payments", &["ledger"]),
            service("ledger", &["db"]),
            service("db", &[]),
            service("search", &[]),
        ],
    }))
    .expect("catalog");
    catalog.validate().expect("a valid catalog");
    catalog
}

fn incident(service_name: &str, at: DateTime<Utc>) -> IncidentFacts {
    IncidentFacts { service: service(service_name), started_at: at, environment: None, resources: vec![] }
}

/// The correlator on a store: the incident's service and (one hop, or two
/// when configured) what it depends on, never downstream or unrelated
/// services, never too old, after the incident or outside production; in
/// progress and bad outcomes named; ranked; and the same answer when the
/// incident is replayed a month later, with a month of newer changes stored.
pub async fn the_correlator_reads_the_scope_and_ranks_what_it_finds<S: ChangeWriter + ImplementationReader>(store: S) {
    let (tenant, t) = (tenant(), t0());
    let rec = |ran| record(&store, &tenant, ran);
    let same = rec(Ran::on(&["payments"], t - m(40)).done(t - m(30))).await;
    let dependency = rec(Ran::on(&["ledger"], t - m(40)).done(t - m(30))).await;
    let two_hops = rec(Ran::on(&["db"], t - m(40)).done(t - m(30))).await;
    rec(Ran::on(&["web"], t - m(40)).done(t - m(30))).await; // downstream
    rec(Ran::on(&["search"], t - m(40)).done(t - m(30))).await; // unrelated
    rec(Ran::on(&["payments"], t - Duration::hours(6)).done(t - Duration::hours(5))).await; // too old
    rec(Ran::on(&["payments"], t + m(5)).done(t + m(10))).await; // after the incident started
    rec(Ran { environment: "staging", ..Ran::on(&["payments"], t - m(20)).done(t - m(10)) }).await;
    let running = rec(Ran::on(&["ledger"], t - m(90))).await;
    let failed = [(ChangeState::Failed, t - m(100))];
    let failed = rec(Ran::on(&["payments"], t - m(110)).then(&failed)).await;
    let rolled = [(ChangeState::Failed, t - m(60)), (ChangeState::RolledBack, t - m(50))];
    let rolled = rec(Ran::on(&["ledger"], t - m(70)).then(&rolled)).await;

    let correlator = Correlator::new(store);
    let one_hop = catalog(json!({}));
    let (found, cost) = correlator.correlate(&tenant, &one_hop, &incident("payments", t)).await.expect("correlate");
    let ranked: Vec<(ChangeId, Vec<Reason>)> = found.related.iter().map(|r| (r.change_id, r.reasons.clone())).collect();
    use Reason::*;
    assert_eq!(
        ranked,
        [
            (failed.id, vec![SameService, FailedDeployment]),
            (rolled.id, vec![Dependency, RolledBack, TimeProximity]),
            (same.id, vec![SameService, TimeProximity]),
            (running.id, vec![Dependency, InProgress]),
            (dependency.id, vec![Dependency, TimeProximity]),
        ],
        "{found:#?}"
    );
    assert!(found.related.windows(2).all(|w| w[0].confidence >= w[1].confidence));
    assert_eq!(cost.calls, 2 * 5 + 1, "payments and ledger, five classes each, one batch read");

    let wide = catalog(json!({"hops": 2}));
    let (found, _) = correlator.correlate(&tenant, &wide, &incident("payments", t)).await.expect("correlate");
    assert!(found.related.iter().any(|r| r.change_id == two_hops.id && r.reasons == [Dependency, TimeProximity]));
    assert_eq!(found.related.len(), 6);

    let staging = IncidentFacts { environment: Some("staging".into()), ..incident("payments", t) };
    let (found, cost) = correlator.correlate(&tenant, &one_hop, &staging).await.expect("correlate");
    assert!(!found.change_related());
    assert_eq!(cost, ReadCost::default(), "an incident outside production reads nothing");

    // A month later, with a month of newer changes stored, the same incident gets the same answer.
    let (before, before_cost) = correlator.correlate(&tenant, &one_hop, &incident("payments", t)).await.expect("now");
    for day in (5..=30).step_by(5) {
        let at = t + Duration::days(day);
        record(&correlator.store, &tenant, Ran::on(&["payments", "ledger"], at).done(at + m(20))).await;
    }
    record(&correlator.store, &tenant, Ran::on(&["payments"], t + Duration::days(31))).await;
    let (after, after_cost) = correlator.correlate(&tenant, &one_hop, &incident("payments", t)).await.expect("later");
    assert_eq!(after, before);
    assert_eq!(after_cost, before_cost, "newer changes cost nothing to an older incident");
}
