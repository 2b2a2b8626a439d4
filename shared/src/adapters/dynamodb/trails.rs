//! The DynamoDB store's tenant documents with their governance trail, and
//! its security events.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

use super::{
    DOC, DynamoStore, Item, classify, classify_transaction, condition_failed_at, decode, doc_of, key, n, put, s,
};
use crate::adapters::{expiry, keys};
use crate::domain::TenantId;
use crate::domain::audit::{AuditEntry, TrailHead};
use crate::ports::{
    Cursor, DocKind, DueDoc, FreezesDue, Page, Refusal, SecurityEvent, SecurityLog, SecurityQuery, StoreError,
    StoredDoc, TenantDocs, seal_entry,
};

impl TenantDocs for DynamoStore {
    async fn get_doc(&self, tenant: &TenantId, kind: DocKind) -> Result<Option<StoredDoc>, StoreError> {
        self.read_item(keys::doc_pk(tenant, kind), keys::DOC_CURRENT).await
    }

    /// One transaction: the current version (conditional on the version
    /// before), the version kept in the history, the trail entry and the
    /// trail's head (conditional on the entry before).
    async fn put_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        doc: &StoredDoc,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let pk = keys::doc_pk(tenant, kind);
        let expected = doc.version.saturating_sub(1);
        let item = |sk: String| {
            let mut item = key(pk.clone(), sk);
            item.insert("entity".into(), s("tenant_doc"));
            item.insert("version".into(), n(doc.version));
            doc_of(doc).map(|d| {
                item.insert(DOC.into(), d);
                item
            })
        };
        let mut current = item(keys::DOC_CURRENT.to_owned())?;
        // The due entry is the current item's own: a put without the keys takes it out.
        if let Some((gpk, gsk)) = keys::doc_due_keys(tenant, kind, doc) {
            current.insert("GSI1PK".into(), s(gpk));
            current.insert("GSI1SK".into(), s(gsk));
        }
        let current = conditional_put(&self.table, current, "version", expected)?;
        let history = put(&self.table, item(keys::doc_version_sk(doc.version))?, Some("attribute_not_exists(PK)"))?;
        let entry = seal_entry(self.sealer.as_deref(), entry).await?;
        let gpk = keys::governance_pk(tenant);
        let mut logged = key(gpk.clone(), keys::audit_sk(entry.seq));
        logged.insert("entity".into(), s("governance_audit"));
        logged.insert(DOC.into(), doc_of(&entry)?);
        let logged = put(&self.table, logged, Some("attribute_not_exists(PK)"))?;
        let mut head = key(gpk, keys::TRAIL_HEAD);
        head.insert("entity".into(), s("governance_head"));
        head.insert("seq".into(), n(entry.seq));
        head.insert(DOC.into(), doc_of(&entry.head())?);
        let head = conditional_put(&self.table, head, "seq", entry.seq.saturating_sub(1))?;
        let writes = vec![current, history, logged, head];
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed_at(&e).is_some() => Err(StoreError::VersionConflict { expected }),
            Err(e) => Err(classify_transaction(e)),
        }
    }

    async fn trail_head(&self, tenant: &TenantId) -> Result<Option<TrailHead>, StoreError> {
        self.read_item(keys::governance_pk(tenant), keys::TRAIL_HEAD).await
    }

    async fn trail(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let range = keys::trail_range(after.as_ref())?;
        let page = self.query_page(keys::governance_pk(tenant), &range, Forward::Yes, limit).await?;
        Ok(Page { items: page.items.iter().map(|(_, item)| decode(item)).collect::<Result<_, _>>()?, next: page.next })
    }
}

impl FreezesDue for DynamoStore {
    async fn due_freezes(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<DueDoc>, StoreError> {
        let range = keys::freezes_due_range(shard, until, after.as_ref());
        let page = self.due_page(&range, limit).await?;
        let items = page
            .items
            .iter()
            .map(|(sk, item)| Ok(DueDoc { tenant: keys::tenant_of_due_doc(&range.pk, sk)?, doc: decode(item)? }))
            .collect::<Result<_, StoreError>>()?;
        Ok(Page { items, next: page.next })
    }
}

/// Which way a page reads its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forward {
    Yes,
    No,
}

impl DynamoStore {
    /// A page of partition `pk`'s items in `range`, by sort key (`Forward::No`:
    /// newest first), the cursor's own item skipped: one consistent Query
    /// (another only past 1 MB), and the last item's sort key as the next
    /// page's cursor when an item is left.
    pub(super) async fn query_page(
        &self,
        pk: String,
        range: &keys::SkRange,
        forward: Forward,
        limit: usize,
    ) -> Result<Page<(String, Item)>, StoreError> {
        let mut items: Vec<(String, Item)> = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .range_query(pk.clone(), range)
                .scan_index_forward(forward == Forward::Yes)
                .set_exclusive_start_key(start.take())
                .limit((limit + 2) as i32)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let sk = item.get("SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if range.after.as_deref() == Some(sk.as_str()) {
                    continue;
                }
                if items.len() == limit {
                    let next = items.last().map(|(sk, _)| Cursor::issued(sk.clone()));
                    return Ok(Page { items, next });
                }
                items.push((sk, item));
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(Page { items, next: None }),
            }
        }
    }
}

/// A Put conditional on `attribute`'s value before (none when it is 0).
pub(super) fn conditional_put(
    table: &str,
    item: Item,
    attribute: &str,
    before: u64,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
    if before == 0 {
        return put(table, item, Some("attribute_not_exists(PK)"));
    }
    let mut write = put(table, item, Some("attribute_exists(PK) AND #before = :before"))?;
    if let Some(p) = write.put.as_mut() {
        p.expression_attribute_names = Some(HashMap::from([("#before".to_owned(), attribute.to_owned())]));
        p.expression_attribute_values = Some(HashMap::from([(":before".to_owned(), n(before))]));
    }
    Ok(write)
}

impl SecurityLog for DynamoStore {
    /// One UpdateItem: `ADD` one to the minute's count, the first time kept,
    /// the last target and reason set.
    async fn record_refusal(&self, r: &Refusal, ttl: Duration) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::security_pk(&r.tenant), keys::security_sk(r.at, &r.action, &r.user))))
            .update_expression(
                "ADD #count :one SET entity = :entity, #user = :user, #action = :action, target = :target, \
                 reason = :reason, first_at = if_not_exists(first_at, :at), last_at = :at, #expires = :expires",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#user", "user")
            .expression_attribute_names("#action", "action")
            .expression_attribute_names("#expires", super::TABLE.ttl_attribute)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":entity", s("security_event"))
            .expression_attribute_values(":user", s(r.user.clone()))
            .expression_attribute_values(":action", s(r.action.clone()))
            .expression_attribute_values(":target", s(r.target.clone()))
            .expression_attribute_values(":reason", s(r.reason.clone()))
            .expression_attribute_values(":at", s(keys::time_key(r.at)))
            .expression_attribute_values(":expires", n(expiry(r.at, ttl).timestamp()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// One Query, newest first.
    async fn security_events(&self, q: &SecurityQuery) -> Result<Page<SecurityEvent>, StoreError> {
        let range = keys::security_range(q.since, q.until, q.after.as_ref())?;
        let page = self.query_page(keys::security_pk(&q.tenant), &range, Forward::No, q.limit).await?;
        let items = page.items.iter().map(|(sk, item)| security_event_of(sk, item)).collect::<Result<_, _>>()?;
        Ok(Page { items, next: page.next })
    }
}

fn security_event_of(sk: &str, item: &Item) -> Result<SecurityEvent, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt { key: sk.to_owned(), message: format!("security event {what}") };
    let text = |k: &str| item.get(k).and_then(|v: &AttributeValue| v.as_s().ok()).cloned().ok_or_else(|| corrupt(k));
    let time = |k: &str| -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(&text(k)?).map(|t| t.with_timezone(&Utc)).map_err(|_| corrupt(k))
    };
    Ok(SecurityEvent {
        user: text("user")?,
        action: text("action")?,
        target: text("target")?,
        reason: text("reason")?,
        count: item
            .get("count")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt("count"))?,
        first_at: time("first_at")?,
        last_at: time("last_at")?,
    })
}
