//! The DynamoDB store's deployment protection rule requests: one item per
//! request, carrying its due entry (GSI1) while something is due on it, and
//! one item per change for the requests waiting on it.

use chrono::{DateTime, Utc};

use super::trails::conditional_put;
use super::{DOC, DynamoStore, decode, doc_of, key, n, s};
use crate::adapters::keys;
use crate::domain::gate::protection::{ProtectionRequest, ProtectionWaits};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{Cursor, Page, ProtectionStore, StoreError};

impl ProtectionStore for DynamoStore {
    /// One consistent GetItem.
    async fn get_protection(&self, tenant: &TenantId, id: &str) -> Result<Option<ProtectionRequest>, StoreError> {
        self.read_item(keys::protection_pk(tenant, id), keys::PROTECTION_SK).await
    }

    /// One PutItem, conditional on the version before (absent for a first
    /// version); the item carries GSI1PK/GSI1SK only while it is due, so the
    /// put moves or removes its due entry.
    async fn put_protection(&self, request: &ProtectionRequest) -> Result<(), StoreError> {
        let mut item = key(keys::protection_pk(&request.tenant, &request.id), keys::PROTECTION_SK);
        item.insert("entity".into(), s("protection_request"));
        item.insert("version".into(), n(request.version));
        if let Some((gpk, gsk)) = keys::protection_due_keys(request) {
            item.insert("GSI1PK".into(), s(gpk));
            item.insert("GSI1SK".into(), s(gsk));
        }
        item.insert(DOC.into(), doc_of(request)?);
        let expected = request.version.saturating_sub(1);
        let write = conditional_put(&self.table, item, "version", expected)?;
        self.put_conditionally(write, expected, || async { Ok(true) }).await
    }

    /// One Query of the shard's GSI1 partition (another only past 1 MB).
    async fn due_protections(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<ProtectionRequest>, StoreError> {
        let range = keys::protection_due_range(shard, until, after.as_ref());
        let page = self.due_page(&range, limit).await?;
        let items = page.items.iter().map(|(_, item)| decode(item)).collect::<Result<_, StoreError>>()?;
        Ok(Page { items, next: page.next })
    }

    /// One consistent GetItem.
    async fn get_protection_waits(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
    ) -> Result<Option<ProtectionWaits>, StoreError> {
        self.read_item(keys::protection_waits_pk(tenant, change), keys::PROTECTION_WAITS_SK).await
    }

    /// One PutItem, conditional on the version before.
    async fn put_protection_waits(&self, waits: &ProtectionWaits) -> Result<(), StoreError> {
        let mut item = key(keys::protection_waits_pk(&waits.tenant, &waits.change), keys::PROTECTION_WAITS_SK);
        item.insert("entity".into(), s("protection_waits"));
        item.insert("version".into(), n(waits.version));
        item.insert(DOC.into(), doc_of(waits)?);
        let expected = waits.version.saturating_sub(1);
        let write = conditional_put(&self.table, item, "version", expected)?;
        self.put_conditionally(write, expected, || async { Ok(true) }).await
    }
}
