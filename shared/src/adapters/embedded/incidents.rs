//! The embedded store's incident records: the same keys and condition as DynamoDB's.

use super::{EmbeddedStore, ITEMS, backend, encode, get_item};
use crate::adapters::keys;
use crate::domain::TenantId;
use crate::domain::incident::{Incident, IncidentId};
use crate::ports::{IncidentQuery, IncidentStore, Page, StoreError};

impl IncidentStore for EmbeddedStore {
    async fn get_incident(&self, tenant: &TenantId, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        self.read_item(keys::incident_pk(tenant, id), keys::META).await
    }

    async fn put_incident(&self, before: Option<&Incident>, after: &Incident) -> Result<(), StoreError> {
        let expected = before.map_or(0, |b| b.version);
        let pk = keys::incident_pk(&after.tenant, &after.id);
        let (stale, entries) = (keys::incident_stale_entries(before, after), keys::incident_entries(after));
        let bytes = encode(after)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let current = get_item::<Incident>(&table, &pk, keys::META)?.map_or(0, |i| i.version);
                if current != expected {
                    // Dropping the transaction aborts it: nothing was written.
                    return Err(StoreError::VersionConflict { expected });
                }
                table.insert((pk.as_str(), keys::META), bytes.as_slice()).map_err(backend)?;
                for (pk, sk) in &stale {
                    table.remove((pk.as_str(), sk.as_str())).map_err(backend)?;
                }
                for (pk, sk) in &entries {
                    table.insert((pk.as_str(), sk.as_str()), bytes.as_slice()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn incidents(&self, q: &IncidentQuery) -> Result<Page<Incident>, StoreError> {
        let Some(range) = keys::incident_range(q)? else { return Ok(Page { items: vec![], next: None }) };
        let q = q.clone();
        self.newest_first(range, q.evaluated(), q.limit, move |i| q.matches(i)).await
    }
}
