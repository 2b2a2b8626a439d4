//! Tagging incidents change-related both ways ([`Tagging`]): every case runs
//! against the embedded and the DynamoDB store.

use std::sync::Arc;

use changehub::app::changes::UnrelateRequest;
use changehub::app::tagging::{TagStore, Tagged, Tagging};
use changehub::domain::audit::AuditAction;
use changehub::domain::catalog::CatalogView;
use changehub::domain::correlation::Reason;
use changehub::domain::incident::{Incident, IncidentId, Source};
use changehub::domain::{Change, TenantId};
use changehub::ports::{
    CatalogReader, ChangeReader, CounterKey, Counters, FixedClock, ImplementationReader, IncidentStore, StoreError,
};
use serde_json::{Value, json};

use crate::correlate_contract::{Ran, catalog, m, record, tenant};
use crate::t0;

/// The correlation contract's catalog, whatever the tenant.
pub struct FixedCatalog(pub Arc<CatalogView>);

impl FixedCatalog {
    pub fn sample() -> Self {
        FixedCatalog(Arc::new(CatalogView::new(1, catalog(json!({})))))
    }
}

impl CatalogReader for FixedCatalog {
    async fn catalog(&self, _tenant: &TenantId) -> Result<Arc<CatalogView>, StoreError> {
        Ok(self.0.clone())
    }
}

/// The detail of a PagerDuty incident triggered on `service` at t0 − 10 min, as ingest publishes it.
pub fn pagerduty(tenant: &TenantId, service: &str) -> Value {
    pagerduty_at(tenant, service, t0() - m(10))
}

/// The detail of PagerDuty incident Q1AB2C3 triggered on `service` at `at`, as ingest publishes it.
pub fn pagerduty_at(tenant: &TenantId, service: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let at = at.to_rfc3339();
    json!({
        "event_id": "pd-1", "tenant": tenant, "origin": "pagerduty", "service": service,
        "service_resolution": {"key": {"by": "pagerduty_service", "key": "PSV7Q2K"}, "reason": null},
        "environment": null, "occurred_at": at, "actor": null, "external_id": "Q1AB2C3",
        "url": "https://acme.pagerduty.com/incidents/Q1AB2C3", "delivery_id": "d-1",
        "data": {"incident_id": "Q1AB2C3", "number": 7, "title": "Card payments failing", "status": "triggered",
                 "priority": null, "urgency": "high", "created_at": at}
    })
}

fn tagging<S: TagStore>(store: &S) -> Tagging<S, FixedCatalog, FixedClock> {
    Tagging::new(store.clone(), FixedCatalog::sample(), FixedClock::new(t0()))
}

async fn deliver<S: TagStore>(tagging: &Tagging<S, FixedCatalog, FixedClock>, detail: &Value) -> Tagged {
    tagging.handle("Incident Triggered", detail).await.expect("tagged")
}

pub async fn incident<S: IncidentStore>(store: &S, tenant: &TenantId) -> Incident {
    let id = IncidentId::of(tenant, Source::Pagerduty, "Q1AB2C3");
    store.get_incident(tenant, &id).await.expect("get").expect("stored")
}

pub async fn change<S: ChangeReader>(store: &S, c: &Change) -> Change {
    store.get_change(&c.tenant, &c.id).await.expect("get").expect("stored")
}

/// The December counts of `c` on `service`: (changes, failures).
pub async fn counts<S: Counters>(store: &S, c: &Change, service: &str) -> (u64, u64) {
    let key = CounterKey {
        tenant: c.tenant.clone(),
        service: changehub::domain::ServiceName::parse(service).expect("service"),
        month: "2026-12".into(),
        category: c.category.clone(),
        change_type: c.change_type,
    };
    let counts = store.counts(&[key]).await.expect("counts");
    (counts[0].changes, counts[0].failures)
}

/// An incident on payments after a completed change on payments: the
/// incident lists the change and the change the incident, the change counts
/// one failure and requires a review; the event delivered again, and twice
/// at once by two consumers, writes no second link and no second count.
pub async fn an_incident_after_a_change_on_its_service_is_tagged_both_ways_and_counted_once<S>(store: S)
where
    S: TagStore + Counters,
{
    let (tenant, t) = (tenant(), t0());
    let done = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    let detail = pagerduty(&tenant, "payments");
    let (one, two) = (tagging(&store), tagging(&store));
    let (a, b) = tokio::join!(deliver(&one, &detail), deliver(&two, &detail));
    let newly = |t: &Tagged| match t {
        Tagged::Recorded { newly_related, .. } => newly_related.clone(),
        Tagged::Ignored(why) => panic!("ignored: {why}"),
    };
    let mut both = newly(&a);
    both.extend(newly(&b));
    assert_eq!(both, [done.id], "one of two concurrent consumers links the change");
    assert!(newly(&deliver(&one, &detail).await).is_empty(), "a duplicate links nothing");

    let record = incident(&store, &tenant).await;
    assert!(record.change_related);
    let linked: Vec<_> = record.related_changes.iter().map(|r| (r.change_id, r.reasons.clone())).collect();
    assert_eq!(linked, [(done.id, vec![Reason::SameService, Reason::TimeProximity])]);
    let stored = change(&store, &done).await;
    assert_eq!(stored.related_incidents.len(), 1, "{:?}", stored.related_incidents);
    let listed = &stored.related_incidents[0];
    assert_eq!(
        (listed.incident_id.as_str(), listed.source, listed.external_id.as_str()),
        (record.id.as_str(), Source::Pagerduty, "Q1AB2C3")
    );
    assert_eq!(listed.started_at, t - m(10));
    assert_eq!(listed.counted.as_deref(), Some("2026-12"));
    assert!(stored.review.as_ref().is_some_and(|r| r.done.is_none()), "a post-implementation review is required");
    assert_eq!(stored.version, done.version + 1, "one write on the change");
    assert_eq!(counts(&store, &done, "payments").await, (0, 1), "one failure counted, no second change");
    let trail = store.audit_trail(&tenant, &done.id).await.expect("trail");
    assert_eq!(trail.last().map(|e| e.action), Some(AuditAction::IncidentRelated));
}

/// A change on a service the incident's does not depend on is not tagged.
pub async fn a_change_on_an_unrelated_service_is_not_tagged<S>(store: S)
where
    S: TagStore + Counters,
{
    let (tenant, t) = (tenant(), t0());
    let other = record(&store, &tenant, Ran::on(&["search"], t - m(50)).done(t - m(40))).await;
    deliver(&tagging(&store), &pagerduty(&tenant, "payments")).await;
    let record = incident(&store, &tenant).await;
    assert!(!record.change_related && record.related_changes.is_empty(), "{record:?}");
    let stored = change(&store, &other).await;
    assert!(stored.related_incidents.is_empty());
    assert_eq!(stored.version, other.version);
    assert_eq!(counts(&store, &other, "search").await, (0, 0));
}

/// A cab member removes the tag: both records drop it, the failure is taken
/// back, the change's trail says who and why; correlating the incident
/// again, or removing the tag again, changes nothing.
pub async fn removing_a_tag_reverses_the_count_and_it_stays_removed<S>(store: S)
where
    S: changehub::app::changes::ChangeStore + ImplementationReader,
{
    let (tenant, t) = (tenant(), t0());
    let app = changehub::app::Changes::new(store.clone(), FixedClock::new(t));
    crate::fixtures::seed(&app, tenant.as_str()).await;
    let done = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    let detail = pagerduty(&tenant, "payments");
    let tagging = tagging(&store);
    deliver(&tagging, &detail).await;
    assert_eq!(counts(&store, &done, "payments").await, (0, 1));

    let id = IncidentId::of(&tenant, Source::Pagerduty, "Q1AB2C3");
    let req = || UnrelateRequest { change_id: done.id, reason: "it only touched the docs".into() };
    let carol = crate::fixtures::carol(tenant.as_str());
    let removed = app.unrelate(&carol, id.as_str(), req()).await.expect("removed");
    assert!(!removed.change_related && removed.related_changes.is_empty());
    assert_eq!(removed.removed_changes.len(), 1);
    assert_eq!(incident(&store, &tenant).await, removed);
    let stored = change(&store, &done).await;
    assert!(stored.related_incidents.is_empty());
    assert_eq!(counts(&store, &done, "payments").await, (0, 0), "the failure is taken back");
    let trail = store.audit_trail(&tenant, &done.id).await.expect("trail");
    let last = trail.last().expect("an entry");
    assert_eq!((last.action, last.actor.as_str()), (AuditAction::IncidentUnrelated, carol.user.as_str()));
    assert!(last.reason.as_deref().is_some_and(|r| r.contains("it only touched the docs")));

    deliver(&tagging, &detail).await;
    assert_eq!(incident(&store, &tenant).await, removed, "a removed tag is not brought back");
    app.unrelate(&carol, id.as_str(), req()).await.expect("removed again");
    assert_eq!(change(&store, &done).await, stored, "removing it again writes nothing");
    assert_eq!(counts(&store, &done, "payments").await, (0, 0));
    let alice = crate::fixtures::alice(tenant.as_str());
    assert!(app.unrelate(&alice, id.as_str(), req()).await.is_err(), "a requester may not");
}

/// The tenant's catalog decides which incidents are major
/// (`incidents.major`): with high urgency turned off and P2 added, a
/// high-urgency PagerDuty incident without priority is not major, and one
/// raised to P2 is (and is held as open major).
pub async fn the_tenants_major_rule_decides_which_incidents_are_major<S>(store: S)
where
    S: TagStore,
{
    let tenant = tenant();
    let mut custom = catalog(json!({}));
    custom.incidents.major =
        serde_json::from_value(json!({"pagerduty_urgency_high": false, "pagerduty_priorities": ["P1", "P2"]}))
            .expect("rule");
    let tagging =
        Tagging::new(store.clone(), FixedCatalog(Arc::new(CatalogView::new(1, custom))), FixedClock::new(t0()));
    let mut detail = pagerduty(&tenant, "payments");
    deliver(&tagging, &detail).await;
    assert!(!incident(&store, &tenant).await.major, "high urgency alone is not major for this tenant");

    detail["event_id"] = json!("pd-2");
    detail["occurred_at"] = json!((t0() - m(5)).to_rfc3339());
    detail["data"]["priority"] = json!("P2");
    let raised = tagging.handle("Incident Priority Changed", &detail).await.expect("tagged");
    assert!(matches!(raised, Tagged::Recorded { .. }), "{raised:?}");
    let record = incident(&store, &tenant).await;
    assert!(record.major && record.is_open_major(), "P2 is major for this tenant: {record:?}");

    let default_rule = tagging_default_major(&store).await;
    assert!(default_rule, "the default rule keeps high urgency major");
}

/// Whether the sample (default-rule) catalog makes the high-urgency sample incident of another tenant major.
async fn tagging_default_major<S: TagStore>(store: &S) -> bool {
    let other = TenantId::parse(&crate::unique("other")).expect("tenant");
    deliver(&tagging(store), &pagerduty(&other, "payments")).await;
    incident(store, &other).await.major
}
