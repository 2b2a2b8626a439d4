//! Out of order and exactly once: a change event that arrives after the
//! incident re-checks the incidents it may explain ([`Consumer`], the
//! correlate function's and `changehub serve`'s use case). Every case runs
//! against the embedded and the DynamoDB store.

use std::path::PathBuf;
use std::sync::Arc;

use changehub::adapters::env_secrets::StaticSecrets;
use changehub::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use changehub::adapters::local_notifier::FileNotifier;
use changehub::app::Changes;
use changehub::app::changes::{ChangeStore, SYSTEM_ACTOR};
use changehub::app::tagging::{ConsumeError, Consumed, Consumer, Tagged};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::correlation::{Implementation, Outcome, Reason};
use changehub::domain::{Change, ChangeId, HubEvent, TenantId};
use changehub::ports::{ChangeReader, Dedupe, FixedClock, ImplementationReader, ProblemStore, SystemClock};
use chrono::Duration;
use serde_json::{Value, json};

use crate::correlate_contract::{Ran, catalog, m, record, tenant};
use crate::store_contract::plain_update;
use crate::t0;
use crate::tagging_contract::{change, counts, incident, pagerduty, pagerduty_at};

/// What the correlate consumer reads and writes.
pub trait HubStore: ChangeStore + ProblemStore + ImplementationReader + Dedupe {}
impl<T: ChangeStore + ProblemStore + ImplementationReader + Dedupe> HubStore for T {}

/// A consumer as the Lambda builds one (the system clock: only the events' times decide).
type Hub<S> = Consumer<S, SystemClock, FileNotifier, HttpWriteBack<Option<StaticSecrets>>>;

/// A tenant with the correlation contract's catalog, and consumers of its
/// store that tell into one notifications file.
struct Consumers<S> {
    store: S,
    tenant: TenantId,
    notifier: FileNotifier,
    told: PathBuf,
    _dir: tempfile::TempDir,
}

impl<S: HubStore> Consumers<S> {
    async fn new(store: &S) -> Self {
        let tenant = tenant();
        let app = Changes::new(store.clone(), FixedClock::new(t0()));
        let root = crate::fixtures::root(tenant.as_str());
        app.catalog.replace(&root, catalog(json!({})), None, &app.clock).await.expect("import the catalog");
        let dir = tempfile::tempdir().expect("tempdir");
        let told = dir.path().join("notifications.jsonl");
        Consumers { store: store.clone(), tenant, notifier: FileNotifier::new(&told), told, _dir: dir }
    }

    /// A consumer of its own (as another Lambda instance would be).
    fn consumer(&self) -> Hub<S> {
        let changes = Arc::new(Changes::new(self.store.clone(), SystemClock));
        let none: Option<StaticSecrets> = None;
        let writeback = HttpWriteBack::new(none, Timeouts::default(), Retries::default()).expect("client");
        Consumer::new(changes, self.notifier.clone(), writeback)
    }

    /// The `change_related_incident` notifications sent to the feed (one per tag).
    fn told(&self) -> usize {
        let lines = std::fs::read_to_string(&self.told).unwrap_or_default();
        let notices = lines.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok());
        notices
            .filter(|n| {
                n["attributes"]["type"] == json!("change_related_incident") && n["attributes"]["audience"] == "feed"
            })
            .count()
    }
}

/// Handles one event as the platform delivers it: again, a few times, when a retry may help.
async fn deliver<S: HubStore>(consumer: &Hub<S>, detail_type: &str, detail: &Value) -> Consumed {
    // As Lambda and EventBridge would: again after a pause while a retry may
    // help (another consumer's lease on the same work, a contended write),
    // long enough for a loaded machine's other consumers to finish.
    let mut last = None;
    for attempt in 1..=12 {
        match consumer.handle(detail_type, detail).await {
            Ok(consumed) => return consumed,
            Err(e) if e.retryable() => last = Some(e),
            Err(e) => panic!("{detail_type} refused: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
    }
    panic!("{detail_type} kept failing: {:?}", last.map(|e: ConsumeError| e.to_string()))
}

async fn incident_event<S: HubStore>(consumer: &Hub<S>, detail: &Value) -> Consumed {
    deliver(consumer, "Incident Triggered", detail).await
}

async fn change_event<S: HubStore>(consumer: &Hub<S>, event: &HubEvent) -> Consumed {
    deliver(consumer, &event.detail_type, &event.detail).await
}

/// The events the outbox publishes for `c`'s writes that set or move its
/// implementation, as they reach the bus.
async fn events_of<S: ChangeReader>(store: &S, c: &Change) -> Vec<HubEvent> {
    let trail = store.audit_trail(&c.tenant, &c.id).await.expect("trail");
    let events = trail.iter().map(|entry| HubEvent::change_mutated(c, entry));
    events.filter(|e| changehub::app::recheck::DETAIL_TYPES.contains(&e.detail_type.as_str())).collect()
}

/// The changes this delivery newly linked to an incident.
fn newly(consumed: &Consumed) -> Vec<ChangeId> {
    let tagged: Vec<&Tagged> = match consumed {
        Consumed::Incident(t) => vec![t],
        Consumed::Rechecked { incidents, .. } => incidents.iter().collect(),
        Consumed::Skipped(_) => vec![],
    };
    let linked = tagged.into_iter().filter_map(|t| match t {
        Tagged::Recorded { newly_related, .. } => Some(newly_related.clone()),
        Tagged::Ignored(_) => None,
    });
    linked.flatten().collect()
}

/// The incidents a change event re-checked.
fn rechecked(consumed: &Consumed) -> usize {
    match consumed {
        Consumed::Rechecked { incidents, .. } => incidents.len(),
        other => panic!("not a re-check: {other:?}"),
    }
}

/// What the incident and the change record of each other: the incident's
/// related changes with their reasons, the change's related incident ids.
async fn links<S: HubStore>(hub: &Consumers<S>, c: &Change) -> (Vec<(ChangeId, Vec<Reason>)>, Vec<String>) {
    let record = incident(&hub.store, &hub.tenant).await;
    let related = record.related_changes.iter().map(|r| (r.change_id, r.reasons.clone())).collect();
    let listed = change(&hub.store, c).await.related_incidents.iter().map(|r| r.incident_id.clone()).collect();
    (related, listed)
}

/// Exactly one link each way between the incident and `c`, one failure
/// counted, one `incident_related` entry and one notification: the
/// incident's related changes with their reasons.
async fn linked_once<S: HubStore>(hub: &Consumers<S>, c: &Change) -> Vec<(ChangeId, Vec<Reason>)> {
    let (related, listed) = links(hub, c).await;
    let record = incident(&hub.store, &hub.tenant).await;
    assert!(record.change_related && related.len() == 1, "{record:?}");
    assert_eq!(listed, [record.id.to_string()]);
    assert_eq!(counts(&hub.store, c, c.services[0].as_str()).await, (0, 1), "one failure counted");
    let trail = hub.store.audit_trail(&hub.tenant, &c.id).await.expect("trail");
    assert_eq!(trail.iter().filter(|e| e.action == AuditAction::IncidentRelated).count(), 1);
    assert_eq!(hub.told(), 1, "one notification");
    related
}

/// The incident arrives first, then the change that caused it (its
/// implementing and completed events, each delivered twice): the change
/// event tags the incident both ways, counts one failure and tells once.
pub async fn a_change_recorded_after_its_incident_tags_it_both_ways_once<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    let consumer = hub.consumer();
    assert!(newly(&incident_event(&consumer, &pagerduty(&tenant, "payments")).await).is_empty(), "no change yet");
    let done = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    let events = events_of(&store, &done).await;
    let names: Vec<&str> = events.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(names, ["Change Implementing", "Change Completed"]);
    let mut linked = vec![];
    for event in events.iter().chain(&events) {
        linked.extend(newly(&change_event(&consumer, event).await));
    }
    assert_eq!(linked, [done.id], "the first change event links it; the others are duplicates");
    let related = linked_once(&hub, &done).await;
    assert_eq!(related, [(done.id, vec![Reason::SameService, Reason::TimeProximity])]);
}

/// Changes whose window does not hold the incident's start (too old,
/// started after it), or on services whose incidents they cannot explain
/// (downstream of it, unrelated), re-check nothing and tag nothing.
pub async fn a_change_event_leaves_incidents_outside_its_window_alone<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    let consumer = hub.consumer();
    incident_event(&consumer, &pagerduty(&tenant, "payments")).await;
    let (h, s) = (Duration::hours, Duration::seconds);
    let changes = [
        Ran::on(&["payments"], t - h(6)).done(t - m(10) - h(4) - s(1)),
        Ran::on(&["payments"], t - m(5)).done(t),
        Ran::on(&["web"], t - m(50)).done(t - m(40)),
        Ran::on(&["search"], t - m(50)).done(t - m(40)),
    ];
    for ran in changes {
        let c = record(&store, &tenant, ran).await;
        for event in events_of(&store, &c).await {
            let consumed = change_event(&consumer, &event).await;
            assert_eq!(rechecked(&consumed), 0, "{}: {consumed:?}", event.detail_type);
        }
        assert!(change(&store, &c).await.related_incidents.is_empty());
    }
    let record = incident(&store, &tenant).await;
    assert!(!record.change_related && record.related_changes.is_empty(), "{record:?}");
    assert_eq!(hub.told(), 0);
}

/// A change on ledger, which payments depends on, arriving after the
/// incident on payments, tags it as a dependency.
pub async fn a_late_change_on_a_dependency_tags_the_incident_that_depends_on_it<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    let consumer = hub.consumer();
    incident_event(&consumer, &pagerduty(&tenant, "payments")).await;
    let ledger = record(&store, &tenant, Ran::on(&["ledger"], t - m(50)).done(t - m(40))).await;
    for event in events_of(&store, &ledger).await {
        change_event(&consumer, &event).await;
    }
    let related = linked_once(&hub, &ledger).await;
    assert_eq!(related, [(ledger.id, vec![Reason::Dependency, Reason::TimeProximity])]);
}

/// A change still implementing tags an incident started after its start,
/// however late (its window has no end yet).
pub async fn a_change_still_implementing_tags_an_incident_started_after_its_start<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    let consumer = hub.consumer();
    incident_event(&consumer, &pagerduty_at(&tenant, "payments", t + Duration::days(2))).await;
    let running = record(&store, &tenant, Ran::on(&["payments"], t - m(50))).await;
    let events = events_of(&store, &running).await;
    assert_eq!(events.len(), 1, "implementing");
    assert_eq!(newly(&change_event(&consumer, &events[0]).await), [running.id]);
    let related = linked_once(&hub, &running).await;
    assert_eq!(related, [(running.id, vec![Reason::SameService, Reason::InProgress])]);
}

/// Four consumers handle the incident's event and the change's events
/// (twice each) at once: exactly one link each way, one count, one notification.
pub async fn concurrent_consumers_of_incident_and_change_events_link_count_and_tell_once<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    // The change is stored first: its events exist only once it is.
    let done = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    let events = events_of(&store, &done).await;
    let (implementing, completed) = (&events[0], &events[1]);
    let pd = pagerduty(&tenant, "payments");
    let (a, b, c, d) = (hub.consumer(), hub.consumer(), hub.consumer(), hub.consumer());
    let all = tokio::join!(
        incident_event(&a, &pd),
        change_event(&b, completed),
        incident_event(&c, &pd),
        change_event(&d, implementing),
        change_event(&a, completed),
        incident_event(&b, &pd),
        change_event(&c, implementing),
        change_event(&d, completed),
    );
    let consumed = [all.0, all.1, all.2, all.3, all.4, all.5, all.6, all.7];
    // At most one delivery says it linked the change: none when the one that
    // did failed a later step (a contended write) and its retry found the link.
    let linked: Vec<ChangeId> = consumed.iter().flat_map(newly).collect();
    assert!(linked.is_empty() || linked == [done.id], "at most one delivery links the change: {linked:?}");
    linked_once(&hub, &done).await;
}

/// A deployment re-dates the change to after the incident: its event
/// re-checks the incident the change lists, the correlation no longer
/// relates them, and the change drops the incident with an audited
/// `incident_unrelated` that takes the count back; a duplicate does nothing more.
pub async fn a_change_that_moves_past_its_incident_drops_it_and_its_count<S: HubStore>(store: S) {
    let hub = Consumers::new(&store).await;
    let (tenant, t) = (hub.tenant.clone(), t0());
    let consumer = hub.consumer();
    incident_event(&consumer, &pagerduty(&tenant, "payments")).await;
    let done = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    for event in events_of(&store, &done).await {
        change_event(&consumer, &event).await;
    }
    assert_eq!(counts(&store, &done, "payments").await, (0, 1));

    let tagged = change(&store, &done).await;
    let mut next = tagged.revised(t);
    next.implementation =
        Some(Implementation::Finished { started_at: t + m(5), ended_at: t + m(10), outcome: Outcome::Succeeded });
    let (next, entry) =
        audit::record(Some(&tagged), next, SYSTEM_ACTOR, AuditAction::DeploymentRecorded, Some("re-dated".into()));
    store.update_change(plain_update(&tagged, &next, std::slice::from_ref(&entry))).await.expect("re-date");
    let moved = HubEvent::change_mutated(&next, &entry);
    assert_eq!(moved.detail_type, "Change Deployment Recorded");
    assert_eq!(rechecked(&change_event(&consumer, &moved).await), 1, "the incident it lists");
    assert_eq!(rechecked(&change_event(&consumer, &moved).await), 0, "it lists none any more");

    let record = incident(&store, &tenant).await;
    assert!(!record.change_related && record.related_changes.is_empty(), "{record:?}");
    assert!(record.removed_changes.is_empty(), "not a cab's removal");
    assert!(change(&store, &done).await.related_incidents.is_empty());
    assert_eq!(counts(&store, &done, "payments").await, (0, 0), "the failure is taken back");
    let trail = store.audit_trail(&tenant, &done.id).await.expect("trail");
    let unrelated: Vec<_> = trail.iter().filter(|e| e.action == AuditAction::IncidentUnrelated).collect();
    assert_eq!(unrelated.len(), 1, "once");
    assert_eq!(unrelated[0].actor, SYSTEM_ACTOR);
    let reason = unrelated[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("re-correlation no longer relates it"), "{reason}");
    assert_eq!(hub.told(), 1, "told of the tag once, nothing of its removal");
}
