//! The embedded store's unauthorized-change findings.

use redb::ReadableDatabase;

use super::{EmbeddedStore, ITEMS, backend, get_item};
use crate::adapters::keys;
use crate::domain::TenantId;
use crate::domain::finding::{Finding, FindingId};
use crate::ports::{FINDINGS_EVALUATED, FindingQuery, FindingStore, Page, StoreError};

impl FindingStore for EmbeddedStore {
    async fn get_finding(&self, tenant: &TenantId, id: &FindingId) -> Result<Option<Finding>, StoreError> {
        let (pk, sk) = (keys::findings_pk(tenant), keys::finding_sk(id));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            get_item(&table, &pk, &sk)
        })
        .await
    }

    async fn put_finding(&self, finding: &Finding) -> Result<(), StoreError> {
        let (pk, sk) = (keys::findings_pk(&finding.tenant), keys::finding_sk(&finding.id));
        self.replace_versioned(pk, sk, finding.clone(), finding.version, |f: &Finding| f.version, true).await
    }

    async fn list_findings(&self, q: &FindingQuery) -> Result<Page<Finding>, StoreError> {
        let range = keys::finding_range(q)?;
        let (rows, more) = self.newest_rows(keys::findings_pk(&q.tenant), range, FINDINGS_EVALUATED).await?;
        Ok(keys::finding_page(rows, more, q))
    }
}
