//! The store contract: every case runs against the embedded and the DynamoDB store.

use changehub::app::{Caller, ChangeError, Changes, ListRequest, TransitionRequest};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::{ChangeState, TenantId};
use changehub::ports::{ChangeReader, ChangeWriter, Claim, Dedupe, FixedClock, ServiceWindowQuery, StoreError};
use chrono::Duration;
use std::time::Duration as StdDuration;

use crate::{new_change, t0};

fn caller(tenant: &str) -> Caller {
    Caller { tenant: TenantId::parse(tenant).expect("tenant"), user: "alice@example.com".into() }
}

fn service(s: &str) -> changehub::domain::ServiceName {
    changehub::domain::ServiceName::parse(s).expect("service")
}

pub async fn create_then_get<S: ChangeReader + ChangeWriter>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let c = caller("acme");
    let created =
        app.create(&c, new_change("Upgrade payments DB", &["payments", "ledger"], t0(), 1)).await.expect("create");
    assert_eq!(created.state, ChangeState::Draft);
    assert_eq!(created.version, 1);
    let got = app.get(&c, &created.id).await.expect("get");
    assert_eq!(got, created);
    // Another tenant cannot see it.
    match app.get(&caller("other"), &created.id).await {
        Err(ChangeError::NotFound(_)) => {}
        other => panic!("expected NotFound for another tenant, got {other:?}"),
    }
}

pub async fn insert_refuses_an_existing_id<S: ChangeReader + ChangeWriter>(store: S) {
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

pub async fn lists_changes_touching_a_service_in_a_time_range<S: ChangeReader + ChangeWriter>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let c = caller("acme");
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
    app.create(&caller("other"), new_change("other tenant", &["payments"], t0(), 1)).await.expect("create");

    let list = |from, to, limit, cursor| ListRequest {
        service: Some("payments".into()),
        from: Some(from),
        to: Some(to),
        limit: Some(limit),
        cursor,
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
    let moved = app
        .transition(&c, &inside.id, TransitionRequest { to: ChangeState::Submitted, version: 1, reason: None })
        .await
        .expect("transition");
    let again = app.list(&c, list(t0() + h(2), t0() + h(2), 10, None)).await.expect("list");
    assert!(again.items.contains(&moved), "listed record is the current version");
}

pub async fn stale_version_update_is_a_conflict<S: ChangeReader + ChangeWriter>(store: S) {
    let c = caller("acme");
    let app = Changes::new(store, FixedClock::new(t0()));
    let created = app.create(&c, new_change("x", &["payments"], t0(), 1)).await.expect("create");
    let submitted = created.transition(ChangeState::Submitted, t0()).expect("legal");
    let (submitted, entry) = audit::record(Some(&created), submitted, &c.user, AuditAction::Transitioned, None);
    app.store.update_change(&submitted, &entry).await.expect("first update");
    // A second writer that read version 1 too.
    let cancelled = created.transition(ChangeState::Cancelled, t0()).expect("legal");
    let (cancelled, entry) = audit::record(Some(&created), cancelled, "bob", AuditAction::Transitioned, None);
    match app.store.update_change(&cancelled, &entry).await {
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
    match app.store.update_change(&next, &entry).await {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub async fn audit_entries_append_and_read_in_order<S: ChangeReader + ChangeWriter>(store: S) {
    let c = caller("acme");
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, clock);
    let created = app.create(&c, new_change("x", &["payments"], t0(), 1)).await.expect("create");
    let mut version = created.version;
    for (i, to) in [ChangeState::Submitted, ChangeState::Approved, ChangeState::Scheduled].into_iter().enumerate() {
        app.clock.set(t0() + Duration::minutes(i as i64 + 1));
        let req = TransitionRequest { to, version, reason: Some(format!("step {i}")) };
        version = app.transition(&c, &created.id, req).await.expect("transition").version;
    }
    let trail = app.audit(&c, &created.id).await.expect("audit");
    assert_eq!(trail.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(trail[0].action, AuditAction::Created);
    assert_eq!(trail[3].changes[0].field, "state");
    assert_eq!(trail[3].changes[0].before, serde_json::json!("approved"));
    assert_eq!(trail[3].changes[0].after, serde_json::json!("scheduled"));
    assert_eq!(trail[2].reason.as_deref(), Some("step 1"));
    changehub::domain::audit::verify_chain(&trail).expect("stored chain verifies");
    let current = app.get(&c, &created.id).await.expect("get");
    assert_eq!(current.audit_head, trail[3].hash);
}

pub async fn dedupe_claims_once_until_expiry<S: Dedupe>(store: S) {
    let key = crate::unique("delivery");
    let ttl = StdDuration::from_secs(3600);
    assert_eq!(store.claim(&key, t0(), ttl).await.expect("claim"), Claim::New);
    assert_eq!(store.claim(&key, t0() + Duration::minutes(59), ttl).await.expect("claim"), Claim::Duplicate);
    // Expired claims are taken over, even before TTL deletion removes them.
    assert_eq!(store.claim(&key, t0() + Duration::minutes(61), ttl).await.expect("claim"), Claim::New);
    assert_eq!(store.claim(&key, t0() + Duration::minutes(62), ttl).await.expect("claim"), Claim::Duplicate);
    // A released claim can be taken again at once.
    store.release(&key).await.expect("release");
    assert_eq!(store.claim(&key, t0() + Duration::minutes(62), ttl).await.expect("claim"), Claim::New);
    // Keys are independent.
    assert_eq!(store.claim(&crate::unique("delivery"), t0(), ttl).await.expect("claim"), Claim::New);
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
