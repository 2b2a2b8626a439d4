//! The merge gate's reverse index contract: the requests linked to a
//! change, one item per change, written whole and conditionally on its
//! version, on both stores.

use changehub::domain::gate::pulls::{Forge, PullLink, PullLinks, PullRequestRef};
use changehub::domain::{ChangeId, ServiceName, TenantId};
use changehub::ports::{PullLinkStore, StoreError};

fn link(number: u64) -> PullLink {
    PullLink {
        pull: PullRequestRef {
            forge: Forge::Github,
            repository: "acme-corp/checkout-service".into(),
            number,
            head_sha: format!("{number:040x}"),
            installation: Some(51234567),
        },
        service: ServiceName::parse("payments").expect("service"),
        change_ids: vec![],
        linked_at: crate::t0(),
    }
}

pub async fn pull_links_are_kept_per_change_and_written_conditionally<S: PullLinkStore>(store: S) {
    let tenant = TenantId::parse(&crate::unique("acme")).expect("tenant");
    let (change, other) = (ChangeId::new(), ChangeId::new());
    assert_eq!(store.get_pull_links(&tenant, &change).await.expect("read"), None);

    let mut links = PullLinks::new(tenant.clone(), change);
    links.link(link(1));
    links.version = 1;
    store.put_pull_links(&links).await.expect("first write");
    let again = store.put_pull_links(&links).await;
    assert!(matches!(again, Err(StoreError::VersionConflict { expected: 0 })), "a second first write: {again:?}");
    assert_eq!(store.get_pull_links(&tenant, &change).await.expect("read"), Some(links.clone()));
    assert_eq!(store.get_pull_links(&tenant, &other).await.expect("read"), None, "another change has its own item");

    let mut next = links.clone();
    next.link(link(2));
    next.version = 2;
    store.put_pull_links(&next).await.expect("second write");
    let mut stale = links.clone();
    stale.link(link(3));
    stale.version = 2;
    let lost = store.put_pull_links(&stale).await;
    assert!(matches!(lost, Err(StoreError::VersionConflict { expected: 1 })), "a stale write: {lost:?}");
    let stored = store.get_pull_links(&tenant, &change).await.expect("read").expect("stored");
    let numbers: Vec<u64> = stored.pulls.iter().map(|p| p.pull.number).collect();
    assert_eq!((stored.version, numbers), (2, vec![1, 2]));
}
