//! The deployment protection rule's store contract, on both stores: a
//! request is one item written conditionally on its version, its due entry
//! follows `due_at` in the same write (moved, then removed), and the
//! requests waiting on a change are one item per change, written
//! conditionally too.

use changehub::domain::gate::GateCode;
use changehub::domain::gate::protection::{ProtectionRequest, ProtectionStatus, ProtectionWaits};
use changehub::domain::{ChangeId, TenantId};
use changehub::ports::{DUE_SHARDS, ProtectionStore, StoreError};
use chrono::{DateTime, Duration, Utc};

fn request(tenant: &TenantId, id: &str, due_at: Option<DateTime<Utc>>) -> ProtectionRequest {
    ProtectionRequest {
        tenant: tenant.clone(),
        id: id.to_owned(),
        repository: "acme-corp/checkout-service".into(),
        installation: Some(51234567),
        environment: "production".into(),
        service: None,
        git_ref: Some("refs/heads/main".into()),
        sha: None,
        change_ids: vec![],
        callback_url:
            "https://api.github.com/repos/acme-corp/checkout-service/actions/runs/1/deployment_protection_rule".into(),
        requested_at: crate::t0(),
        version: 1,
        status: ProtectionStatus::Waiting { change: None, code: GateCode::NotApproved, reason: "waits".into() },
        due_at,
    }
}

/// The ids of every request due by `until`, over all shards.
async fn due_ids<S: ProtectionStore>(store: &S, tenant: &TenantId, until: DateTime<Utc>) -> Vec<String> {
    let mut ids = Vec::new();
    for shard in 0..DUE_SHARDS {
        let page = store.due_protections(shard, until, 100, None).await.expect("due");
        ids.extend(page.items.into_iter().filter(|r| &r.tenant == tenant).map(|r| r.id));
    }
    ids.sort();
    ids
}

pub async fn protection_requests_are_written_conditionally_and_due_by_their_due_at<S: ProtectionStore>(store: S) {
    let tenant = TenantId::parse(&crate::unique("acme")).expect("tenant");
    let t0 = crate::t0();
    assert_eq!(store.get_protection(&tenant, "github-d1-0").await.expect("read"), None);

    let first = request(&tenant, "github-d1-0", Some(t0 + Duration::hours(1)));
    store.put_protection(&first).await.expect("first write");
    let again = store.put_protection(&first).await;
    assert!(matches!(again, Err(StoreError::VersionConflict { expected: 0 })), "a second copy's write: {again:?}");
    assert_eq!(store.get_protection(&tenant, "github-d1-0").await.expect("read"), Some(first.clone()));
    store.put_protection(&request(&tenant, "github-d2-0", Some(t0 + Duration::hours(3)))).await.expect("another");

    assert!(due_ids(&store, &tenant, t0).await.is_empty(), "nothing is due yet");
    assert_eq!(due_ids(&store, &tenant, t0 + Duration::hours(1)).await, ["github-d1-0"]);
    assert_eq!(due_ids(&store, &tenant, t0 + Duration::hours(3)).await, ["github-d1-0", "github-d2-0"]);

    // Moved later: its due entry moves with it, in the same write.
    let later = first.next(first.status.clone(), Some(t0 + Duration::hours(2)));
    store.put_protection(&later).await.expect("moved");
    assert!(due_ids(&store, &tenant, t0 + Duration::hours(1)).await.is_empty(), "the old due entry is gone");
    assert_eq!(due_ids(&store, &tenant, t0 + Duration::hours(2)).await, ["github-d1-0"]);
    let stale = store.put_protection(&first.next(first.status.clone(), None)).await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { expected: 1 })), "a stale write: {stale:?}");

    // Settled: nothing is due on it any more.
    store.put_protection(&later.next(later.status.clone(), None)).await.expect("settled");
    assert_eq!(due_ids(&store, &tenant, t0 + Duration::days(1)).await, ["github-d2-0"]);
    assert_eq!(store.get_protection(&tenant, "github-d1-0").await.expect("read").map(|r| r.version), Some(3));
}

pub async fn requests_waiting_on_a_change_are_kept_per_change_and_written_conditionally<S: ProtectionStore>(store: S) {
    let tenant = TenantId::parse(&crate::unique("acme")).expect("tenant");
    let (change, other) = (ChangeId::new(), ChangeId::new());
    assert_eq!(store.get_protection_waits(&tenant, &change).await.expect("read"), None);
    let mut waits = ProtectionWaits::new(tenant.clone(), change);
    waits.add("github-d1-0", crate::t0());
    waits.version = 1;
    store.put_protection_waits(&waits).await.expect("first write");
    let again = store.put_protection_waits(&waits).await;
    assert!(matches!(again, Err(StoreError::VersionConflict { expected: 0 })), "{again:?}");
    assert_eq!(store.get_protection_waits(&tenant, &change).await.expect("read"), Some(waits.clone()));
    assert_eq!(store.get_protection_waits(&tenant, &other).await.expect("read"), None);
    let mut next = waits.clone();
    next.add("github-d2-0", crate::t0());
    next.version = 2;
    store.put_protection_waits(&next).await.expect("second write");
    let lost = store.put_protection_waits(&waits).await;
    assert!(matches!(lost, Err(StoreError::VersionConflict { .. })), "a stale write: {lost:?}");
    let stored = store.get_protection_waits(&tenant, &change).await.expect("read").expect("stored");
    assert_eq!(stored.requests.len(), 2);
}
