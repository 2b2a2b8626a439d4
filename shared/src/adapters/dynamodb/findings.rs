//! The DynamoDB store's unauthorized-change findings: one item each in the
//! tenant's findings partition, the filters' attributes beside the record;
//! and the evidence of authorized observations, in a partition per change.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::trails::{Forward, conditional_put};
use super::{DOC, DynamoStore, Item, classify_transaction, condition_failed_at, decode, doc_of, key, n, put, s};
use crate::adapters::keys;
use crate::domain::finding::change_evidence::{ChangeEvidence, MAX_CHANGE_EVIDENCE, Recorded};
use crate::domain::finding::{Finding, FindingId};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{Cursor, FINDINGS_EVALUATED, FindingQuery, FindingStore, Page, StoreError};

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

    /// One transaction: the evidence, unless its key is held (a duplicate),
    /// and the change's count, unless it is at [`MAX_CHANGE_EVIDENCE`] (full).
    async fn record_evidence(&self, e: &ChangeEvidence) -> Result<Recorded, StoreError> {
        let pk = keys::change_evidence_pk(&e.tenant, &e.change_id);
        let mut item = key(pk.clone(), keys::change_evidence_sk(e.at, &e.event_id));
        item.insert("entity".into(), s("change_evidence"));
        item.insert(DOC.into(), doc_of(e)?);
        let evidence = put(&self.table, item, Some("attribute_not_exists(PK)"))?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, keys::CHANGE_EVIDENCE_COUNT)))
            .update_expression("SET #n = if_not_exists(#n, :zero) + :one, entity = :entity")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_CHANGE_EVIDENCE))
            .expression_attribute_values(":entity", s("change_evidence_count"))
            .build()
            .map_err(|e| StoreError::backend(false, e))?;
        let writes = vec![evidence, TransactWriteItem::builder().update(count).build()];
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(Recorded::New),
            Err(e) => match condition_failed_at(&e) {
                Some(0) => Ok(Recorded::Duplicate),
                Some(_) => Ok(Recorded::Full),
                None => Err(classify_transaction(e)),
            },
        }
    }

    /// One Query of the change's evidence partition (another only past 1 MB), oldest first.
    async fn change_evidence(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<ChangeEvidence>, StoreError> {
        let range = keys::change_evidence_range(after.as_ref())?;
        let page = self.query_page(keys::change_evidence_pk(tenant, change), &range, Forward::Yes, limit).await?;
        Ok(Page { items: page.items.iter().map(|(_, item)| decode(item)).collect::<Result<_, _>>()?, next: page.next })
    }
}
