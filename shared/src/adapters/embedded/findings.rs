//! The embedded store's unauthorized-change findings, and the evidence of
//! authorized observations on their changes.

use redb::{ReadableDatabase, ReadableTable};

use super::{EmbeddedStore, ITEMS, backend, encode, get_item};
use crate::adapters::keys;
use crate::domain::finding::change_evidence::{ChangeEvidence, MAX_CHANGE_EVIDENCE, Recorded};
use crate::domain::finding::{Finding, FindingId};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{Cursor, FINDINGS_EVALUATED, FindingQuery, FindingStore, Page, StoreError};

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

    /// One write transaction: the evidence unless held, and the change's count unless full.
    async fn record_evidence(&self, e: &ChangeEvidence) -> Result<Recorded, StoreError> {
        let pk = keys::change_evidence_pk(&e.tenant, &e.change_id);
        let sk = keys::change_evidence_sk(e.at, &e.event_id);
        let bytes = encode(e)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let recorded = {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let count: u64 = get_item(&table, &pk, keys::CHANGE_EVIDENCE_COUNT)?.unwrap_or(0);
                if table.get((pk.as_str(), sk.as_str())).map_err(backend)?.is_some() {
                    Recorded::Duplicate
                } else if count >= MAX_CHANGE_EVIDENCE {
                    Recorded::Full
                } else {
                    table.insert((pk.as_str(), sk.as_str()), bytes.as_slice()).map_err(backend)?;
                    let count = encode(&(count + 1))?;
                    table.insert((pk.as_str(), keys::CHANGE_EVIDENCE_COUNT), count.as_slice()).map_err(backend)?;
                    Recorded::New
                }
            };
            txn.commit().map_err(backend)?;
            Ok(recorded)
        })
        .await
    }

    async fn change_evidence(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<ChangeEvidence>, StoreError> {
        let range = keys::change_evidence_range(after.as_ref())?;
        self.page_in(keys::change_evidence_pk(tenant, change), range, limit).await
    }
}
