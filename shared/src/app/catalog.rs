//! The service catalog: read through a per-process cache (warm functions
//! reuse it), replaced whole by an admin, every version kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::ChangeError;
use crate::app::governance::{GovernanceWrite, put_audited};
use crate::domain::access::{Access, Caller};
use crate::domain::audit::{AuditAction, FieldChange};
use crate::domain::catalog::{Catalog, CatalogView, Role};
use crate::domain::{FieldError, TenantId};
use crate::ports::{CatalogReader, Clock, DocKind, StoreError, StoredDoc, TenantDocs};

/// How long a warm function trusts its copy of a catalog.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Largest catalog accepted, as JSON: a DynamoDB item holds 400 KB.
pub const MAX_CATALOG_BYTES: usize = 350_000;
/// Tenants whose catalogs one process keeps at once.
const MAX_CACHED_TENANTS: usize = 1_000;

/// Catalogs per tenant, read through a cache. Clones share the cache, so a
/// write through one is seen at once by all in the same process; other
/// processes see it within the TTL.
pub struct CachedCatalog<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for CachedCatalog<D> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct Inner<D> {
    docs: D,
    ttl: Duration,
    entries: Mutex<HashMap<TenantId, (Instant, Arc<CatalogView>)>>,
    /// The tenants whose catalog is being read on a miss: a reader that
    /// misses meanwhile waits for that read instead of making its own.
    reading: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

/// `PUT /catalog`'s answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatalogSummary {
    pub version: u64,
    pub services: usize,
    pub templates: usize,
    pub categories: usize,
}

impl CatalogSummary {
    pub fn of(view: &CatalogView) -> Self {
        Self {
            version: view.version,
            services: view.catalog.services.len(),
            templates: view.catalog.templates.len(),
            categories: view.catalog.categories.len(),
        }
    }
}

impl<D: TenantDocs> CachedCatalog<D> {
    pub fn new(docs: D, ttl: Duration) -> Self {
        Self { inner: Arc::new(Inner { docs, ttl, entries: Mutex::new(HashMap::new()), reading: Mutex::default() }) }
    }

    pub fn docs(&self) -> &D {
        &self.inner.docs
    }

    fn cached(&self, tenant: &TenantId) -> Option<Arc<CatalogView>> {
        let entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(tenant).filter(|(at, _)| at.elapsed() < self.inner.ttl).map(|(_, v)| v.clone())
    }

    fn remember(&self, tenant: &TenantId, view: Arc<CatalogView>) {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_TENANTS {
            entries.clear();
        }
        entries.insert(tenant.clone(), (Instant::now(), view));
    }

    async fn load(&self, tenant: &TenantId) -> Result<Arc<CatalogView>, StoreError> {
        let view = match self.inner.docs.get_doc(tenant, DocKind::Catalog).await? {
            None => CatalogView::default(),
            Some(doc) => {
                let catalog: Catalog = serde_json::from_value(doc.body).map_err(|e| StoreError::Corrupt {
                    key: format!("catalog of tenant {tenant} version {}", doc.version),
                    message: e.to_string(),
                })?;
                CatalogView::new(doc.version, catalog)
            }
        };
        let view = Arc::new(view);
        self.remember(tenant, view.clone());
        Ok(view)
    }

    /// Replaces the caller's tenant's catalog with `catalog`. `if_match`, when
    /// given, is the version the caller last read; otherwise the write is
    /// conditional on the version read just before it. The tenant's
    /// governance trail records who imported which version (and the sha256
    /// of its JSON) in the same write; a concurrent governance write (a
    /// freeze, an incident) is retried, a concurrent import is a conflict.
    pub async fn replace(
        &self,
        caller: &Caller,
        catalog: Catalog,
        if_match: Option<u64>,
        clock: &impl Clock,
    ) -> Result<Arc<CatalogView>, ChangeError> {
        let current = self.load(&caller.tenant).await?;
        Access::new(caller, &current.catalog.roles).require(&[Role::Admin], "replacing the catalog")?;
        catalog.validate()?;
        let body = serde_json::to_value(&catalog).map_err(|e| StoreError::backend(false, e))?;
        let json = body.to_string();
        if json.len() > MAX_CATALOG_BYTES {
            return Err(FieldError::new(
                "catalog",
                format!("the catalog is {} bytes as JSON; at most {MAX_CATALOG_BYTES} are accepted", json.len()),
            )
            .into());
        }
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(json.as_bytes()));
        let base = if_match.unwrap_or(current.version);
        let mut actual = current.version;
        for _ in 0..3 {
            if base != actual {
                return Err(ChangeError::DocConflict { what: "catalog", expected: base, actual });
            }
            let doc = StoredDoc {
                version: base + 1,
                updated_at: clock.now(),
                updated_by: caller.user.clone(),
                body: body.clone(),
                due_at: None,
            };
            let field = |name: &str, before, after| FieldChange { field: format!("catalog.{name}"), before, after };
            let changes = vec![
                field("version", base.into(), doc.version.into()),
                field("sha256", Value::Null, sha256.clone().into()),
            ];
            let trail = GovernanceWrite { action: AuditAction::CatalogImported, changes, reason: None };
            match put_audited(&self.inner.docs, caller, DocKind::Catalog, &doc, trail).await {
                Ok(_) => {
                    tracing::info!(tenant = %caller.tenant, version = doc.version, services = catalog.services.len(), "catalog replaced");
                    let view = Arc::new(CatalogView::new(doc.version, catalog));
                    self.remember(&caller.tenant, view.clone());
                    return Ok(view);
                }
                // The catalog moved on (a conflict, said above), or only the trail did (written again).
                Err(StoreError::VersionConflict { .. }) => actual = self.load(&caller.tenant).await?.version,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::backend(true, "the governance trail kept changing under concurrent writers").into())
    }

    /// The caller's tenant's catalog; any role may read it.
    pub async fn read(&self, caller: &Caller) -> Result<Arc<CatalogView>, ChangeError> {
        let view = self.catalog(&caller.tenant).await?;
        let access = Access::new(caller, &view.catalog.roles);
        access.require(&Role::PEOPLE, "reading the catalog")?;
        Ok(view)
    }
}

impl<D: TenantDocs + 'static> CachedCatalog<D> {
    /// Starts reading `tenant`'s catalog in the background, so that a cold
    /// process's first event finds it read, or being read (and waits for
    /// that read rather than making its own). A failed read is logged and
    /// leaves nothing cached: the first event reads it again.
    pub fn prefetch(&self, tenant: TenantId) -> tokio::task::JoinHandle<()> {
        let catalog = self.clone();
        tokio::spawn(async move {
            if let Err(error) = catalog.catalog(&tenant).await {
                tracing::warn!(%tenant, %error, "catalog prefetch failed; the first event reads it again");
            }
        })
    }
}

impl<D: TenantDocs> CatalogReader for CachedCatalog<D> {
    /// On a miss, one read per tenant at a time: a reader that misses while
    /// another read of the same catalog is under way takes its result.
    async fn catalog(&self, tenant: &TenantId) -> Result<Arc<CatalogView>, StoreError> {
        if let Some(view) = self.cached(tenant) {
            return Ok(view);
        }
        let gate = {
            let mut reading = self.inner.reading.lock().unwrap_or_else(|p| p.into_inner());
            reading.entry(tenant.clone()).or_default().clone()
        };
        let _reading = gate.lock().await;
        if let Some(view) = self.cached(tenant) {
            return Ok(view);
        }
        let view = self.load(tenant).await;
        let mut reading = self.inner.reading.lock().unwrap_or_else(|p| p.into_inner());
        if reading.get(tenant).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            reading.remove(tenant);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{AuditEntry, TrailHead};
    use crate::ports::{Cursor, Page};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// Tenant documents whose catalog reads are counted, wait for a permit,
    /// and fail while `failures` lasts; every tenant has no catalog yet.
    #[derive(Clone)]
    struct SlowDocs {
        reads: Arc<AtomicUsize>,
        permits: Arc<Semaphore>,
        failures: usize,
    }

    impl SlowDocs {
        fn new(permits: usize, failures: usize) -> Self {
            Self { reads: Arc::default(), permits: Arc::new(Semaphore::new(permits)), failures }
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    fn unused() -> StoreError {
        StoreError::backend(false, "not used by these tests")
    }

    impl TenantDocs for SlowDocs {
        async fn get_doc(&self, _: &TenantId, _: DocKind) -> Result<Option<StoredDoc>, StoreError> {
            let read = self.reads.fetch_add(1, Ordering::SeqCst);
            let _permit = self.permits.acquire().await.map_err(|e| StoreError::backend(false, e))?;
            if read < self.failures {
                return Err(StoreError::backend(true, "the table is unreachable"));
            }
            Ok(None)
        }

        async fn put_doc(&self, _: &TenantId, _: DocKind, _: &StoredDoc, _: &AuditEntry) -> Result<(), StoreError> {
            Err(unused())
        }

        async fn trail_head(&self, _: &TenantId) -> Result<Option<TrailHead>, StoreError> {
            Err(unused())
        }

        async fn trail(&self, _: &TenantId, _: usize, _: Option<Cursor>) -> Result<Page<AuditEntry>, StoreError> {
            Err(unused())
        }
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    #[tokio::test]
    async fn a_reader_that_misses_while_the_prefetch_reads_takes_its_result() {
        let docs = SlowDocs::new(0, 0);
        let catalog = CachedCatalog::new(docs.clone(), DEFAULT_CACHE_TTL);
        let prefetch = catalog.prefetch(acme());
        let first_event = tokio::spawn({
            let catalog = catalog.clone();
            async move { catalog.catalog(&acme()).await }
        });
        // Both are under way, the prefetch's read waiting for the table.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(docs.reads(), 1, "the event waits for the prefetch's read instead of making its own");
        docs.permits.add_permits(2);
        prefetch.await.expect("prefetch");
        let view = first_event.await.expect("joined").expect("the prefetched catalog");
        assert_eq!(view.version, 0);
        assert_eq!(docs.reads(), 1);
    }

    #[tokio::test]
    async fn a_failed_prefetch_leaves_the_catalog_to_the_first_reader() {
        let docs = SlowDocs::new(2, 1);
        let catalog = CachedCatalog::new(docs.clone(), DEFAULT_CACHE_TTL);
        catalog.prefetch(acme()).await.expect("a failed prefetch is logged, not raised");
        assert_eq!(docs.reads(), 1);
        let view = catalog.catalog(&acme()).await.expect("read again by the first event");
        assert_eq!(view.version, 0);
        assert_eq!(docs.reads(), 2);
    }

    #[tokio::test]
    async fn readers_that_miss_together_after_a_failed_read_each_try_again() {
        let docs = SlowDocs::new(0, 1);
        let catalog = CachedCatalog::new(docs.clone(), DEFAULT_CACHE_TTL);
        let read = |catalog: CachedCatalog<SlowDocs>| tokio::spawn(async move { catalog.catalog(&acme()).await });
        let (first, second) = (read(catalog.clone()), read(catalog.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        docs.permits.add_permits(2);
        let outcomes = [first.await.expect("first"), second.await.expect("second")];
        assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1, "only the failed read's reader sees its error");
        assert_eq!(docs.reads(), 2);
    }
}
