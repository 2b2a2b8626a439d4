//! The DynamoDB store's unauthorized-change findings: one item each in the
//! tenant's findings partition, the filters' attributes beside the record.

use super::trails::{Forward, conditional_put};
use super::{DOC, DynamoStore, Item, decode, doc_of, key, n, s};
use crate::adapters::keys;
use crate::domain::TenantId;
use crate::domain::finding::{Finding, FindingId};
use crate::ports::{FINDINGS_EVALUATED, FindingQuery, FindingStore, Page, StoreError};

fn finding_item(f: &Finding) -> Result<Item, StoreError> {
    let mut item = key(keys::findings_pk(&f.tenant), keys::finding_sk(&f.id));
    item.insert("entity".into(), s("finding"));
    item.insert("version".into(), n(f.version));
    item.insert("kind".into(), s(f.kind.as_str()));
    item.insert("status".into(), s(f.status.as_str()));
    if let Some(service) = &f.service {
        item.insert("service".into(), s(service.as_str()));
    }
    item.insert(DOC.into(), doc_of(f)?);
    Ok(item)
}

impl FindingStore for DynamoStore {
    async fn get_finding(&self, tenant: &TenantId, id: &FindingId) -> Result<Option<Finding>, StoreError> {
        self.read_item(keys::findings_pk(tenant), &keys::finding_sk(id)).await
    }

    /// One PutItem, conditional on the version before (absent for a first
    /// version); `VersionConflict` whenever the condition fails.
    async fn put_finding(&self, finding: &Finding) -> Result<(), StoreError> {
        let expected = finding.version.saturating_sub(1);
        let write = conditional_put(&self.table, finding_item(finding)?, "version", expected)?;
        // A first version lost to another writer, or a stale one: both are conflicts.
        self.put_conditionally(write, expected, || async { Ok(true) }).await
    }

    /// One Query of the tenant's findings in the range, newest first, at most [`FINDINGS_EVALUATED`] read.
    async fn list_findings(&self, q: &FindingQuery) -> Result<Page<Finding>, StoreError> {
        let range = keys::finding_range(q)?;
        let page = self.query_page(keys::findings_pk(&q.tenant), &range, Forward::No, FINDINGS_EVALUATED).await?;
        let rows = page
            .items
            .iter()
            .map(|(sk, item)| Ok((sk.clone(), decode(item)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(keys::finding_page(rows, page.next.is_some(), q))
    }
}
