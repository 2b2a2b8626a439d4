//! The drift consumer's contract, through its use case: every case runs
//! against the embedded and the DynamoDB store (findings, claims, changes).

use changehub::app::Changes;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::ChangeStore;
use changehub::app::drift::{Drift, Judged};
use changehub::domain::audit::AuditAction;
use changehub::domain::finding::authorize::AuthorizedBy;
use changehub::domain::finding::change_evidence::Recorded;
use changehub::domain::finding::suppression::Suppression;
use changehub::domain::finding::{FindingKind, FindingStatus};
use changehub::domain::{ChangeState, TenantId};
use changehub::ingest::{Normalized, aws};
use changehub::ports::{
    Cursor, Dedupe, FindingQuery, FindingStore, FixedClock, ImplementationReader, Notification, Notifier, NotifyError,
    StoreError,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

use crate::fixtures::{alice, carol, seed, submit_and_approve, to};
use crate::{new_change, t0};

pub const CONFIG_ITEM: &[u8] = include_bytes!("../../events/aws/config.configuration_item_change.json");
pub const TRAIL_BREAK_GLASS: &[u8] =
    include_bytes!("../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.source_identity.json");
pub const TRAIL_DEPLOYER: &[u8] =
    include_bytes!("../../events/aws/cloudtrail.ec2_authorize_security_group_ingress.json");

/// What the hub tells people, kept in memory.
#[derive(Clone, Default)]
pub struct Told(pub Arc<Mutex<Vec<Notification>>>);

impl Told {
    pub fn all(&self) -> Vec<Notification> {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

impl Notifier for Told {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        if let Ok(mut all) = self.0.lock() {
            all.push(n.clone());
        }
        Ok(())
    }
}

/// The hub event (detail-type, detail) ingest makes of an AWS sample for
/// `tenant`, as hub event `event_id`, happened at `at`, service unresolved
/// (the consumer resolves it from the resource). A CloudTrail call is
/// another record of its own (its `eventID` is `event_id` too).
pub fn evidence(body: &[u8], tenant: &str, event_id: &str, at: DateTime<Utc>) -> (String, Value) {
    let Ok(Normalized::Events(mut events)) = aws::normalize(body) else { panic!("one event") };
    let c = events.remove(0);
    let (detail_type, mut data) = c.fact.split();
    if detail_type == "API Call Recorded" {
        data["event_id"] = json!(event_id);
    }
    let detail = json!({
        "event_id": event_id, "tenant": tenant, "origin": "aws", "service": null,
        "service_resolution": {"key": null, "reason": "the event names no service"}, "environment": null,
        "occurred_at": at, "actor": c.actor, "external_id": c.external_id, "url": null,
        "delivery_id": event_id, "data": data,
    });
    (detail_type, detail)
}

pub trait DriftHubStore: ChangeStore + FindingStore + ImplementationReader + Dedupe {}
impl<T: ChangeStore + FindingStore + ImplementationReader + Dedupe> DriftHubStore for T {}

pub struct Hub<S: DriftHubStore> {
    pub app: Arc<Changes<S, FixedClock>>,
    pub drift: Arc<Drift<S, CachedCatalog<S>, FixedClock, Told>>,
    pub told: Told,
    pub tenant: String,
}

pub async fn hub<S: DriftHubStore>(store: S) -> Hub<S> {
    let app = Arc::new(Changes::new(store.clone(), FixedClock::new(t0())));
    let tenant = crate::unique("acme");
    seed(&app, &tenant).await;
    let told = Told::default();
    let drift = Arc::new(Drift::new(store, app.catalog.clone(), FixedClock::new(t0()), told.clone()));
    Hub { app, drift, told, tenant }
}

fn unauthorized(j: &Judged) -> &changehub::domain::finding::Finding {
    match j {
        Judged::Unauthorized { finding, .. } => finding,
        other => panic!("expected a finding, got {other:?}"),
    }
}

pub async fn findings_are_replaced_at_their_version_and_listed_newest_first<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let mut ids = Vec::new();
    for (i, hours) in [3, 2, 1].into_iter().enumerate() {
        let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, &format!("e{i}"), t0() - Duration::hours(hours));
        ids.push(unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).id.clone());
    }
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let query = |after: Option<Cursor>| FindingQuery { limit: 2, after, ..FindingQuery::new(tenant.clone(), 2) };
    let first = h.app.store.list_findings(&query(None)).await.expect("page 1");
    let second = h.app.store.list_findings(&query(first.next.clone())).await.expect("page 2");
    let listed: Vec<_> = first.items.iter().chain(&second.items).map(|f| f.id.clone()).collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone(), ids[0].clone()], "newest first");
    assert_eq!(second.next, None);
    let in_range = FindingQuery {
        from: Some(t0() - Duration::minutes(150)),
        to: Some(t0() - Duration::minutes(30)),
        ..FindingQuery::new(tenant.clone(), 10)
    };
    let found: Vec<_> =
        h.app.store.list_findings(&in_range).await.expect("range").items.into_iter().map(|f| f.id).collect();
    assert_eq!(found, [ids[2].clone(), ids[1].clone()]);
    let filtered = FindingQuery {
        status: Some(FindingStatus::Acknowledged),
        kind: Some(FindingKind::UnauthorizedChange),
        ..FindingQuery::new(tenant.clone(), 10)
    };
    assert!(h.app.store.list_findings(&filtered).await.expect("none").items.is_empty());
    let foreign = Cursor::parse("PRB#x").expect("cursor");
    assert!(matches!(h.app.store.list_findings(&query(Some(foreign))).await, Err(StoreError::InvalidCursor(_))));

    let stored = h.app.store.get_finding(&tenant, &ids[0]).await.expect("get").expect("stored");
    let mut next = stored.clone();
    next.acknowledge("sam", t0(), None).expect("acknowledge");
    next.version += 1;
    h.app.store.put_finding(&next).await.expect("at the version read");
    assert!(matches!(h.app.store.put_finding(&next).await, Err(StoreError::VersionConflict { .. })));
    assert!(
        matches!(h.app.store.put_finding(&stored).await, Err(StoreError::VersionConflict { .. })),
        "a first version again"
    );
    assert_eq!(h.app.store.get_finding(&tenant, &ids[0]).await.expect("get"), Some(next));
}

pub async fn a_burst_is_one_finding_with_a_count_however_concurrent_and_duplicated<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    // Six calls by one session within two minutes, each delivered twice, all at once.
    let calls = (0..12).map(|i| {
        let (dt, d) =
            evidence(TRAIL_BREAK_GLASS, &h.tenant, &format!("burst-{}", i % 6), t0() + Duration::seconds(20 * (i % 6)));
        let drift = h.drift.clone();
        tokio::spawn(async move {
            loop {
                match drift.handle(&dt, &d).await {
                    Err(e) if e.retryable() => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    other => return other,
                }
            }
        })
    });
    let mut opened = 0;
    for call in calls {
        if let Judged::Unauthorized { opened: true, .. } = call.await.expect("join").expect("judged") {
            opened += 1;
        }
    }
    assert_eq!(opened, 1, "one call opened it");
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let all = h.app.store.list_findings(&FindingQuery::new(tenant, 10)).await.expect("list").items;
    assert_eq!(all.len(), 1, "{all:?}");
    let f = &all[0];
    assert_eq!((f.count, f.evidence.len()), (6, 6));
    assert_eq!(f.actor.as_ref().map(|a| a.name.as_str()), Some("maria.rossi@acme.example"));
    assert_eq!(f.service.as_ref().map(|s| s.as_str()), Some("payments"));
    assert_eq!(f.severity.as_str(), "critical", "a security group on a tier-1 service");
    let told = owners(&h.told);
    assert_eq!(told.len(), 1, "one notification for the burst: {told:?}");
    assert_eq!(h.told.all().len(), 3, "once to each recipient: the feed, the owners, the cab");
    assert_eq!(told[0].attributes["type"], "unauthorized_change");
    assert_eq!(told[0].attributes["service"], "payments");
    assert_eq!(told[0].attributes["severity"], "critical");
    assert_eq!(told[0].attributes["notify"], "payments-team");
    assert!(told[0].subject.contains("maria.rossi@acme.example"), "{}", told[0].subject);
}

/// The copies told to the service's owners.
pub fn owners(told: &Told) -> Vec<Notification> {
    told.all().into_iter().filter(|n| n.attributes.get("audience").map(String::as_str) == Some("owners")).collect()
}

/// A finding is routed like any event: a catalog rule sending
/// `unauthorized_change` to the cab and the stakeholders gives each a copy
/// (and the owners none), each text naming who changed which resource.
pub async fn drift_findings_are_routed_by_the_catalogs_rules<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let mut catalog = crate::fixtures::catalog();
    let audiences = vec![changehub::domain::routing::Audience::Cab, changehub::domain::routing::Audience::Stakeholders];
    catalog.routing.rules.insert("unauthorized_change".into(), audiences);
    h.app.catalog.replace(&crate::fixtures::root(&h.tenant), catalog, None, &h.app.clock).await.expect("import");
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "e1", t0());
    unauthorized(&h.drift.handle(&dt, &d).await.expect("judged"));
    let told = h.told.all();
    let get = |n: &Notification, k: &str| n.attributes.get(k).cloned().unwrap_or_default();
    let to: Vec<(String, String)> = told.iter().map(|n| (get(n, "audience"), get(n, "notify"))).collect();
    let row = |a: &str, n: &str| (a.to_owned(), n.to_owned());
    assert_eq!(
        to,
        [
            row("feed", ""),
            row("cab", "cab"),
            row("stakeholders", "finance-ops"),
            row("stakeholders", "cfo@acme.example")
        ]
    );
    for n in &told {
        assert_eq!((get(n, "type"), get(n, "kind")), ("unauthorized_change".into(), "Unauthorized Change".into()));
        assert_eq!((get(n, "service"), get(n, "severity")), ("payments".into(), "critical".into()));
        let text = n.message.headline.clone();
        assert!(text.contains("maria.rossi@acme.example") && text.contains("sg-0a1b2c3d4e5f67890"), "{text}");
    }
}

pub async fn a_config_item_and_its_api_call_make_one_finding_in_either_order<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    // Config first: a finding without an actor, then the call names it.
    let (dt, d) = evidence(CONFIG_ITEM, &h.tenant, "config-1", t0() + Duration::seconds(90));
    let first = h.drift.handle(&dt, &d).await.expect("config");
    assert_eq!(unauthorized(&first).actor, None);
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "call-1", t0());
    let joined = h.drift.handle(&dt, &d).await.expect("call");
    let f = unauthorized(&joined);
    assert_eq!(f.id, unauthorized(&first).id, "the call joined the Config item's finding");
    assert_eq!((f.count, f.actor.as_ref().map(|a| a.name.as_str())), (2, Some("maria.rossi@acme.example")));
    let subjects: Vec<String> = owners(&h.told).into_iter().map(|n| n.subject).collect();
    assert_eq!(subjects.len(), 2, "told again once the actor is known: {subjects:?}");
    assert!(subjects[1].contains("maria.rossi@acme.example"));

    // The call first (an hour later): the Config item joins it.
    let later = t0() + Duration::hours(1);
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "call-2", later);
    let call = h.drift.handle(&dt, &d).await.expect("call");
    let (dt, d) = evidence(CONFIG_ITEM, &h.tenant, "config-2", later + Duration::seconds(45));
    let config = h.drift.handle(&dt, &d).await.expect("config");
    assert_eq!(unauthorized(&config).id, unauthorized(&call).id);
    assert_eq!(unauthorized(&config).count, 2);
    let all = h.app.store.list_findings(&FindingQuery::new(tenant, 10)).await.expect("list").items;
    assert_eq!(all.len(), 2, "one finding per change, in either order");
    // A duplicate does nothing.
    assert_eq!(h.drift.handle(&dt, &d).await.expect("again"), Judged::Duplicate);
}

pub async fn an_approved_window_authorizes_and_a_pipeline_needs_an_implementation<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let start = t0() + Duration::days(1);
    let change =
        h.app.create(&alice(&h.tenant), new_change("open db port", &["payments"], start, 2)).await.expect("create");
    submit_and_approve(&h.app, &h.tenant, &change.id).await;
    h.app.transition(&alice(&h.tenant), &change.id, to(ChangeState::Scheduled, 4)).await.expect("schedule");
    let judge = |body: &'static [u8], id: &str, at: DateTime<Utc>| {
        let (dt, d) = evidence(body, &h.tenant, id, at);
        let drift = h.drift.clone();
        async move { drift.handle(&dt, &d).await.expect("judged") }
    };
    let inside = judge(TRAIL_BREAK_GLASS, "in", start + Duration::minutes(30)).await;
    assert!(matches!(inside, Judged::Authorized { change_id, .. } if change_id == change.id), "{inside:?}");
    let grace = judge(TRAIL_BREAK_GLASS, "grace", start - Duration::minutes(15)).await;
    assert!(matches!(grace, Judged::Authorized { .. }), "{grace:?}");
    let outside = judge(TRAIL_BREAK_GLASS, "out", start - Duration::minutes(16)).await;
    assert!(matches!(outside, Judged::Unauthorized { .. }), "{outside:?}");
    // The deployer role is a pipeline's (the sample catalog): a plan is not enough.
    let pipeline = judge(TRAIL_DEPLOYER, "ci", start + Duration::minutes(30)).await;
    let f = unauthorized(&pipeline);
    assert!(f.reason.contains("pipeline"), "{}", f.reason);
    assert!(f.actor.as_ref().is_some_and(|a| a.pipeline));
}

/// A change that names the resource authorizes a change of it though it
/// lists another service: found through the index of changes that name
/// resources, inside its window only.
pub async fn a_change_naming_the_resource_authorizes_it<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let start = t0() + Duration::days(1);
    let mut named = new_change("rotate the bastion's rules", &["search"], start, 2);
    named.resources = vec!["sg-0a1b2c3d4e5f67890".into()];
    let change = h.app.create(&alice(&h.tenant), named).await.expect("create");
    h.app.transition(&alice(&h.tenant), &change.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    // Search's one level: its team lead.
    let lead = crate::fixtures::who(&h.tenant, "sam@example.com", &["search-leads"]);
    let approved = h.app.decide(&lead, &change.id, crate::fixtures::approve()).await.expect("approve").change;
    assert_eq!(approved.state, ChangeState::Approved);
    let schedule = to(ChangeState::Scheduled, approved.version);
    h.app.transition(&alice(&h.tenant), &change.id, schedule).await.expect("schedule");
    let judge = |id: &str, at: DateTime<Utc>| {
        let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, id, at);
        let drift = h.drift.clone();
        async move { drift.handle(&dt, &d).await.expect("judged") }
    };
    let inside = judge("named-in", start + Duration::minutes(30)).await;
    assert!(matches!(inside, Judged::Authorized { change_id, .. } if change_id == change.id), "{inside:?}");
    let outside = judge("named-out", start + Duration::hours(3)).await;
    let f = unauthorized(&outside);
    assert!(f.reason.contains("names the resource"), "{}", f.reason);
}

/// What actually changed during a change: each observation it authorized is
/// recorded on it once (a redelivery, or the same evidence again, adds
/// nothing), read by the events' own times a page at a time.
pub async fn authorized_observations_are_recorded_on_their_change_once<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let start = t0() + Duration::days(1);
    let change =
        h.app.create(&alice(&h.tenant), new_change("open db port", &["payments"], start, 2)).await.expect("create");
    submit_and_approve(&h.app, &h.tenant, &change.id).await;
    h.app.transition(&alice(&h.tenant), &change.id, to(ChangeState::Scheduled, 4)).await.expect("schedule");
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    // The Config item first (later in time), then the call behind it; then the call again.
    for (body, id, minutes) in
        [(CONFIG_ITEM, "config", 31), (TRAIL_BREAK_GLASS, "call", 30), (TRAIL_BREAK_GLASS, "call", 30)]
    {
        let (dt, d) = evidence(body, &h.tenant, id, start + Duration::minutes(minutes));
        h.drift.handle(&dt, &d).await.expect("judged");
    }
    let first = h.app.store.change_evidence(&tenant, &change.id, 1, None).await.expect("page 1");
    let second = h.app.store.change_evidence(&tenant, &change.id, 1, first.next.clone()).await.expect("page 2");
    assert_eq!(second.next, None, "two pieces of evidence: {second:?}");
    let all: Vec<_> = first.items.iter().chain(&second.items).collect();
    assert_eq!(all.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["call", "config"], "by their own times");
    let call = all[0];
    assert_eq!((call.change_id, call.at), (change.id, start + Duration::minutes(30)));
    assert_eq!(call.actor.as_ref().map(|a| a.name.as_str()), Some("maria.rossi@acme.example"));
    assert_eq!(call.authorized_by, AuthorizedBy::PlannedWindow);
    assert!(call.what.starts_with("ec2:AuthorizeSecurityGroupIngress"), "{}", call.what);
    assert_eq!((call.account.as_str(), call.region.as_str()), ("123456789012", "us-east-1"));
    assert_eq!(h.app.store.record_evidence(call).await.expect("again"), Recorded::Duplicate);
    let foreign = Cursor::parse("FND#x").expect("cursor");
    assert!(matches!(
        h.app.store.change_evidence(&tenant, &change.id, 5, Some(foreign)).await,
        Err(StoreError::InvalidCursor(_))
    ));
    let other = changehub::domain::ChangeId::new();
    assert!(h.app.store.change_evidence(&tenant, &other, 5, None).await.expect("none").items.is_empty());
    assert!(h.told.all().is_empty(), "nothing to tell");
}

/// Two findings whose windows start at the same instant (two sessions, or
/// a session and an unmapped resource) are two records, both listed.
pub async fn findings_of_the_same_instant_are_both_kept<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "maria", t0());
    let maria = unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).clone();
    let (dt, mut d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "sam", t0());
    d["data"]["identity"]["session_name"] = json!("sam");
    d["data"]["identity"]["source_identity"] = json!("sam@acme.example");
    d["data"]["identity"]["arn"] = json!("arn:aws:sts::123456789012:assumed-role/ops-break-glass/sam");
    let sam = unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).clone();
    assert_ne!(maria.id, sam.id);
    assert_eq!(maria.id.as_str()[..18], sam.id.as_str()[..18], "the same window: {} {}", maria.id, sam.id);
    let all = h.app.store.list_findings(&FindingQuery::new(tenant, 10)).await.expect("list").items;
    let mut names: Vec<_> = all.iter().filter_map(|f| f.actor.as_ref().map(|a| a.name.clone())).collect();
    names.sort();
    assert_eq!(names, ["maria.rossi@acme.example", "sam@acme.example"]);
}

/// A bulk-change window declared by the cab: an unauthorized change inside
/// it, on its service, by its principals, is recorded `suppressed` (counted,
/// listed, nobody told); outside it, or by someone else, it is a finding as
/// ever. The declaration and the lift are on the governance trail.
pub async fn a_suppression_window_records_without_telling<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let window = Suppression {
        id: "sg-cleanup".into(),
        services: vec![changehub::domain::ServiceName::parse("payments").expect("service")],
        start: t0(),
        end: t0() + Duration::hours(2),
        reason: "security-group clean-up".into(),
        principals: vec!["arn:aws:iam::123456789012:role/ops-*".into()],
    };
    let refused = h.app.governance().declare_suppression(&alice(&h.tenant), window.clone()).await;
    assert!(refused.is_err(), "a requester may not declare one");
    h.app.governance().declare_suppression(&carol(&h.tenant), window.clone()).await.expect("the cab declares it");
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "inside", t0() + Duration::minutes(30));
    let inside = unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).clone();
    assert_eq!((inside.status, inside.suppressed_by.as_deref()), (FindingStatus::Suppressed, Some("sg-cleanup")));
    assert!(h.told.all().is_empty(), "nobody paged: {:?}", h.told.all());
    // The pipeline's role is not one of the window's principals.
    let (dt, d) = evidence(TRAIL_DEPLOYER, &h.tenant, "ci", t0() + Duration::minutes(31));
    assert_eq!(unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).status, FindingStatus::Open);
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "after", t0() + Duration::hours(3));
    assert_eq!(unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).status, FindingStatus::Open);
    assert_eq!(owners(&h.told).len(), 2, "the two outside it are told");
    let suppressed = FindingQuery { status: Some(FindingStatus::Suppressed), ..FindingQuery::new(tenant.clone(), 10) };
    let listed = h.app.store.list_findings(&suppressed).await.expect("list").items;
    let listed: Vec<_> = listed.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(listed, [inside.id.as_str()]);
    let lift = changehub::app::suppressions::LiftSuppression { reason: "done early".into() };
    h.app.governance().lift_suppression(&carol(&h.tenant), "sg-cleanup", lift).await.expect("lifted");
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "lifted", t0() + Duration::minutes(90));
    assert_eq!(unauthorized(&h.drift.handle(&dt, &d).await.expect("judged")).status, FindingStatus::Open);
    let trail = h.app.store.trail(&tenant, 50, None).await.expect("trail").items;
    let actions: Vec<_> = trail.iter().map(|e| e.action).collect();
    assert!(actions.contains(&AuditAction::SuppressionDeclared) && actions.contains(&AuditAction::SuppressionLifted));
}

/// Judges an event, coming back while another consumer holds it (as the
/// platform retries a retryable failure).
async fn judged<S: DriftHubStore>(
    drift: Arc<Drift<S, CachedCatalog<S>, FixedClock, Told>>,
    detail_type: String,
    detail: Value,
) -> Judged {
    loop {
        match drift.handle(&detail_type, &detail).await {
            Err(e) if e.retryable() => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            other => return other.expect("judged"),
        }
    }
}

/// A Config item and the API call behind it, on one resource at the same
/// second, judged at once by two consumers (each pair by its own person on
/// its own security group): one finding per change, never two, whichever
/// consumer reads first.
pub async fn a_config_item_and_its_call_at_the_same_instant_make_one_finding<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let pairs = 6;
    let mut tasks = Vec::new();
    for i in 0..pairs {
        let group = format!("sg-0c{i:015x}");
        let arn = format!("arn:aws:ec2:us-east-1:123456789012:security-group/{group}");
        let (config_type, mut config) = evidence(CONFIG_ITEM, &h.tenant, &format!("config-{i}"), t0());
        config["data"]["resource_id"] = json!(group);
        config["data"]["resource_arn"] = json!(arn);
        let (call_type, mut call) = evidence(TRAIL_BREAK_GLASS, &h.tenant, &format!("call-{i}"), t0());
        call["data"]["parameters"]["groupId"] = json!(group);
        call["data"]["identity"]["source_identity"] = json!(format!("person-{i}@acme.example"));
        call["data"]["identity"]["arn"] = json!(format!("arn:aws:sts::123456789012:assumed-role/ops-break-glass/p{i}"));
        // Each consumer of its own (two Lambda instances), on the one store.
        let other =
            Arc::new(Drift::new(h.app.store.clone(), h.app.catalog.clone(), FixedClock::new(t0()), h.told.clone()));
        tasks.push(tokio::spawn(judged(h.drift.clone(), config_type, config)));
        tasks.push(tokio::spawn(judged(other, call_type, call)));
    }
    for task in tasks {
        assert!(matches!(task.await.expect("join"), Judged::Unauthorized { .. }));
    }
    let all = h.app.store.list_findings(&FindingQuery::new(tenant, 50)).await.expect("list").items;
    assert_eq!(all.len(), pairs, "one finding per pair: {all:#?}");
    for f in &all {
        assert_eq!(f.count, 2, "{f:?}");
        assert!(f.actor.as_ref().is_some_and(|a| a.name.starts_with("person-")), "{f:?}");
    }
}

/// The same CloudTrail record delivered in two EventBridge envelopes (two
/// hub events, one `eventID`), one after the other or at once: counted
/// once, told once.
pub async fn one_cloudtrail_record_in_two_envelopes_counts_once<S: DriftHubStore>(store: S) {
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let copies = |record: &str, at: DateTime<Utc>| {
        let (dt, mut first) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "envelope-1", at);
        first["data"]["event_id"] = json!(record);
        let mut second = first.clone();
        second["event_id"] = json!("envelope-2");
        second["delivery_id"] = json!("envelope-2");
        (dt, first, second)
    };
    let (dt, first, second) = copies("record-1", t0());
    assert!(matches!(h.drift.handle(&dt, &first).await.expect("first"), Judged::Unauthorized { opened: true, .. }));
    assert_eq!(h.drift.handle(&dt, &second).await.expect("second"), Judged::Duplicate);
    // At once, an hour later.
    let (dt, first, second) = copies("record-2", t0() + Duration::hours(1));
    let a = tokio::spawn(judged(h.drift.clone(), dt.clone(), first));
    let b = tokio::spawn(judged(h.drift.clone(), dt, second));
    let both = [a.await.expect("join"), b.await.expect("join")];
    assert_eq!(both.iter().filter(|j| **j == Judged::Duplicate).count(), 1, "{both:?}");
    let all = h.app.store.list_findings(&FindingQuery::new(tenant, 10)).await.expect("list").items;
    assert_eq!(all.iter().map(|f| f.count).collect::<Vec<_>>(), [1, 1], "{all:#?}");
    assert_eq!(owners(&h.told).len(), 2, "each told once");
}

/// A store on which a test stages what an older hub wrote.
pub trait OlderTable {
    /// Deletes one item, as if it had never been written.
    fn forget(&self, pk: String, sk: String) -> impl std::future::Future<Output = ()> + Send;
}

impl OlderTable for changehub::adapters::embedded::EmbeddedStore {
    async fn forget(&self, pk: String, sk: String) {
        self.delete_raw(pk, sk).await.expect("raw delete");
    }
}

impl OlderTable for changehub::adapters::dynamodb::DynamoStore {
    async fn forget(&self, pk: String, sk: String) {
        use aws_sdk_dynamodb::types::AttributeValue::S;
        let deleted = self.client().delete_item().table_name(self.table_name()).key("PK", S(pk)).key("SK", S(sk));
        deleted.send().await.expect("raw delete");
    }
}

/// A change approved before the table had the plannable index is invisible
/// to drift (its window authorizes nothing) until `changehub migrate`'s
/// pass writes its entries; the pass is idempotent.
pub async fn a_change_approved_before_the_plannable_index_authorizes_once_migrated<
    S: DriftHubStore + changehub::ports::IndexRestore + OlderTable,
>(
    store: S,
) {
    use changehub::adapters::keys;
    use changehub::app::migrate::{Migrated, restore_indexes};
    let h = hub(store).await;
    let tenant = TenantId::parse(&h.tenant).expect("tenant");
    let start = t0() + Duration::days(1);
    let change =
        h.app.create(&alice(&h.tenant), new_change("open db port", &["payments"], start, 2)).await.expect("create");
    submit_and_approve(&h.app, &h.tenant, &change.id).await;
    let payments = changehub::domain::ServiceName::parse("payments").expect("service");
    // The table as an older hub left it: no plannable entry.
    h.app.store.forget(keys::plannable_pk(&tenant, &payments), keys::service_sk(start, &change.id)).await;
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "before", start + Duration::minutes(30));
    assert!(matches!(h.drift.handle(&dt, &d).await.expect("judged"), Judged::Unauthorized { .. }), "invisible");

    let migrated = restore_indexes(&h.app.store, &tenant).await.expect("migrate");
    assert_eq!(migrated.indexed, 1, "{migrated:?}");
    assert!(migrated.read >= 1);
    assert_eq!(restore_indexes(&h.app.store, &tenant).await.expect("again"), migrated, "idempotent");
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "after", start + Duration::minutes(30));
    let judged = h.drift.handle(&dt, &d).await.expect("judged");
    assert!(matches!(judged, Judged::Authorized { change_id, .. } if change_id == change.id), "{judged:?}");
    let other = TenantId::parse(&crate::unique("empty")).expect("tenant");
    assert_eq!(restore_indexes(&h.app.store, &other).await.expect("none"), Migrated::default());
}
