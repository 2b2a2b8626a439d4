//! The store contract: every case runs against the embedded and the DynamoDB store.

use changehub::app::changes::ChangeStore;
use changehub::app::{Caller, ChangeError, Changes, ListRequest};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::waiting::Awaiting;
use changehub::domain::{AuditEntry, Change, ChangeState, ChangeType, TenantId};
use changehub::ports::{
    Bump, ChangeFilter, ChangeQuery, ChangeReader, ChangeUpdate, Claim, CounterKey, Counts, Cursor, Dedupe, DocKind,
    DueIndex, DuePartition, FixedClock, FreezesDue, ImplementationReader, ServiceWindowQuery, StoreError, StoredDoc,
    VolumeKey, VolumeOf, WaitingQuery,
};
use chrono::Duration;
use std::time::Duration as StdDuration;

use crate::fixtures::{self, approve, seed, submit_and_approve, to};
use crate::{new_change, t0};

/// An update from `before` to `change` that appends `entries` and nothing else.
pub fn plain_update<'a>(before: &'a Change, change: &'a Change, entries: &'a [AuditEntry]) -> ChangeUpdate<'a> {
    ChangeUpdate { before, change, entries, bumps: &[], volumes: &[], waits: &[] }
}

/// Alice, in a tenant of her own for this run (the DynamoDB table is shared by test runs).
fn caller(tenant: &str) -> Caller {
    fixtures::alice(tenant)
}

/// A fresh tenant with the sample catalog.
async fn seeded<S: ChangeStore>(app: &Changes<S, FixedClock>) -> String {
    let tenant = crate::unique("acme");
    seed(app, &tenant).await;
    tenant
}

fn service(s: &str) -> changehub::domain::ServiceName {
    changehub::domain::ServiceName::parse(s).expect("service")
}

pub async fn create_then_get<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created =
        app.create(&c, new_change("Upgrade payments DB", &["payments", "ledger"], t0(), 1)).await.expect("create");
    assert_eq!(created.state, ChangeState::Draft);
    assert_eq!(created.version, 1);
    let got = app.get(&c, &created.id).await.expect("get");
    assert_eq!(got, created);
    // Another tenant cannot see it.
    let other = crate::unique("other");
    seed(&app, &other).await;
    match app.get(&caller(&other), &created.id).await {
        Err(ChangeError::NotFound(_)) => {}
        other => panic!("expected NotFound for another tenant, got {other:?}"),
    }
}

pub async fn insert_refuses_an_existing_id<S: ChangeStore>(store: S) {
    let c = caller("acme");
    let draft = new_change("x", &["payments"], t0(), 1).validate().expect("valid").into_draft(
        changehub::domain::ChangeId::new(),
        c.tenant.clone(),
        c.user.clone(),
        t0(),
    );
    let (change, entry) = audit::record(None, draft, &c.user, AuditAction::Created, None);
    store.insert_change(&change, &entry).await.expect("first insert");
    match store.insert_change(&change, &entry).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

pub async fn lists_changes_touching_a_service_in_a_time_range<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let h = Duration::hours;
    // Windows relative to t0: [-50h,-48h], [-3h,+1h], [+2h,+3h], [+10h,+11h]; and one long [-20d, +1h].
    let before = app.create(&c, new_change("before", &["payments"], t0() - h(50), 2)).await.expect("create");
    let overlapping = app.create(&c, new_change("overlapping", &["payments"], t0() - h(3), 4)).await.expect("create");
    let inside = app.create(&c, new_change("inside", &["payments", "search"], t0() + h(2), 1)).await.expect("create");
    let after = app.create(&c, new_change("after", &["payments"], t0() + h(10), 1)).await.expect("create");
    let long = app
        .create(&c, new_change("long", &["payments"], t0() - Duration::days(20), 20 * 24 + 1))
        .await
        .expect("create");
    app.create(&c, new_change("other service", &["search"], t0(), 1)).await.expect("create");
    let other = seeded(&app).await;
    app.create(&caller(&other), new_change("other tenant", &["payments"], t0(), 1)).await.expect("create");

    let list = |from, to, limit, cursor: Option<Cursor>| ListRequest {
        service: Some("payments".into()),
        from: Some(from),
        to: Some(to),
        limit: Some(limit),
        cursor: cursor.map(String::from),
        ..ListRequest::default()
    };
    let page = app.list(&c, list(t0() - h(1), t0() + h(5), 50, None)).await.expect("list");
    let titles: Vec<_> = page.items.iter().map(|c| c.title.as_str()).collect();
    // Ordered by planned start.
    assert_eq!(titles, ["long", "overlapping", "inside"]);
    assert_eq!(page.next, None);
    let ids: Vec<_> = page.items.iter().map(|c| c.id).collect();
    assert_eq!(ids, [long.id, overlapping.id, inside.id]);

    // Paging: two at a time, then the rest.
    let first = app.list(&c, list(t0() - h(100), t0() + h(100), 2, None)).await.expect("page 1");
    assert_eq!(first.items.iter().map(|c| c.id).collect::<Vec<_>>(), [long.id, before.id]);
    let cursor = first.next.clone().expect("a next cursor");
    let second = app.list(&c, list(t0() - h(100), t0() + h(100), 2, Some(cursor))).await.expect("page 2");
    assert_eq!(second.items.iter().map(|c| c.id).collect::<Vec<_>>(), [overlapping.id, inside.id]);
    let third = app.list(&c, list(t0() - h(100), t0() + h(100), 2, second.next.clone())).await.expect("page 3");
    assert_eq!(third.items.iter().map(|c| c.id).collect::<Vec<_>>(), [after.id]);
    assert_eq!(third.next, None);

    // The index follows state changes: listed records are the current ones.
    let moved = app.transition(&c, &inside.id, to(ChangeState::Submitted, 1)).await.expect("transition");
    let again = app.list(&c, list(t0() + h(2), t0() + h(2), 10, None)).await.expect("list");
    assert!(again.items.contains(&moved), "listed record is the current version");
}

pub async fn stale_version_update_is_a_conflict<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = app.create(&c, new_change("x", &["payments"], t0(), 1)).await.expect("create");
    let submitted = created.transition(ChangeState::Submitted, t0()).expect("legal");
    let (submitted, entry) = audit::record(Some(&created), submitted, &c.user, AuditAction::Transitioned, None);
    app.store
        .update_change(plain_update(&created, &submitted, std::slice::from_ref(&entry)))
        .await
        .expect("first update");
    // A second writer that read version 1 too.
    let cancelled = created.transition(ChangeState::Cancelled, t0()).expect("legal");
    let (cancelled, entry) = audit::record(Some(&created), cancelled, "bob", AuditAction::Transitioned, None);
    match app.store.update_change(plain_update(&created, &cancelled, std::slice::from_ref(&entry))).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected VersionConflict at 1, got {other:?}"),
    }
    // Nothing of the losing write was kept.
    assert_eq!(app.get(&c, &created.id).await.expect("get").state, ChangeState::Submitted);
    assert_eq!(app.audit(&c, &created.id).await.expect("audit").len(), 2);
    // Updating a change that does not exist is NotFound.
    let ghost = created.clone();
    let ghost = changehub::domain::Change { id: changehub::domain::ChangeId::new(), ..ghost };
    let next = ghost.transition(ChangeState::Submitted, t0()).expect("legal");
    let (next, entry) = audit::record(Some(&ghost), next, "bob", AuditAction::Transitioned, None);
    match app.store.update_change(plain_update(&ghost, &next, std::slice::from_ref(&entry))).await {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub async fn audit_entries_append_and_read_in_order<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = app.create(&c, new_change("x", &["payments"], t0(), 1)).await.expect("create");
    app.clock.set(t0() + Duration::minutes(1));
    let approved = submit_and_approve(&app, &tenant, &created.id).await;
    app.clock.set(t0() + Duration::minutes(2));
    let mut req = to(ChangeState::Scheduled, approved.version);
    req.reason = Some("window agreed".into());
    app.transition(&c, &created.id, req).await.expect("schedule");
    let trail = app.audit(&c, &created.id).await.expect("audit");
    assert_eq!(trail.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let actions: Vec<_> = trail.iter().map(|e| e.action).collect();
    use AuditAction::*;
    assert_eq!(actions, [Created, Transitioned, Decided, Decided, Transitioned]);
    assert_eq!(trail[2].actor, "pat@example.com");
    assert_eq!(trail[3].actor, "carol@example.com");
    let state = |i: usize| trail[i].changes.iter().find(|f| f.field == "state").map(|f| f.after.clone());
    assert_eq!(state(3), Some(serde_json::json!("approved")));
    assert_eq!(state(4), Some(serde_json::json!("scheduled")));
    assert_eq!(trail[4].reason.as_deref(), Some("window agreed"));
    changehub::domain::audit::verify_chain(&trail).expect("stored chain verifies");
    let current = app.get(&c, &created.id).await.expect("get");
    assert_eq!(current.audit_head, trail[4].hash);
}

/// A standard change from the sample catalog's template, created by `c`.
async fn standard_change<S: ChangeStore>(app: &Changes<S, FixedClock>, c: &Caller) -> Change {
    let mut input = new_change("Rotate the payments certificate", &["payments"], t0(), 1);
    input.change_type = ChangeType::Standard;
    input.template = Some("rotate-tls-cert".into());
    input.category = Some("certificate".into());
    app.create(c, input).await.expect("create")
}

/// A standard change is submitted and approved in one write: two entries, chained.
pub async fn one_update_appends_several_entries<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = standard_change(&app, &c).await;
    let approved = app.transition(&c, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!((approved.state, approved.version), (ChangeState::Approved, 3));
    let trail = app.audit(&c, &created.id).await.expect("audit");
    assert_eq!(trail.len(), 3);
    assert_eq!(trail[2].actor, "changehub");
    assert!(trail[2].reason.as_deref().is_some_and(|r| r.contains("pre-approved template rotate-tls-cert")));
    changehub::domain::audit::verify_record(&approved, &trail).expect("verifies");
}

/// The outbox publisher reads the entries one write added, by number.
pub async fn audit_entries_are_read_by_number<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = standard_change(&app, &c).await;
    app.transition(&c, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let seqs = |entries: Vec<changehub::domain::AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let read = |range| app.store.audit_entries(&c.tenant, &created.id, range);
    assert_eq!(seqs(read(2..=3).await.expect("the submit's entries")), [2, 3]);
    assert_eq!(seqs(read(1..=1).await.expect("the creation's entry")), [1]);
    assert_eq!(seqs(read(4..=9).await.expect("none yet")), Vec::<u64>::new());
    let trail = app.audit(&c, &created.id).await.expect("trail");
    assert_eq!(read(1..=3).await.expect("all"), trail, "the same entries as the whole trail");
}

/// Tenant documents: created at version 1, replaced only from the version
/// read, each write appending one entry to the tenant's governance trail,
/// only from the trail's head; a refused write leaves both as they were.
pub async fn tenant_documents_are_replaced_conditionally<S: ChangeStore>(store: S) {
    use changehub::domain::audit::{TrailHead, governance_entry, verify_trail};
    let tenant = TenantId::parse(&crate::unique("docs")).expect("tenant");
    let doc = |version, body| StoredDoc { version, updated_at: t0(), updated_by: "root".into(), body, due_at: None };
    let entry = |head: Option<&TrailHead>| {
        governance_entry(&tenant, head, t0(), "root", AuditAction::FreezeDeclared, vec![], None)
    };
    assert_eq!(store.get_doc(&tenant, DocKind::Freezes).await.expect("get"), None);
    assert_eq!(store.trail_head(&tenant).await.expect("head"), None);
    let first = entry(None);
    store.put_doc(&tenant, DocKind::Freezes, &doc(1, serde_json::json!({"windows": []})), &first).await.expect("v1");
    match store
        .put_doc(&tenant, DocKind::Freezes, &doc(1, serde_json::json!({"again": true})), &entry(Some(&first.head())))
        .await
    {
        Err(StoreError::VersionConflict { expected: 0 }) => {}
        other => panic!("expected a conflict creating version 1 twice, got {other:?}"),
    }
    // A writer that read the trail before another governance write: refused, nothing written.
    let stale = entry(None);
    match store.put_doc(&tenant, DocKind::Freezes, &doc(2, serde_json::json!({"stale": true})), &stale).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected a conflict from a stale trail head, got {other:?}"),
    }
    assert_eq!(store.get_doc(&tenant, DocKind::Freezes).await.expect("get").map(|d| d.version), Some(1));
    let second = entry(Some(&first.head()));
    store.put_doc(&tenant, DocKind::Freezes, &doc(2, serde_json::json!({"windows": [1]})), &second).await.expect("v2");
    match store.put_doc(&tenant, DocKind::Freezes, &doc(2, serde_json::json!({})), &entry(Some(&second.head()))).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected a conflict from a stale writer, got {other:?}"),
    }
    let current = store.get_doc(&tenant, DocKind::Freezes).await.expect("get").expect("stored");
    assert_eq!((current.version, current.body), (2, serde_json::json!({"windows": [1]})));
    assert_eq!(store.get_doc(&tenant, DocKind::Catalog).await.expect("get"), None, "kinds are separate");
    // The trail: one entry per write, read a page at a time, oldest first.
    let head = store.trail_head(&tenant).await.expect("head").expect("a trail");
    assert_eq!(head, second.head());
    let page = store.trail(&tenant, 1, None).await.expect("page 1");
    assert_eq!(page.items, std::slice::from_ref(&first));
    let rest = store.trail(&tenant, 10, page.next.clone()).await.expect("page 2");
    assert_eq!((rest.items.as_slice(), rest.next), (std::slice::from_ref(&second), None));
    verify_trail(&head, &[first, second]).expect("the stored trail verifies");
    let bogus = Cursor::parse("CHG#x").expect("well formed");
    assert!(matches!(store.trail(&tenant, 10, Some(bogus)).await, Err(StoreError::InvalidCursor(_))));
}

/// A freezes document due for its "freeze starting" notice is in its
/// tenant's `DUE#FREEZE` shard from its `due_at`, moved and taken out by the
/// document's own writes; the query returns only documents due by then, and
/// neither the changes' partitions nor another kind of document mix in.
pub async fn freezes_documents_are_due_in_their_own_partition<S: ChangeStore + FreezesDue>(store: S) {
    use changehub::adapters::keys;
    use changehub::domain::audit::governance_entry;
    let tenant = TenantId::parse(&crate::unique("freezes")).expect("tenant");
    let shard = keys::tenant_shard(&tenant);
    let doc = |version, due_at| StoredDoc {
        version,
        updated_at: t0(),
        updated_by: "root".into(),
        body: serde_json::json!({"windows": [], "version": version}),
        due_at,
    };
    let mut head = None;
    let mut put = async |kind, d: StoredDoc| {
        let entry = governance_entry(&tenant, head.as_ref(), t0(), "root", AuditAction::FreezeDeclared, vec![], None);
        store.put_doc(&tenant, kind, &d, &entry).await.expect("put");
        head = Some(entry.head());
    };
    let due = async |until| {
        let page = store.due_freezes(shard, until, 10, None).await.expect("due");
        page.items.into_iter().map(|d| (d.tenant.to_string(), d.doc.version)).collect::<Vec<_>>()
    };
    let hour = |h| t0() + Duration::hours(h);
    put(DocKind::Freezes, doc(1, Some(hour(1)))).await;
    put(DocKind::Catalog, doc(1, Some(hour(1)))).await;
    assert_eq!(due(hour(1) - Duration::seconds(1)).await, [], "not due yet");
    assert_eq!(due(hour(1)).await, [(tenant.to_string(), 1)], "due: the freezes document only");
    let returned = store.due_freezes(shard, hour(1), 10, None).await.expect("due").items;
    assert_eq!(returned[0].doc, doc(1, Some(hour(1))), "the document as stored");
    for other in (0..changehub::ports::DUE_SHARDS).filter(|s| *s != shard) {
        assert!(store.due_freezes(other, hour(99), 10, None).await.expect("due").items.is_empty(), "shard {other}");
    }
    let soon = DuePartition::StartingSoon { shard };
    assert!(store.due(&soon, hour(99), 10, None).await.expect("changes").items.is_empty(), "no change partition");
    put(DocKind::Freezes, doc(2, Some(hour(2)))).await;
    assert_eq!(due(hour(1)).await, [], "moved by the next write");
    assert_eq!(due(hour(2)).await, [(tenant.to_string(), 2)]);
    put(DocKind::Freezes, doc(3, None)).await;
    assert_eq!(due(hour(99)).await, [], "nothing due: out of the index");
}

/// Finished changes bump their service's monthly counters in the same write.
pub async fn outcomes_bump_counters<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let key = |service: &str| CounterKey {
        tenant: TenantId::parse(&tenant).expect("tenant"),
        service: changehub::domain::ServiceName::parse(service).expect("service"),
        month: "2026-12".into(),
        category: "general".into(),
        change_type: ChangeType::Normal,
    };
    for outcome in [ChangeState::Completed, ChangeState::Failed, ChangeState::RolledBack] {
        let created = app.create(&c, new_change("x", &["payments"], t0(), 1)).await.expect("create");
        let approved = submit_and_approve(&app, &tenant, &created.id).await;
        let scheduled =
            app.transition(&c, &created.id, to(ChangeState::Scheduled, approved.version)).await.expect("schedule");
        let started =
            app.transition(&c, &created.id, to(ChangeState::Implementing, scheduled.version)).await.expect("implement");
        let done = app.transition(&c, &created.id, to(outcome, started.version)).await.expect("outcome");
        if outcome == ChangeState::Failed {
            // Rolling back after a failure is the same implementation: not counted again.
            app.transition(&c, &created.id, to(ChangeState::RolledBack, done.version)).await.expect("roll back");
        }
    }
    let counts = app.store.counts(&[key("payments"), key("ledger")]).await.expect("counts");
    assert_eq!(counts, [Counts { changes: 3, failures: 2 }, Counts::default()]);
    let raw = Bump::outcome(key("ledger"), true);
    assert_eq!(raw.key.month, "2026-12");
}

/// A reschedule moves the change's service index entries with its window:
/// a listing finds it in the new window only.
pub async fn rescheduling_moves_the_service_index<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created =
        app.create(&c, new_change("x", &["payments", "ledger"], t0() + Duration::days(2), 1)).await.expect("create");
    let submitted = app.transition(&c, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let mut version = submitted.version;
    let people = [
        fixtures::pat(&tenant),
        fixtures::who(&tenant, "lee@example.com", &["ledger-leads"]),
        fixtures::carol(&tenant),
        fixtures::who(&tenant, "sec@example.com", &["security"]),
    ];
    for by in people {
        version = app.decide(&by, &created.id, approve()).await.expect("approve").change.version;
    }
    let to_day = |days: i64| t0() + Duration::days(days);
    let req = changehub::app::changes::RescheduleRequest {
        version,
        planned_start: to_day(9),
        planned_end: to_day(9) + Duration::hours(2),
        reason: "the vendor moved the maintenance".into(),
        override_reason: None,
    };
    // A window the approvers did not approve is moved by the cab, not the requester.
    let cab = fixtures::carol(&tenant);
    let moved = app.reschedule(&cab, &created.id, req).await.expect("reschedule");
    assert_eq!((moved.planned_start, moved.version), (to_day(9), version + 1));
    for service in ["payments", "ledger"] {
        let list = |from: i64, to: i64| ListRequest {
            service: Some(service.into()),
            from: Some(to_day(from)),
            to: Some(to_day(to)),
            ..ListRequest::default()
        };
        let old = app.list(&c, list(1, 3)).await.expect("list");
        assert!(old.items.iter().all(|x| x.id != created.id), "{service}: still listed in the old window");
        let new = app.list(&c, list(8, 10)).await.expect("list");
        let found: Vec<_> = new.items.iter().filter(|x| x.id == created.id).collect();
        assert_eq!(found.len(), 1, "{service}: listed once in the new window");
        assert_eq!(found[0].planned_end, to_day(9) + Duration::hours(2));
    }
    // The tenant's listing index moves with it.
    let tenant_wide = |from: i64, to: i64| ListRequest {
        from: Some(to_day(from)),
        to: Some(to_day(to)),
        state: Some(ChangeState::Approved),
        ..ListRequest::default()
    };
    assert!(app.list(&c, tenant_wide(1, 3)).await.expect("list").items.iter().all(|x| x.id != created.id));
    let listed = app.list(&c, tenant_wide(8, 10)).await.expect("list");
    assert_eq!(listed.items.iter().map(|x| x.id).collect::<Vec<_>>(), [created.id], "listed once, where it moved");
    // Only the end moves: the same index entries, with the new end.
    let longer = changehub::app::changes::RescheduleRequest {
        version: moved.version,
        planned_start: to_day(9),
        planned_end: to_day(9) + Duration::hours(4),
        reason: "more time".into(),
        override_reason: None,
    };
    app.reschedule(&cab, &created.id, longer).await.expect("reschedule the end");
    let query = ListRequest {
        service: Some("ledger".into()),
        from: Some(to_day(9) + Duration::hours(3)),
        to: Some(to_day(10)),
        ..ListRequest::default()
    };
    let found = app.list(&c, query).await.expect("list");
    assert_eq!(found.items.iter().map(|x| x.id).collect::<Vec<_>>(), [created.id], "found by its new end");
}

/// Each emergency submission adds one to its requester's and each owning
/// team's monthly emergency volume, in the submission's transaction; other
/// types and a refused submission count nothing.
pub async fn emergency_submissions_count_per_requester_and_team<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    for services in [&["payments", "ledger"][..], &["payments"][..]] {
        let mut emergency = new_change("hotfix", services, t0() + Duration::days(2), 1);
        emergency.change_type = ChangeType::Emergency;
        let e = app.create(&c, emergency).await.expect("create");
        app.transition(&c, &e.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    }
    let normal =
        app.create(&c, new_change("normal", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    app.transition(&c, &normal.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let key =
        |of| VolumeKey { tenant: c.tenant.clone(), month: "2026-12".into(), change_type: ChangeType::Emergency, of };
    let keys = [
        key(VolumeOf::Requester(c.user.clone())),
        key(VolumeOf::Team("payments-team".into())),
        key(VolumeOf::Team("ledger-team".into())),
        key(VolumeOf::Team("search-team".into())),
        VolumeKey { change_type: ChangeType::Normal, ..key(VolumeOf::Requester(c.user.clone())) },
        VolumeKey { month: "2026-11".into(), ..key(VolumeOf::Requester(c.user.clone())) },
    ];
    assert_eq!(app.store.volumes(&keys).await.expect("volumes"), [2, 2, 1, 0, 0, 0]);
}

/// The ids of the changes listed in the days `[from, to]` after t0: for
/// `service` from its index, or, with `state`, from the tenant's listing index.
async fn listed<S: ChangeStore>(
    app: &Changes<S, FixedClock>,
    c: &Caller,
    (service, state): (Option<&str>, Option<ChangeState>),
    from: i64,
    to: i64,
) -> Vec<changehub::domain::ChangeId> {
    let req = ListRequest {
        service: service.map(Into::into),
        state,
        from: Some(t0() + Duration::days(from)),
        to: Some(t0() + Duration::days(to)),
        ..ListRequest::default()
    };
    app.list(c, req).await.expect("list").items.into_iter().map(|x| x.id).collect()
}

/// The change's ids listed for `service` in the days `[from, to]` after t0.
async fn listed_on<S: ChangeStore>(
    app: &Changes<S, FixedClock>,
    c: &Caller,
    service: &str,
    from: i64,
    to: i64,
) -> Vec<changehub::domain::ChangeId> {
    listed(app, c, (Some(service), None), from, to).await
}

/// An edit that changes a draft's services and window moves its service
/// and listing index entries in the same write: gone from the services it left and
/// the old window, present once on the new ones; an edit of the end only
/// rewrites the entries with the new end.
pub async fn editing_a_draft_moves_the_service_index<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let draft =
        app.create(&c, new_change("x", &["payments", "ledger"], t0() + Duration::days(2), 1)).await.expect("create");
    let moved = serde_json::json!({"services": ["ledger", "search"], "planned_start": t0() + Duration::days(9),
        "planned_end": t0() + Duration::days(9) + Duration::hours(1)});
    let edited = app.edit(&c, &draft.id, fixtures::edit(1, moved)).await.expect("edit");
    assert_eq!(edited.version, 2);
    for service in ["payments", "ledger", "search"] {
        assert!(!listed_on(&app, &c, service, 1, 3).await.contains(&draft.id), "{service}: still in the old window");
    }
    assert!(!listed_on(&app, &c, "payments", 8, 10).await.contains(&draft.id), "payments: no longer named");
    for service in ["ledger", "search"] {
        assert_eq!(listed_on(&app, &c, service, 8, 10).await, [draft.id], "{service}: listed once in the new window");
    }
    // The tenant's listing index moves in the same write (a state filter reads it).
    let drafts = |service| (service, Some(ChangeState::Draft));
    assert!(!listed(&app, &c, drafts(None), 1, 3).await.contains(&draft.id), "the listing: still in the old window");
    assert_eq!(listed(&app, &c, drafts(None), 8, 10).await, [draft.id], "the listing: once in the new window");
    assert_eq!(listed(&app, &c, drafts(Some("search")), 8, 10).await, [draft.id], "the listing: new services");
    assert!(listed(&app, &c, drafts(Some("payments")), 8, 10).await.is_empty(), "the listing: old services");
    let longer = serde_json::json!({"planned_end": t0() + Duration::days(10)});
    let edited = app.edit(&c, &draft.id, fixtures::edit(2, longer)).await.expect("a longer window");
    assert_eq!(edited.planned_end, t0() + Duration::days(10));
    assert_eq!(listed_on(&app, &c, "search", 10, 10).await, [draft.id], "the entry carries the new end");
}

/// A rework writes the new draft and the rejected change's link in one
/// transaction: on a version conflict neither is written.
pub async fn a_rework_writes_both_changes_or_neither<S: ChangeStore>(store: S) {
    let app = Changes::new(store.clone(), FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = app.create(&c, new_change("x", &["search"], t0() + Duration::days(2), 1)).await.expect("create");
    let draft = new_change("y", &["search"], t0(), 1).validate().expect("valid").into_draft(
        changehub::domain::ChangeId::new(),
        c.tenant.clone(),
        c.user.clone(),
        t0(),
    );
    let (draft, entry) = audit::record(None, draft, &c.user, AuditAction::Created, None);
    let mut linked = created.revised(t0());
    linked.reworked_as = Some(draft.id);
    let (stale, stale_entry) = audit::record(Some(&created), linked.clone(), &c.user, AuditAction::Reworked, None);
    // Another write got in first: the linked change is no longer at version 1.
    app.transition(&c, &created.id, to(ChangeState::Cancelled, 1)).await.expect("cancel");
    let entries = [stale_entry];
    match store.insert_linked(&draft, &entry, plain_update(&created, &stale, &entries)).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(store.get_change(&c.tenant, &draft.id).await.expect("get"), None, "the draft was not written");

    let current = app.get(&c, &created.id).await.expect("get");
    let mut linked = current.revised(t0());
    linked.reworked_as = Some(draft.id);
    let (linked, linked_entry) = audit::record(Some(&current), linked, &c.user, AuditAction::Reworked, None);
    let entries = [linked_entry];
    store.insert_linked(&draft, &entry, plain_update(&current, &linked, &entries)).await.expect("both");
    assert_eq!(store.get_change(&c.tenant, &draft.id).await.expect("get"), Some(draft.clone()));
    assert_eq!(store.get_change(&c.tenant, &created.id).await.expect("get"), Some(linked.clone()));
    assert_eq!(store.audit_trail(&c.tenant, &created.id).await.expect("trail").len(), 3);
    assert!(store.change_ids(&c.tenant).await.expect("ids").contains(&draft.id));
    let drafts = (None, Some(ChangeState::Draft));
    assert_eq!(listed(&app, &c, drafts, 0, 0).await, [draft.id], "the new draft is in the tenant's listing");
    match store.insert_linked(&draft, &entry, plain_update(&current, &current, &[])).await {
        Err(StoreError::AlreadyExists) => {}
        other => panic!("expected AlreadyExists for the same draft again, got {other:?}"),
    }
}

/// The due index follows the record: approvals while submitted, reviews until done.
pub async fn due_index_follows_the_record<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let created = app.create(&c, new_change("x", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    let submitted = app.transition(&c, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let partition = DuePartition::approvals_of(&created.id);
    let plan = submitted.approval.as_ref().expect("a plan");
    assert_eq!(plan.due_at(), Some(t0() + Duration::hours(4)), "level 1's deadline");
    // The index holds the next step of the level's cadence: the reminder at half the SLA.
    let due_at = plan.next_nudge_at().expect("level 1 is chased");
    assert_eq!(due_at, t0() + Duration::hours(2));
    let ids =
        |page: changehub::ports::Page<changehub::domain::Change>| page.items.iter().map(|c| c.id).collect::<Vec<_>>();
    // GSI reads are eventually consistent on DynamoDB; moto answers at once.
    assert!(ids(app.store.due(&partition, due_at, 100, None).await.expect("due")).contains(&created.id));
    assert!(
        !ids(app.store.due(&partition, due_at - Duration::seconds(1), 100, None).await.expect("due"))
            .contains(&created.id)
    );
    app.decide(&fixtures::pat(&tenant), &created.id, approve()).await.expect("level 1");
    let later = t0() + Duration::days(1);
    let page = app.store.due(&partition, later, 100, None).await.expect("due");
    let current = page.items.iter().find(|c| c.id == created.id).expect("level 2 is due");
    assert_eq!(current.approval.as_ref().and_then(|p| p.due_at()), Some(later));
    app.decide(&fixtures::carol(&tenant), &created.id, approve()).await.expect("level 2");
    assert!(!ids(app.store.due(&partition, later, 100, None).await.expect("due")).contains(&created.id));

    let mut emergency = new_change("hotfix", &["payments"], t0(), 1);
    emergency.change_type = ChangeType::Emergency;
    let e = app.create(&c, emergency).await.expect("create");
    app.transition(&c, &e.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    app.decide(&fixtures::carol(&tenant), &e.id, approve()).await.expect("the cab approves the emergency");
    let reviews = DuePartition::Reviews { tenant: c.tenant.clone() };
    assert_eq!(ids(app.store.due(&reviews, t0() + Duration::days(30), 10, None).await.expect("due")), [e.id]);
}

const LEASE: StdDuration = StdDuration::from_secs(30);
const TTL: StdDuration = StdDuration::from_secs(3600);

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|_| crate::unique("delivery")).collect()
}

pub async fn dedupe_claims_once_until_expiry<S: Dedupe>(store: S) {
    let key = keys(1);
    assert_eq!(store.claim(&key, "me", t0(), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(store.claim(&key, "me", t0() + Duration::seconds(10), LEASE).await.expect("claim"), Claim::InProgress);
    store.complete(&key, t0() + Duration::seconds(10), TTL).await.expect("complete");
    // Done: a duplicate for the TTL, long after the lease would have run out.
    assert_eq!(store.claim(&key, "me", t0() + Duration::minutes(59), LEASE).await.expect("claim"), Claim::Duplicate);
    // Expired claims are taken over, even before TTL deletion removes them.
    assert_eq!(store.claim(&key, "me", t0() + Duration::minutes(61), LEASE).await.expect("claim"), Claim::New);
    store.complete(&key, t0() + Duration::minutes(61), TTL).await.expect("complete");
    // Releasing a done key keeps it: only leases are given back.
    store.release(&key, "me").await.expect("release");
    assert_eq!(store.claim(&key, "me", t0() + Duration::minutes(62), LEASE).await.expect("claim"), Claim::Duplicate);
    // Keys are independent.
    assert_eq!(store.claim(&keys(1), "me", t0(), LEASE).await.expect("claim"), Claim::New);
}

/// A worker that dies (or times out) mid-publish never completes nor
/// releases its claim: the lease runs out and the sender's retry is processed.
pub async fn an_expired_lease_is_claimed_again<S: Dedupe>(store: S) {
    let key = keys(1);
    assert_eq!(store.claim(&key, "me", t0(), LEASE).await.expect("claim"), Claim::New);
    assert_eq!(store.claim(&key, "me", t0() + Duration::seconds(29), LEASE).await.expect("claim"), Claim::InProgress);
    assert_eq!(store.claim(&key, "me", t0() + Duration::seconds(31), LEASE).await.expect("claim"), Claim::New);
}

pub async fn a_released_lease_can_be_claimed_at_once<S: Dedupe>(store: S) {
    let key = keys(2);
    assert_eq!(store.claim(&key, "me", t0(), LEASE).await.expect("claim"), Claim::New);
    store.release(&key, "me").await.expect("release");
    assert_eq!(store.claim(&key, "me", t0() + Duration::seconds(1), LEASE).await.expect("claim"), Claim::New);
}

/// An attempt that outlived its lease and then fails gives back nothing: the
/// attempt that took the keys over keeps them, so no third one starts.
pub async fn a_release_never_takes_another_attempts_lease<S: Dedupe>(store: S) {
    let key = keys(2);
    assert_eq!(store.claim(&key, "slow", t0(), LEASE).await.expect("claim"), Claim::New);
    let later = t0() + Duration::seconds(31);
    assert_eq!(store.claim(&key, "retry", later, LEASE).await.expect("claim"), Claim::New);
    store.release(&key, "slow").await.expect("release");
    assert_eq!(store.claim(&key, "third", later, LEASE).await.expect("claim"), Claim::InProgress);
    store.release(&key, "retry").await.expect("release");
    assert_eq!(store.claim(&key, "third", later, LEASE).await.expect("claim"), Claim::New);
}

/// Several keys are claimed together or not at all; a done key makes the
/// claim a duplicate, a leased one an in-progress.
pub async fn a_claim_takes_every_key_or_none<S: Dedupe>(store: S) {
    let [done, leased, fresh]: [Vec<String>; 3] = [keys(1), keys(1), keys(1)];
    assert_eq!(store.claim(&done, "me", t0(), LEASE).await.expect("claim"), Claim::New);
    store.complete(&done, t0(), TTL).await.expect("complete");
    assert_eq!(store.claim(&leased, "me", t0(), LEASE).await.expect("claim"), Claim::New);

    let with_done = [fresh.clone(), done.clone()].concat();
    assert_eq!(store.claim(&with_done, "me", t0(), LEASE).await.expect("claim"), Claim::Duplicate);
    let with_both = [fresh.clone(), leased.clone(), done].concat();
    assert_eq!(store.claim(&with_both, "me", t0(), LEASE).await.expect("claim"), Claim::Duplicate);
    let with_leased = [fresh.clone(), leased].concat();
    assert_eq!(store.claim(&with_leased, "me", t0(), LEASE).await.expect("claim"), Claim::InProgress);
    // The refused claims wrote nothing: the fresh key is still free.
    assert_eq!(store.claim(&fresh, "me", t0(), LEASE).await.expect("claim"), Claim::New);
}

/// Concurrent redeliveries of one delivery: exactly one claim wins.
pub async fn concurrent_claims_have_one_winner<S: Dedupe + Clone + 'static>(store: S) {
    let key = keys(3);
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, key) = (store.clone(), key.clone());
        racers.spawn(async move { store.claim(&key, "me", t0(), LEASE).await });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = racers.join_next().await {
        outcomes.push(done.expect("join").expect("claim"));
    }
    assert_eq!(outcomes.iter().filter(|c| **c == Claim::New).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|c| matches!(c, Claim::New | Claim::InProgress)), "{outcomes:?}");
}

/// Raw query check: a window query with no match is empty, not an error.
pub async fn empty_service_window_is_empty<S: ChangeReader>(store: S) {
    let q = ServiceWindowQuery {
        tenant: TenantId::parse("acme").expect("tenant"),
        service: service("nothing-here"),
        from: t0(),
        to: t0() + Duration::hours(1),
        limit: 10,
        after: None,
    };
    let page = store.changes_for_service(&q).await.expect("query");
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
}

/// A well-formed cursor the store could not have issued for the query is
/// refused as such, for service windows and the reviews-due partition.
pub async fn foreign_cursors_are_refused<S: ChangeReader + DueIndex>(store: S) {
    let tenant = TenantId::parse("acme").expect("tenant");
    let bogus = Cursor::parse("bogus").expect("a well-formed token");
    let q = ServiceWindowQuery {
        tenant: tenant.clone(),
        service: service("payments"),
        from: t0(),
        to: t0() + Duration::hours(1),
        limit: 10,
        after: Some(bogus.clone()),
    };
    match store.changes_for_service(&q).await {
        Err(StoreError::InvalidCursor(_)) => {}
        other => panic!("a service window refuses a foreign cursor, got {other:?}"),
    }
    let reviews = DuePartition::Reviews { tenant };
    match store.due(&reviews, t0(), 10, Some(bogus)).await {
        Err(StoreError::InvalidCursor(_)) => {}
        other => panic!("the reviews-due partition refuses a foreign cursor, got {other:?}"),
    }
}

fn titles(page: &changehub::ports::Page<changehub::domain::Change>) -> Vec<&str> {
    page.items.iter().map(|c| c.title.as_str()).collect()
}

/// Every page of a tenant-wide query, followed to its end: the titles.
async fn all_pages<S: ChangeStore>(store: &S, mut query: ChangeQuery) -> (Vec<String>, usize) {
    let (mut found, mut pages) = (Vec::new(), 0);
    loop {
        let page = store.list_changes(&query).await.expect("list");
        pages += 1;
        found.extend(page.items.iter().map(|c| c.title.clone()));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return (found, pages),
        }
        assert!(pages < 20, "paging does not end");
    }
}

/// The tenant-wide listing: every change whose window overlaps the range,
/// by planned start, filtered by state, type, requester and service (which
/// the listing index holds, kept in the write that changes them); pages
/// resume at their cursor, and a filtered page that read its share of the
/// index comes back short (even empty) with a cursor.
pub async fn lists_a_tenants_changes_filtered<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let (c, bob) = (caller(&tenant), fixtures::who(&tenant, "bob@example.com", &["engineers"]));
    let h = Duration::hours;
    app.create(&c, new_change("a", &["payments"], t0() + h(1), 1)).await.expect("create");
    app.create(&bob, new_change("b", &["ledger"], t0() + h(2), 1)).await.expect("create");
    let mut emergency = new_change("e", &["search"], t0() + h(3), 1);
    emergency.change_type = ChangeType::Emergency;
    app.create(&c, emergency).await.expect("create");
    let d = app.create(&c, new_change("d", &["payments", "ledger"], t0() + h(4), 1)).await.expect("create");
    app.transition(&c, &d.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    app.create(&c, new_change("far", &["payments"], t0() + Duration::days(60), 1)).await.expect("create");
    let other = seeded(&app).await;
    app.create(&caller(&other), new_change("other tenant", &["payments"], t0(), 1)).await.expect("create");

    let list = |who: &changehub::app::Caller, req: ListRequest| {
        let (app, who) = (&app, who.clone());
        async move { app.list(&who, req).await.expect("list") }
    };
    let all = list(&c, ListRequest::default()).await;
    assert_eq!((titles(&all), all.next.is_none()), (vec!["a", "b", "e", "d"], true), "the default window");
    let filtered = |f: fn(&mut ListRequest)| {
        let mut req = ListRequest::default();
        f(&mut req);
        req
    };
    let submitted = list(&c, filtered(|r| r.state = Some(ChangeState::Submitted))).await;
    assert_eq!(titles(&submitted), ["d"]);
    let emergencies = list(&c, filtered(|r| r.change_type = Some(ChangeType::Emergency))).await;
    assert_eq!(titles(&emergencies), ["e"]);
    assert_eq!(titles(&list(&bob, filtered(|r| r.requester = Some("me".into()))).await), ["b"]);
    let alices = list(&bob, filtered(|r| r.requester = Some("alice@example.com".into()))).await;
    assert_eq!(titles(&alices), ["a", "e", "d"]);
    let ledger_drafts = filtered(|r| (r.service, r.state) = (Some("ledger".into()), Some(ChangeState::Draft)));
    assert_eq!(titles(&list(&c, ledger_drafts).await), ["b"]);
    assert_eq!(titles(&list(&c, filtered(|r| r.service = Some("ledger".into()))).await), ["b", "d"]);
    let later = ListRequest { to: Some(t0() + Duration::days(90)), ..ListRequest::default() };
    assert_eq!(titles(&list(&c, later).await), ["a", "b", "e", "d", "far"]);

    // Pages of two, then the rest.
    let first = list(&c, ListRequest { limit: Some(2), ..ListRequest::default() }).await;
    assert_eq!(titles(&first), ["a", "b"]);
    let cursor = first.next.clone().map(String::from);
    let second = list(&c, ListRequest { limit: Some(2), cursor, ..ListRequest::default() }).await;
    assert_eq!((titles(&second), second.next.clone()), (vec!["e", "d"], None));

    // Two index entries read per call: the submitted one is found on a later page; the first is empty.
    let query = ChangeQuery {
        tenant: c.tenant.clone(),
        from: t0(),
        to: t0() + Duration::days(1),
        filter: ChangeFilter { state: Some(ChangeState::Submitted), ..ChangeFilter::default() },
        limit: 10,
        evaluate: 2,
        after: None,
    };
    let page = app.store.list_changes(&query).await.expect("list");
    assert!(page.items.is_empty() && page.next.is_some(), "a short page with a cursor: {page:?}");
    let (found, pages) = all_pages(&app.store, query).await;
    assert_eq!(found, ["d"]);
    assert!(pages >= 2, "{pages} pages");

    // The index follows the record: cancelled, it leaves the submitted list.
    app.transition(&c, &d.id, to(ChangeState::Cancelled, 2)).await.expect("cancel");
    assert!(list(&c, filtered(|r| r.state = Some(ChangeState::Submitted))).await.items.is_empty());
    let cancelled = list(&c, filtered(|r| r.state = Some(ChangeState::Cancelled))).await;
    assert_eq!((titles(&cancelled), cancelled.items[0].version), (vec!["d"], 3), "the current record");
}

/// "Waiting for my decision": each change is listed for the groups (and
/// people) its current approval level waits for, moves with the levels, and
/// leaves once decided; dual control is applied (not one's own change, not a
/// level after one approved), peer reviews wait for anyone else, a change
/// waiting for two of one's groups is listed once, earliest due first.
pub async fn waiting_index_follows_the_approval_levels<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let (pat, carol) = (fixtures::pat(&tenant), fixtures::carol(&tenant));
    let lee = fixtures::who(&tenant, "lee@example.com", &["ledger-leads"]);
    let sam = fixtures::who(&tenant, "sam@example.com", &["payments-leads", "cab"]);
    let both = fixtures::who(&tenant, "sec@example.com", &["security", "cab", "visitors"]);
    let bob = fixtures::who(&tenant, "bob@example.com", &["engineers"]);
    let later = t0() + Duration::days(2);
    let x = app.create(&c, new_change("x", &["payments"], later, 1)).await.expect("create");
    let y = app.create(&c, new_change("y", &["ledger"], later, 1)).await.expect("create");
    for id in [x.id, y.id] {
        app.transition(&c, &id, to(ChangeState::Submitted, 1)).await.expect("submit");
    }
    let mine = |who: &changehub::app::Caller, limit: usize, cursor: Option<String>| {
        let (app, who) = (&app, who.clone());
        let req = ListRequest { approver: Some("me".into()), limit: Some(limit), cursor, ..ListRequest::default() };
        async move { app.list(&who, req).await.expect("waiting for me") }
    };
    assert_eq!(titles(&mine(&pat, 10, None).await), ["x"]);
    assert_eq!(titles(&mine(&lee, 10, None).await), ["y"]);
    assert!(mine(&carol, 10, None).await.items.is_empty(), "level 2 is not open yet");
    assert!(mine(&c, 10, None).await.items.is_empty(), "nobody waits for the requester");

    app.decide(&sam, &x.id, approve()).await.expect("level 1 of x");
    app.decide(&lee, &y.id, approve()).await.expect("level 1 of y");
    assert!(mine(&pat, 10, None).await.items.is_empty(), "x moved on to level 2");
    // In the index itself, not only after the decision rules: level 1's entries are gone.
    let raw = |who: Vec<Awaiting>| WaitingQuery { tenant: c.tenant.clone(), who, limit: 10, after: None };
    let leads = vec![Awaiting::Group("payments-leads".into()), Awaiting::Group("ledger-leads".into())];
    assert!(app.store.waiting_for(&raw(leads)).await.expect("raw").items.is_empty(), "stale entries");
    let cab = app.store.waiting_for(&raw(vec![Awaiting::Group("cab".into())])).await.expect("raw");
    assert_eq!(titles(&cab), ["x", "y"]);
    assert_eq!(titles(&mine(&carol, 10, None).await), ["x", "y"]);
    let sams = mine(&sam, 10, None).await;
    assert_eq!(titles(&sams), ["y"], "sam approved x's level 1: its level 2 needs someone else");
    let twice = mine(&both, 10, None).await;
    assert_eq!(titles(&twice), ["x", "y"], "y waits for security and cab: listed once");

    // An emergency waits for the cab within the hour: first.
    let mut hotfix = new_change("z", &["search"], later, 1);
    hotfix.change_type = ChangeType::Emergency;
    let z = app.create(&c, hotfix).await.expect("create");
    app.transition(&c, &z.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let first = mine(&carol, 1, None).await;
    assert_eq!(titles(&first), ["z"]);
    let second = mine(&carol, 1, first.next.map(String::from)).await;
    assert_eq!(titles(&second), ["x"]);
    let third = mine(&carol, 1, second.next.map(String::from)).await;
    assert_eq!((titles(&third), third.next.clone()), (vec!["y"], None));
    let filtered =
        ListRequest { approver: Some("me".into()), service: Some("ledger".into()), ..ListRequest::default() };
    assert_eq!(titles(&app.list(&carol, filtered).await.expect("filtered")), ["y"]);
    app.decide(&carol, &z.id, approve()).await.expect("the emergency");
    assert_eq!(titles(&mine(&carol, 10, None).await), ["x", "y"], "decided: no longer waiting");

    // A peer review waits for anyone but the requester.
    let mut privileged = new_change("p", &["payments"], later, 1);
    privileged.privileged_access = true;
    let p = app.create(&c, privileged).await.expect("create");
    app.transition(&c, &p.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(titles(&mine(&bob, 10, None).await), ["p"]);
    assert!(mine(&c, 10, None).await.items.is_empty(), "not her own");
    let bogus = ListRequest { approver: Some("me".into()), cursor: Some("CHG#x".into()), ..ListRequest::default() };
    assert!(matches!(app.list(&bob, bogus).await, Err(ChangeError::Invalid(f)) if f.field == "cursor"));
    let someone = ListRequest { approver: Some("pat@example.com".into()), ..ListRequest::default() };
    assert!(matches!(app.list(&bob, someone).await, Err(ChangeError::Invalid(f)) if f.field == "approver"));
}

/// Refusals collapse per caller, action and minute (one event, counted),
/// read newest first within the range asked for, a page at a time, each
/// tenant its own.
pub async fn security_events_collapse_repeats_per_caller_and_minute<S: ChangeStore>(store: S) {
    use changehub::ports::{Refusal, SecurityQuery};
    let tenant = TenantId::parse(&crate::unique("sec")).expect("tenant");
    let ttl = changehub::ports::SECURITY_EVENT_TTL;
    let refusal = |user: &str, action: &str, seconds: i64| Refusal {
        tenant: tenant.clone(),
        user: user.into(),
        action: action.into(),
        target: format!("/target/{seconds}"),
        reason: format!("no ({seconds})"),
        at: t0() + Duration::seconds(seconds),
    };
    for (user, action, at) in [
        ("mallory", "POST /catalog", 0),
        ("mallory", "POST /catalog", 10),
        ("eve", "POST /changes/{id}/decisions", 20),
        ("mallory", "POST /catalog", 50),
        ("mallory", "POST /catalog", 61),
    ] {
        store.record_refusal(&refusal(user, action, at), ttl).await.expect("record");
    }
    let mut elsewhere = refusal("mallory", "POST /catalog", 0);
    elsewhere.tenant = TenantId::parse(&crate::unique("sec")).expect("tenant");
    store.record_refusal(&elsewhere, ttl).await.expect("record");

    let query = |limit, after| SecurityQuery {
        tenant: tenant.clone(),
        since: t0() - Duration::hours(1),
        until: t0() + Duration::hours(1),
        limit,
        after,
    };
    let page = store.security_events(&query(10, None)).await.expect("events");
    let seen: Vec<(&str, u64)> = page.items.iter().map(|e| (e.user.as_str(), e.count)).collect();
    assert_eq!(seen, [("mallory", 1), ("eve", 1), ("mallory", 3)], "newest minute first");
    let collapsed = &page.items[2];
    assert_eq!((collapsed.first_at, collapsed.last_at), (t0(), t0() + Duration::seconds(50)));
    assert_eq!((collapsed.target.as_str(), collapsed.reason.as_str()), ("/target/50", "no (50)"), "the latest");
    assert_eq!(page.next, None);
    let first = store.security_events(&query(2, None)).await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let rest = store.security_events(&query(2, first.next.clone())).await.expect("page 2");
    assert_eq!((rest.items.len(), rest.next), (1, None));
    assert_eq!(rest.items[0].count, 3);
    let recent = SecurityQuery { since: t0() + Duration::seconds(60), ..query(10, None) };
    assert_eq!(store.security_events(&recent).await.expect("recent").items.len(), 1);
    let bogus = Cursor::parse("CHG#x").expect("well formed");
    assert!(matches!(store.security_events(&query(2, Some(bogus))).await, Err(StoreError::InvalidCursor(_))));
}

/// Every governance write (catalog import, freeze declared and lifted,
/// incident declared and resolved) is an entry of the tenant's governance
/// trail: who, what, why; chained from the first import, readable by
/// auditors, admins and the cab; the freeze list says who declared each
/// window and the latest lifts with their reasons.
pub async fn governance_writes_are_chained_on_the_tenants_trail<S: ChangeStore>(store: S) {
    use changehub::app::governance::{DeclareIncident, FreezeAction, LiftFreeze};
    use changehub::domain::freeze::{FreezeWindow, Schedule};
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let (carol, root) = (fixtures::carol(&tenant), fixtures::root(&tenant));
    let auditor = fixtures::who(&tenant, "ava@example.com", &["audit"]);
    let window = FreezeWindow {
        id: "dec-close".into(),
        name: "December close".into(),
        services: vec![service("payments")],
        schedule: Schedule::OneOff { start: t0(), end: t0() + Duration::days(2) },
        reason: "month-end".into(),
    };
    app.governance().put_freeze(&carol, window.clone()).await.expect("declare");
    let incident = DeclareIncident {
        id: "INC-1".into(),
        title: "Latency".into(),
        services: vec![service("payments")],
        commander: "ivy@example.com".into(),
    };
    app.governance().declare_incident(&carol, incident).await.expect("declare");
    app.governance().resolve_incident(&root, "INC-1").await.expect("resolve");
    let lift = LiftFreeze { reason: "the close is done".into() };
    app.governance().delete_freeze(&carol, "dec-close", lift).await.expect("lift");
    let empty = LiftFreeze { reason: " ".into() };
    assert!(matches!(app.governance().delete_freeze(&carol, "dec-close", empty).await, Err(ChangeError::Invalid(_))));
    app.catalog.replace(&root, fixtures::catalog(), None, &app.clock).await.expect("import again");

    let trail = app.governance().trail(&auditor, Some(100), None).await.expect("trail");
    let steps: Vec<(AuditAction, &str, u64)> =
        trail.items.iter().map(|e| (e.action, e.actor.as_str(), e.seq)).collect();
    use AuditAction::*;
    assert_eq!(
        steps,
        [
            (CatalogImported, "root@example.com", 1),
            (FreezeDeclared, "carol@example.com", 2),
            (IncidentDeclared, "carol@example.com", 3),
            (IncidentResolved, "root@example.com", 4),
            (FreezeLifted, "carol@example.com", 5),
            (CatalogImported, "root@example.com", 6),
        ]
    );
    let change = |i: usize, field: &str| trail.items[i].changes.iter().find(|f| f.field == field).cloned();
    let version = change(5, "catalog.version").expect("the version imported");
    assert_eq!((version.before, version.after), (serde_json::json!(1), serde_json::json!(2)));
    assert!(change(5, "catalog.sha256").is_some_and(|f| f.after.as_str().is_some_and(|h| h.len() == 64)));
    assert_eq!(change(1, "freezes.dec-close").map(|f| f.after["name"].clone()), Some("December close".into()));
    assert_eq!(trail.items[4].reason.as_deref(), Some("the close is done"));
    let head = app.store.trail_head(&TenantId::parse(&tenant).expect("tenant")).await.expect("head").expect("a trail");
    changehub::domain::audit::verify_trail(&head, &trail.items).expect("the trail verifies");
    let page = app.governance().trail(&carol, Some(4), None).await.expect("the cab reads it too");
    assert_eq!((page.items.len(), page.next.is_some()), (4, true));
    let denied = app.governance().trail(&caller(&tenant), None, None).await;
    assert!(matches!(denied, Err(ChangeError::Forbidden(_))), "a requester does not read it");

    let freezes = app.governance().freezes(&caller(&tenant)).await.expect("freezes");
    assert!(freezes.windows.is_empty() && freezes.declared.is_empty());
    let log: Vec<(FreezeAction, &str, Option<&str>)> =
        freezes.log.iter().map(|e| (e.action, e.by.as_str(), e.reason.as_deref())).collect();
    assert_eq!(
        log,
        [
            (FreezeAction::Declared, "carol@example.com", None),
            (FreezeAction::Lifted, "carol@example.com", Some("the close is done"))
        ]
    );
}

/// A change on payments planned at t0 for two hours, submitted and approved.
async fn approved_change<S: ChangeStore>(app: &Changes<S, FixedClock>, tenant: &str, title: &str) -> Change {
    let created = app.create(&caller(tenant), new_change(title, &["payments"], t0(), 2)).await.expect("create");
    submit_and_approve(app, tenant, &created.id).await
}

/// The plannable index holds a service's changes while their plan alone may
/// authorize what happens in their window (approved or scheduled), and none
/// of the others: drafts, those implementing or done, cancelled ones.
pub async fn the_plannable_index_holds_what_a_plan_may_still_authorize<S: ChangeStore + ImplementationReader>(
    store: S,
) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    app.create(&c, new_change("draft", &["payments"], t0(), 2)).await.expect("draft");
    approved_change(&app, &tenant, "approved").await;
    let scheduled = approved_change(&app, &tenant, "scheduled").await;
    app.transition(&c, &scheduled.id, to(ChangeState::Scheduled, scheduled.version)).await.expect("schedule");
    let started = approved_change(&app, &tenant, "started").await;
    let started = app.transition(&c, &started.id, to(ChangeState::Scheduled, started.version)).await.expect("schedule");
    app.transition(&c, &started.id, to(ChangeState::Implementing, started.version)).await.expect("implement");
    let cancelled = approved_change(&app, &tenant, "cancelled").await;
    let cancel = changehub::app::TransitionRequest {
        reason: Some("not needed".into()),
        ..to(ChangeState::Cancelled, cancelled.version)
    };
    app.transition(&c, &cancelled.id, cancel).await.expect("cancel");
    let window = |service_name: &str, from: i64, to: i64| ServiceWindowQuery {
        tenant: TenantId::parse(&tenant).expect("tenant"),
        service: service(service_name),
        from: t0() + Duration::minutes(from),
        to: t0() + Duration::minutes(to),
        limit: 10,
        after: None,
    };
    let page = app.store.plannable(&window("payments", 30, 60)).await.expect("plannable");
    let mut found = titles(&page);
    found.sort();
    assert_eq!(found, ["approved", "scheduled"]);
    assert_eq!(page.next, None);
    let later = app.store.plannable(&window("payments", 180, 240)).await.expect("later");
    assert!(later.items.is_empty(), "outside their windows: {:?}", titles(&later));
    assert!(app.store.plannable(&window("ledger", 30, 60)).await.expect("ledger").items.is_empty());
}
