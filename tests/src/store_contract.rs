//! The store contract: every case runs against the embedded and the DynamoDB store.

use changehub::app::changes::ChangeStore;
use changehub::app::{Caller, ChangeError, Changes, ListRequest};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::{AuditEntry, Change, ChangeState, ChangeType, TenantId};
use changehub::ports::{
    Bump, ChangeReader, ChangeUpdate, Claim, CounterKey, Counts, Cursor, Dedupe, DocKind, DueIndex, DuePartition,
    FixedClock, ServiceWindowQuery, StoreError, StoredDoc, VolumeKey, VolumeOf,
};
use chrono::Duration;
use std::time::Duration as StdDuration;

use crate::fixtures::{self, approve, seed, submit_and_approve, to};
use crate::{new_change, t0};

/// An update of `change` that appends `entries` and nothing else.
pub fn plain_update<'a>(change: &'a Change, entries: &'a [AuditEntry]) -> ChangeUpdate<'a> {
    ChangeUpdate { change, entries, bumps: &[], volumes: &[], moved_from: None, services_before: None }
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
    app.store.update_change(plain_update(&submitted, std::slice::from_ref(&entry))).await.expect("first update");
    // A second writer that read version 1 too.
    let cancelled = created.transition(ChangeState::Cancelled, t0()).expect("legal");
    let (cancelled, entry) = audit::record(Some(&created), cancelled, "bob", AuditAction::Transitioned, None);
    match app.store.update_change(plain_update(&cancelled, std::slice::from_ref(&entry))).await {
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
    match app.store.update_change(plain_update(&next, std::slice::from_ref(&entry))).await {
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

/// A standard change is submitted and approved in one write: two entries, chained.
pub async fn one_update_appends_several_entries<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = seeded(&app).await;
    let c = caller(&tenant);
    let mut input = new_change("Rotate the payments certificate", &["payments"], t0(), 1);
    input.change_type = ChangeType::Standard;
    input.template = Some("rotate-tls-cert".into());
    input.category = Some("certificate".into());
    let created = app.create(&c, input).await.expect("create");
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
    let mut input = new_change("Rotate the payments certificate", &["payments"], t0(), 1);
    input.change_type = ChangeType::Standard;
    input.template = Some("rotate-tls-cert".into());
    input.category = Some("certificate".into());
    let created = app.create(&c, input).await.expect("create");
    app.transition(&c, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let seqs = |entries: Vec<changehub::domain::AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let read = |range| app.store.audit_entries(&c.tenant, &created.id, range);
    assert_eq!(seqs(read(2..=3).await.expect("the submit's entries")), [2, 3]);
    assert_eq!(seqs(read(1..=1).await.expect("the creation's entry")), [1]);
    assert_eq!(seqs(read(4..=9).await.expect("none yet")), Vec::<u64>::new());
    let trail = app.audit(&c, &created.id).await.expect("trail");
    assert_eq!(read(1..=3).await.expect("all"), trail, "the same entries as the whole trail");
}

/// Tenant documents: created at version 1, replaced only from the version read.
pub async fn tenant_documents_are_replaced_conditionally<S: ChangeStore>(store: S) {
    let tenant = TenantId::parse(&crate::unique("docs")).expect("tenant");
    let doc = |version, body| StoredDoc { version, updated_at: t0(), updated_by: "root".into(), body };
    assert_eq!(store.get_doc(&tenant, DocKind::Freezes).await.expect("get"), None);
    store.put_doc(&tenant, DocKind::Freezes, &doc(1, serde_json::json!({"windows": []}))).await.expect("v1");
    match store.put_doc(&tenant, DocKind::Freezes, &doc(1, serde_json::json!({"again": true}))).await {
        Err(StoreError::VersionConflict { expected: 0 }) => {}
        other => panic!("expected a conflict creating version 1 twice, got {other:?}"),
    }
    store.put_doc(&tenant, DocKind::Freezes, &doc(2, serde_json::json!({"windows": [1]}))).await.expect("v2");
    match store.put_doc(&tenant, DocKind::Freezes, &doc(2, serde_json::json!({}))).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected a conflict from a stale writer, got {other:?}"),
    }
    let current = store.get_doc(&tenant, DocKind::Freezes).await.expect("get").expect("stored");
    assert_eq!((current.version, current.body), (2, serde_json::json!({"windows": [1]})));
    assert_eq!(store.get_doc(&tenant, DocKind::Catalog).await.expect("get"), None, "kinds are separate");
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
    let raw = Bump { key: key("ledger"), failed: true };
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

/// The change's ids listed for `service` in the days `[from, to]` after t0.
async fn listed_on<S: ChangeStore>(
    app: &Changes<S, FixedClock>,
    c: &Caller,
    service: &str,
    from: i64,
    to: i64,
) -> Vec<changehub::domain::ChangeId> {
    let req = ListRequest {
        service: Some(service.into()),
        from: Some(t0() + Duration::days(from)),
        to: Some(t0() + Duration::days(to)),
        ..ListRequest::default()
    };
    app.list(c, req).await.expect("list").items.into_iter().map(|x| x.id).collect()
}

/// An edit that changes a draft's services and window moves its service
/// index entries in the same write: gone from the services it left and
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
    match store.insert_linked(&draft, &entry, plain_update(&stale, &entries)).await {
        Err(StoreError::VersionConflict { expected: 1 }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(store.get_change(&c.tenant, &draft.id).await.expect("get"), None, "the draft was not written");

    let current = app.get(&c, &created.id).await.expect("get");
    let mut linked = current.revised(t0());
    linked.reworked_as = Some(draft.id);
    let (linked, linked_entry) = audit::record(Some(&current), linked, &c.user, AuditAction::Reworked, None);
    let entries = [linked_entry];
    store.insert_linked(&draft, &entry, plain_update(&linked, &entries)).await.expect("both");
    assert_eq!(store.get_change(&c.tenant, &draft.id).await.expect("get"), Some(draft.clone()));
    assert_eq!(store.get_change(&c.tenant, &created.id).await.expect("get"), Some(linked.clone()));
    assert_eq!(store.audit_trail(&c.tenant, &created.id).await.expect("trail").len(), 3);
    assert!(store.change_ids(&c.tenant).await.expect("ids").contains(&draft.id));
    match store.insert_linked(&draft, &entry, plain_update(&current, &[])).await {
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
    let due_at = submitted.approval.as_ref().and_then(|p| p.due_at()).expect("level 1 has a deadline");
    assert_eq!(due_at, t0() + Duration::hours(4));
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
