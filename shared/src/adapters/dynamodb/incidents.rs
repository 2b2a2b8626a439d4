//! The DynamoDB store's incident records: the record under its own key, and
//! a copy in the tenant's listing and its service's index, all in one
//! transaction conditional on the record's version.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use std::collections::HashMap;

use super::{
    DOC, DynamoStore, Item, classify, classify_transaction, condition_failed_at, doc_of, filtered_page, key, n, put, s,
};
use crate::adapters::keys;
use crate::domain::TenantId;
use crate::domain::incident::{Incident, IncidentId};
use crate::ports::{IncidentQuery, IncidentStore, Page, StoreError};

impl DynamoStore {
    /// An incident item: the record whole in `doc`, beside what filters read.
    fn incident_item(pk: String, sk: &str, incident: &Incident) -> Result<Item, StoreError> {
        let mut item = key(pk, sk);
        item.insert("entity".into(), s("incident"));
        item.insert("version".into(), n(incident.version));
        item.insert("source".into(), s(incident.source.as_str()));
        item.insert("external_id".into(), s(incident.external_id.as_str()));
        item.insert("status".into(), s(incident.status.as_str()));
        item.insert("major".into(), s(incident.major.to_string()));
        item.insert("change_related".into(), s(incident.change_related.to_string()));
        item.insert(DOC.into(), doc_of(incident)?);
        Ok(item)
    }
}

impl IncidentStore for DynamoStore {
    async fn get_incident(&self, tenant: &TenantId, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        self.read_item(keys::incident_pk(tenant, id), keys::META).await
    }

    async fn put_incident(&self, before: Option<&Incident>, after: &Incident) -> Result<(), StoreError> {
        let expected = before.map_or(0, |b| b.version);
        let record = Self::incident_item(keys::incident_pk(&after.tenant, &after.id), keys::META, after)?;
        let mut record = if expected == 0 {
            put(&self.table, record, Some("attribute_not_exists(PK)"))?
        } else {
            put(&self.table, record, Some("attribute_exists(PK) AND #version = :before"))?
        };
        if let (Some(p), true) = (record.put.as_mut(), expected > 0) {
            p.expression_attribute_names = Some(HashMap::from([("#version".to_owned(), "version".to_owned())]));
            p.expression_attribute_values = Some(HashMap::from([(":before".to_owned(), n(expected))]));
        }
        let mut writes = vec![record];
        for (pk, sk) in keys::incident_stale_entries(before, after) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .build()
                .map_err(|e| StoreError::backend(false, e))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        for (pk, sk) in keys::incident_entries(after) {
            writes.push(put(&self.table, Self::incident_item(pk, &sk, after)?, None)?);
        }
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed_at(&e) == Some(0) => Err(StoreError::VersionConflict { expected }),
            Err(e) => Err(classify_transaction(e)),
        }
    }

    /// One Query: the range newest first, `Limit` = the rows a page
    /// evaluates, the filters as a filter expression. Strongly consistent:
    /// a late change's re-check must see an incident recorded just before
    /// (the incident's own correlation may have run before the change was
    /// written, so one of the two reads has to see the other's write).
    async fn incidents(&self, q: &IncidentQuery) -> Result<Page<Incident>, StoreError> {
        let Some(range) = keys::incident_range(q)? else { return Ok(Page { items: vec![], next: None }) };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(range.pk.clone()))
            .expression_attribute_values(":lo", s(range.lo))
            .expression_attribute_values(":hi", s(range.hi))
            .scan_index_forward(false)
            .limit(i32::try_from(q.evaluated()).unwrap_or(i32::MAX))
            .set_exclusive_start_key(range.below.map(|below| key(range.pk, below)));
        let mut filter = Vec::new();
        for (attr, name, value, wanted) in [
            ("#source", "source", ":source", q.source.map(|s| s.as_str().to_owned())),
            ("#external_id", "external_id", ":external_id", q.external_id.clone()),
            ("#status", "status", ":status", q.status.map(|s| s.as_str().to_owned())),
            ("#major", "major", ":major", q.major.map(|m| m.to_string())),
            ("#change_related", "change_related", ":change_related", q.change_related.map(|c| c.to_string())),
        ] {
            if let Some(wanted) = wanted {
                query = query.expression_attribute_names(attr, name).expression_attribute_values(value, s(wanted));
                filter.push(format!("{attr} = {value}"));
            }
        }
        if !filter.is_empty() {
            query = query.filter_expression(filter.join(" AND "));
        }
        let out = query.send().await.map_err(classify)?;
        filtered_page(out.items.unwrap_or_default(), out.last_evaluated_key.as_ref(), q.limit)
    }
}
