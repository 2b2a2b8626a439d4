//! Audit seals on both stores: every entry a sealed store writes verifies
//! under the hub's audit key, a tenant's changes are listed without a scan,
//! and a consistent rewrite by someone with table access (entry edited, every
//! later hash and link and the record's head recomputed) passes the hash
//! chain but not the seals; the same holds of a tenant's governance trail.

use std::sync::Arc;

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::keys;
use changehub::app::Changes;
use changehub::app::audit::{verify_governance, verify_trails};
use changehub::app::changes::ChangeStore;
use changehub::domain::audit::{AuditKey, ChainError};
use changehub::domain::{AuditEntry, Change, ChangeId, TenantId};
use changehub::ports::{AuditSealer, ChangeReader, FixedClock};
use changehub_tests::fixtures::{alice, seed, submit_and_approve};
use changehub_tests::{aws, new_change, t0, tamper, unique};
use serde_json::Value;

fn key() -> AuditKey {
    AuditKey::new(b"an audit key of at least 32 bytes, for tests").expect("key")
}

fn sealer() -> Arc<AuditSealer> {
    Arc::new(AuditSealer::with_key(key()))
}

/// Writes one item as someone with table access would: the stored JSON as is.
trait RawWrite {
    async fn overwrite(&self, pk: String, sk: String, doc: Value);
}

impl RawWrite for EmbeddedStore {
    async fn overwrite(&self, pk: String, sk: String, doc: Value) {
        self.put_raw(pk, sk, doc).await.expect("raw write");
    }
}

impl RawWrite for DynamoStore {
    async fn overwrite(&self, pk: String, sk: String, doc: Value) {
        tamper::overwrite_item(self, pk, sk, &doc).await;
    }
}

/// A tenant with one change, submitted and approved: a sealed trail of 4 entries.
async fn approved_change<S: ChangeStore>(app: &Changes<S, FixedClock>) -> (TenantId, Change) {
    let tenant = unique("seal");
    seed(app, &tenant).await;
    let created = app.create(&alice(&tenant), new_change("sealed", &["payments"], t0(), 1)).await.expect("create");
    let approved = submit_and_approve(app, &tenant, &created.id).await;
    (TenantId::parse(&tenant).expect("tenant"), approved)
}

async fn sealed_trails_verify_and_a_consistent_rewrite_is_caught<S: ChangeStore + RawWrite>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let (tenant, change) = approved_change(&app).await;
    let other =
        app.create(&alice(tenant.as_str()), new_change("second", &["payments"], t0(), 1)).await.expect("create");

    let ids = app.store.change_ids(&tenant).await.expect("the tenant's change list");
    let mut expected = vec![change.id, other.id];
    expected.sort();
    assert_eq!(ids, expected, "every change of the tenant, oldest first");
    let targets: Vec<(TenantId, ChangeId)> = ids.iter().map(|id| (tenant.clone(), *id)).collect();
    let reports = verify_trails(&app.store, &targets, Some(&key())).await.expect("verify");
    assert!(reports.iter().all(|r| r.result.is_ok()), "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.entries).sum::<usize>(), 5);

    // The rewrite: entry 2 gets another actor; every later hash and link and
    // the record's head are recomputed, so the hash chain holds again.
    let mut trail: Vec<AuditEntry> = app.store.audit_trail(&tenant, &change.id).await.expect("trail");
    assert!(trail.iter().all(|e| e.seal.is_some()), "the store sealed every entry");
    let mut record = app.store.get_change(&tenant, &change.id).await.expect("get").expect("record");
    tamper::rewrite_actor(&mut trail, &mut record, 1, "mallory");
    let pk = keys::change_pk(&tenant, &change.id);
    for e in &trail[1..] {
        app.store.overwrite(pk.clone(), keys::audit_sk(e.seq), serde_json::to_value(e).expect("json")).await;
    }
    app.store.overwrite(pk, keys::META.to_owned(), serde_json::to_value(&record).expect("json")).await;

    let one = [(tenant.clone(), change.id)];
    let unkeyed = verify_trails(&app.store, &one, None).await.expect("verify");
    assert_eq!(unkeyed[0].result, Ok(()), "the hash chain alone cannot see a consistent rewrite");
    let keyed = verify_trails(&app.store, &one, Some(&key())).await.expect("verify");
    assert_eq!(keyed[0].result, Err(ChainError::BadSeal { seq: 2 }));
}

/// The governance trail (here: the catalog import, a freeze declared and
/// lifted) is sealed as it is written; a consistent rewrite of an entry and
/// the trail's head passes the chain but not the seals.
async fn a_governance_trail_is_sealed_and_a_consistent_rewrite_is_caught<S: ChangeStore + RawWrite>(store: S) {
    use changehub::app::governance::LiftFreeze;
    use changehub::domain::freeze::{FreezeWindow, Schedule};
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = unique("gov");
    seed(&app, &tenant).await;
    let root = changehub_tests::fixtures::root(&tenant);
    let window = FreezeWindow {
        id: "close".into(),
        name: "Close".into(),
        services: vec![],
        schedule: Schedule::MonthEnd { business_days: 2 },
        reason: String::new(),
    };
    app.governance().put_freeze(&root, window).await.expect("declare");
    app.governance().delete_freeze(&root, "close", LiftFreeze { reason: "done".into() }).await.expect("lift");
    let tenant = TenantId::parse(&tenant).expect("tenant");
    let report = verify_governance(&app.store, &tenant, Some(&key())).await.expect("verify").expect("a trail");
    assert_eq!((report.entries, report.result.clone(), report.trail()), (3, Ok(()), "governance".to_owned()));

    let mut trail = app.store.trail(&tenant, 100, None).await.expect("trail").items;
    let head = tamper::rewrite_trail_actor(&mut trail, 1, "mallory").expect("a head");
    let pk = keys::governance_pk(&tenant);
    for e in &trail[1..] {
        app.store.overwrite(pk.clone(), keys::audit_sk(e.seq), serde_json::to_value(e).expect("json")).await;
    }
    app.store.overwrite(pk, keys::TRAIL_HEAD.to_owned(), serde_json::to_value(&head).expect("json")).await;
    let unkeyed = verify_governance(&app.store, &tenant, None).await.expect("verify").expect("a trail");
    assert_eq!(unkeyed.result, Ok(()), "the hash chain alone cannot see a consistent rewrite");
    let keyed = verify_governance(&app.store, &tenant, Some(&key())).await.expect("verify").expect("a trail");
    assert_eq!(keyed.result, Err(ChainError::BadSeal { seq: 2 }));
    let nobody = TenantId::parse(&unique("none")).expect("tenant");
    assert!(verify_governance(&app.store, &nobody, Some(&key())).await.expect("verify").is_none(), "no trail");
}

#[tokio::test]
async fn embedded_store_seals_the_governance_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("gov.db")).expect("open").with_sealer(sealer());
    a_governance_trail_is_sealed_and_a_consistent_rewrite_is_caught(store).await;
}

#[tokio::test]
async fn dynamodb_store_seals_the_governance_trail() {
    a_governance_trail_is_sealed_and_a_consistent_rewrite_is_caught(aws::dynamo_store().await.with_sealer(sealer()))
        .await;
}

async fn a_listed_change_without_its_record_is_broken<S: ChangeStore>(store: S) {
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = TenantId::parse(&unique("gone")).expect("tenant");
    let reports = verify_trails(&app.store, &[(tenant, ChangeId::new())], Some(&key())).await.expect("verify");
    assert_eq!(reports[0].result, Err(ChainError::RecordMissing { entries: 0 }));
}

#[tokio::test]
async fn embedded_store_seals_and_a_consistent_rewrite_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("audit.db")).expect("open").with_sealer(sealer());
    sealed_trails_verify_and_a_consistent_rewrite_is_caught(store).await;
}

#[tokio::test]
async fn dynamodb_store_seals_and_a_consistent_rewrite_is_caught() {
    sealed_trails_verify_and_a_consistent_rewrite_is_caught(aws::dynamo_store().await.with_sealer(sealer())).await;
}

#[tokio::test]
async fn embedded_store_reports_a_listed_change_without_its_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    a_listed_change_without_its_record_is_broken(EmbeddedStore::open(dir.path().join("gone.db")).expect("open")).await;
}

#[tokio::test]
async fn dynamodb_store_reports_a_listed_change_without_its_record() {
    a_listed_change_without_its_record_is_broken(aws::dynamo_store().await).await;
}

/// A store whose key cannot be loaded writes nothing unsealed (here, the
/// catalog import and its governance entry): the write fails as retryable,
/// and succeeds once the key is there.
#[tokio::test]
async fn a_store_without_its_key_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = attempts.clone();
    let sealer = AuditSealer::lazy(move || {
        let first = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        async move { if first { Err("secret unavailable".into()) } else { Ok(key()) } }
    });
    let store = EmbeddedStore::open(dir.path().join("nokey.db")).expect("open").with_sealer(Arc::new(sealer));
    let app = Changes::new(store, FixedClock::new(t0()));
    let root = changehub_tests::fixtures::root("acme");
    let catalog = changehub_tests::fixtures::catalog();
    let err = app.catalog.replace(&root, catalog, None, &app.clock).await.expect_err("no key yet");
    assert!(
        err.to_string().to_lowercase().contains("unavailable") || format!("{err:?}").contains("Backend"),
        "{err:?}"
    );
    let tenant = TenantId::parse("acme").expect("tenant");
    use changehub::ports::{DocKind, TenantDocs};
    assert_eq!(app.store.get_doc(&tenant, DocKind::Catalog).await.expect("get"), None, "nothing written");
    assert_eq!(app.store.trail_head(&tenant).await.expect("head"), None, "nothing on the governance trail");
    seed(&app, "acme").await;
    let created = app.create(&alice("acme"), new_change("x", &["payments"], t0(), 1)).await.expect("key loaded");
    let governance = app.store.trail(&tenant, 10, None).await.expect("trail").items;
    changehub::domain::audit::verify_seals(&governance, &key()).expect("the import is sealed");
    let trail = app.store.audit_trail(&tenant, &created.id).await.expect("trail");
    changehub::domain::audit::verify_seals(&trail, &key()).expect("sealed");
}
