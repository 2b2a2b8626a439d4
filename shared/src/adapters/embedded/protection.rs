//! The embedded store's deployment protection rule requests: one item per
//! request (its due entry moved in the same transaction), one per change
//! for the requests waiting on it.

use chrono::{DateTime, Utc};

use super::{EmbeddedStore, GSI1, ITEMS, backend, encode, get_item, move_due};
use crate::adapters::keys;
use crate::domain::gate::protection::{ProtectionRequest, ProtectionWaits};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{Cursor, Page, ProtectionStore, StoreError};

impl ProtectionStore for EmbeddedStore {
    async fn get_protection(&self, tenant: &TenantId, id: &str) -> Result<Option<ProtectionRequest>, StoreError> {
        self.read_item(keys::protection_pk(tenant, id), keys::PROTECTION_SK).await
    }

    async fn put_protection(&self, request: &ProtectionRequest) -> Result<(), StoreError> {
        let pk = keys::protection_pk(&request.tenant, &request.id);
        let bytes = encode(request)?;
        let due = keys::protection_due_keys(request);
        let expected = request.version.saturating_sub(1);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let stored = get_item::<ProtectionRequest>(&table, &pk, keys::PROTECTION_SK)?;
                if stored.as_ref().map_or(0, |r| r.version) != expected {
                    // Dropping the transaction aborts it: nothing was written.
                    return Err(StoreError::VersionConflict { expected });
                }
                table.insert((pk.as_str(), keys::PROTECTION_SK), bytes.as_slice()).map_err(backend)?;
                let before = stored.as_ref().and_then(keys::protection_due_keys);
                move_due(&mut txn.open_table(GSI1).map_err(backend)?, before, due, &pk)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn due_protections(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<ProtectionRequest>, StoreError> {
        let range = keys::protection_due_range(shard, until, after.as_ref());
        self.due_page(range, limit, keys::PROTECTION_SK, "protection rule request", |_, _, r| Ok(r)).await
    }

    async fn get_protection_waits(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
    ) -> Result<Option<ProtectionWaits>, StoreError> {
        self.read_item(keys::protection_waits_pk(tenant, change), keys::PROTECTION_WAITS_SK).await
    }

    async fn put_protection_waits(&self, waits: &ProtectionWaits) -> Result<(), StoreError> {
        let pk = keys::protection_waits_pk(&waits.tenant, &waits.change);
        let sk = keys::PROTECTION_WAITS_SK.to_owned();
        self.replace_versioned(pk, sk, waits.clone(), waits.version, |w: &ProtectionWaits| w.version, true).await
    }
}
