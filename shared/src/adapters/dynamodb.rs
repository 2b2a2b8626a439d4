//! The DynamoDB store: one table, keys from [`super::keys`]. Records and
//! audit entries are kept whole, as exact JSON in a `doc` attribute (so an
//! entry's hash survives the round trip byte for byte), beside the plain
//! attributes that conditions and filters need.

pub use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::time::Duration;

use super::{expiry, keys};
use crate::domain::{AuditEntry, Change, ChangeId, TenantId};
use crate::ports::{
    Activity, ActivityLog, ActivityQuery, AuditSealer, ChangeQuery, ChangeReader, ChangeUpdate, ChangeWriter, Claim,
    CounterKey, Counters, Counts, Cursor, Dedupe, DueIndex, DuePartition, Page, ServiceWindowQuery, StoreError,
    VolumeKey, WaitCounts, WaitDimension, WaitingQuery, seal_entries, seal_entry,
};
use std::sync::Arc;

mod findings;
mod incidents;
mod index;
mod problems;
mod production;
mod protection;
mod pulls;
mod trails;

use index::{index_item_of, windowed_end};

type Item = HashMap<String, AttributeValue>;

/// The table's shape. `create_table` builds it, and a test checks that
/// `template.yaml` declares the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// (name, type) of every key attribute, type `S`.
    pub attributes: &'static [&'static str],
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// (index name, partition key, sort key), each projecting all attributes.
    pub global_indexes: &'static [(&'static str, &'static str, &'static str)],
    pub ttl_attribute: &'static str,
    pub stream_view: &'static str,
    pub billing_mode: &'static str,
}

pub const TABLE: TableSpec = TableSpec {
    attributes: &["PK", "SK", "GSI1PK", "GSI1SK"],
    partition_key: "PK",
    sort_key: "SK",
    // Sparse, overloaded index: items carry GSI1PK/GSI1SK only when a time-ordered
    // lookup needs them (approvals due, sharded by GSI1PK).
    global_indexes: &[("GSI1", "GSI1PK", "GSI1SK")],
    ttl_attribute: "expires_at",
    stream_view: "NEW_AND_OLD_IMAGES",
    billing_mode: "PAY_PER_REQUEST",
};

const DOC: &str = "doc";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    sealer: Option<Arc<AuditSealer>>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Throttling, 5xx, timeouts and connection failures are worth retrying.
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    const RETRYABLE_CODES: [&str; 6] = [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    ];
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => se.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        _ => false,
    };
    StoreError::backend(retryable, e)
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

fn doc_of<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v).map(s).map_err(|e| StoreError::backend(false, e))
}

/// A page of a filtered Query asked for `limit + 1` matches: with more
/// matches than a page holds, the next page resumes after the last row
/// shown; otherwise where the Query stopped evaluating, if it did.
fn filtered_page<T: DeserializeOwned>(
    rows: Vec<Item>,
    last_evaluated: Option<&Item>,
    limit: usize,
) -> Result<Page<T>, StoreError> {
    let sk_of = |item: &Item| item.get("SK").and_then(|v| v.as_s().ok()).cloned();
    let next = match rows.get(limit.saturating_sub(1)) {
        Some(last) if rows.len() > limit => sk_of(last),
        _ => last_evaluated.and_then(sk_of),
    };
    let items = rows.iter().take(limit).map(decode).collect::<Result<Vec<T>, _>>()?;
    Ok(Page { items, next: next.map(Cursor::issued) })
}

fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let name = || {
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        format!("{}/{}", get("PK"), get("SK"))
    };
    let raw = item
        .get(DOC)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt { key: name(), message: "no doc attribute".into() })?;
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt { key: name(), message: e.to_string() })
}

fn put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| StoreError::backend(false, e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), sealer: None }
    }

    /// Seals every audit entry it writes with the hub's audit key.
    pub fn with_sealer(self, sealer: Arc<AuditSealer>) -> Self {
        Self { sealer: Some(sealer), ..self }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table as [`TABLE`] describes it (tests, local set-up).
    pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
        let key = |name: &str, kt| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
                .map_err(|e| StoreError::backend(false, e))
        };
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::from(TABLE.billing_mode))
            .key_schema(key(TABLE.partition_key, KeyType::Hash)?)
            .key_schema(key(TABLE.sort_key, KeyType::Range)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(TABLE.stream_view))
                    .build()
                    .map_err(|e| StoreError::backend(false, e))?,
            );
        for attr in TABLE.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attr)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::backend(false, e))?,
            );
        }
        for (index, pk, sk) in TABLE.global_indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .key_schema(key(pk, KeyType::Hash)?)
                    .key_schema(key(sk, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(|e| StoreError::backend(false, e))?,
            );
        }
        req.send().await.map_err(classify)?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TABLE.ttl_attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| StoreError::backend(false, e))?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    fn change_item(change: &Change) -> Result<Item, StoreError> {
        let mut item = key(keys::change_pk(&change.tenant, &change.id), keys::META);
        item.insert("entity".into(), s("change"));
        item.insert("version".into(), n(change.version));
        item.insert("state".into(), s(change.state.as_str()));
        if let Some((gpk, gsk)) = keys::due_keys(change) {
            item.insert("GSI1PK".into(), s(gpk));
            item.insert("GSI1SK".into(), s(gsk));
        }
        item.insert(DOC.into(), doc_of(change)?);
        Ok(item)
    }

    fn audit_item(entry: &AuditEntry) -> Result<Item, StoreError> {
        let mut item = key(keys::change_pk(&entry.tenant, &entry.change_id), keys::audit_sk(entry.seq));
        item.insert("entity".into(), s("audit"));
        item.insert(DOC.into(), doc_of(entry)?);
        Ok(item)
    }

    /// A consistent Query of partition `pk`, sort keys from `range.lo` to `range.hi` (both included).
    fn range_query(
        &self,
        pk: String,
        range: &keys::SkRange,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":lo", s(range.lo.clone()))
            .expression_attribute_values(":hi", s(range.hi.clone()))
            .consistent_read(true)
    }

    /// Every item of `wanted` that exists, in no particular order: BatchGetItem
    /// in chunks of 100, retrying unprocessed keys with backoff.
    async fn batch_get_items(&self, wanted: Vec<Item>, consistent: bool) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for chunk in wanted.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| StoreError::backend(false, e))?;
                let out =
                    self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(classify)?;
                items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
                pending =
                    out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).map(|k| k.keys).unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::backend(true, "BatchGetItem kept returning unprocessed keys"));
                    }
                    tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
                }
            }
        }
        Ok(items)
    }

    /// Reads many changes by key, in the order given.
    async fn batch_get(&self, tenant: &TenantId, ids: &[ChangeId]) -> Result<Vec<Change>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let wanted: Vec<Item> = ids.iter().map(|id| key(keys::change_pk(tenant, id), keys::META)).collect();
        let mut found: HashMap<String, Change> = HashMap::new();
        for item in self.batch_get_items(wanted, true).await? {
            let change: Change = decode(&item)?;
            found.insert(change.id.to_string(), change);
        }
        ids.iter()
            .map(|id| {
                found.remove(&id.to_string()).ok_or_else(|| StoreError::Corrupt {
                    key: keys::change_pk(tenant, id),
                    message: "index item names a missing change".into(),
                })
            })
            .collect()
    }

    /// Why a conditional update of `change` failed: gone, or moved on.
    async fn update_failure(&self, change: &Change, expected: u64) -> StoreError {
        match self.get_change(&change.tenant, &change.id).await {
            Ok(None) => StoreError::NotFound,
            Ok(Some(_)) => StoreError::VersionConflict { expected },
            Err(e) => e,
        }
    }
}

type TransactError<R> = SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>;

/// Why each item of a cancelled transaction was cancelled (empty for any other failure).
fn cancellation_reasons<R>(e: &TransactError<R>) -> &[aws_sdk_dynamodb::types::CancellationReason] {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e {
        SdkError::ServiceError(se) => match se.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => c.cancellation_reasons(),
            _ => &[],
        },
        _ => &[],
    }
}

/// Whether a transaction was cancelled because another transaction was
/// writing the same items at the same moment.
fn cancelled_by_conflict<R>(e: &TransactError<R>) -> bool {
    cancellation_reasons(e).iter().any(|r| r.code() == Some("TransactionConflict"))
}

/// A failed transaction: retryable when it was cancelled because another
/// transaction touched the same items, or by throttling (cancellation reasons
/// `TransactionConflict`, `ThrottlingError`, `ProvisionedThroughputExceeded`),
/// otherwise as [`classify`] says.
fn classify_transaction<R>(e: TransactError<R>) -> StoreError
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    const RETRYABLE_REASONS: [&str; 3] = ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"];
    let retryable =
        cancellation_reasons(&e).iter().any(|r| r.code().is_some_and(|code| RETRYABLE_REASONS.contains(&code)));
    if retryable { StoreError::backend(true, e) } else { classify(e) }
}

/// The index of the first cancelled item of a transaction, if the
/// transaction failed on a condition.
fn condition_failed_at<R>(e: &TransactError<R>) -> Option<usize> {
    cancellation_reasons(e).iter().position(|r| r.code() == Some("ConditionalCheckFailed"))
}

impl DynamoStore {
    /// A page of `q`'s window in the start-sorted index partition `pk` (the
    /// service's, or its plannable changes'): one Query (paged past 1 MB)
    /// and one BatchGetItem.
    pub(super) async fn service_window(&self, pk: String, q: &ServiceWindowQuery) -> Result<Page<Change>, StoreError> {
        let range = keys::service_range(q)?;
        let mut ids = Vec::new();
        let mut last_sk: Option<String> = None;
        let mut start: Option<Item> = None;
        let mut more = false;
        'pages: loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":lo", s(range.lo.clone()))
                .expression_attribute_values(":hi", s(range.hi.clone()))
                .set_exclusive_start_key(start.take())
                .limit((q.limit + 1) as i32)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let (sk, idx) = index_item_of(&item)?;
                if !range.keeps(&sk, windowed_end(&sk, &idx)?, q.from) {
                    continue;
                }
                if ids.len() == q.limit {
                    more = true;
                    break 'pages;
                }
                ids.push(idx.change_id);
                last_sk = Some(sk);
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        let items = self.batch_get(&q.tenant, &ids).await?;
        Ok(Page { items, next: if more { last_sk.map(Cursor::issued) } else { None } })
    }
}

impl ChangeReader for DynamoStore {
    async fn get_change(&self, tenant: &TenantId, id: &ChangeId) -> Result<Option<Change>, StoreError> {
        self.read_item(keys::change_pk(tenant, id), keys::META).await
    }

    async fn changes_for_service(&self, q: &ServiceWindowQuery) -> Result<Page<Change>, StoreError> {
        self.service_window(keys::service_pk(&q.tenant, &q.service), q).await
    }

    async fn list_changes(&self, q: &ChangeQuery) -> Result<Page<Change>, StoreError> {
        self.listing_page(q).await
    }

    async fn waiting_for(&self, q: &WaitingQuery) -> Result<Page<Change>, StoreError> {
        self.waiting_page(q).await
    }

    async fn audit_trail(&self, tenant: &TenantId, id: &ChangeId) -> Result<Vec<AuditEntry>, StoreError> {
        let items = self.query_prefix(keys::change_pk(tenant, id), keys::AUDIT_PREFIX).await?;
        items.iter().map(decode).collect()
    }

    async fn audit_entries(
        &self,
        tenant: &TenantId,
        id: &ChangeId,
        seqs: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let (lo, hi) = (keys::audit_sk(*seqs.start()), keys::audit_sk(*seqs.end()));
        let items = self.query_between(keys::change_pk(tenant, id), &lo, &hi).await?;
        items.iter().map(decode).collect()
    }

    async fn change_ids(&self, tenant: &TenantId) -> Result<Vec<ChangeId>, StoreError> {
        let items = self.query_prefix(keys::tenant_changes_pk(tenant), keys::INDEX_PREFIX).await?;
        items
            .iter()
            .map(|item| {
                item.get("change_id").and_then(|v| v.as_s().ok()).and_then(|raw| ChangeId::parse(raw).ok()).ok_or_else(
                    || StoreError::Corrupt {
                        key: keys::tenant_changes_pk(tenant),
                        message: "change list item without change_id".into(),
                    },
                )
            })
            .collect()
    }
}

impl DynamoStore {
    /// A consistent GetItem of an item kept whole in `doc`; none if there is none.
    async fn read_item<T: DeserializeOwned>(&self, pk: String, sk: &str) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.as_ref().map(decode).transpose()
    }

    /// Every item of partition `pk` whose SK starts with `prefix`, in SK
    /// order: one consistent Query, paged past 1 MB.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.query_keys(pk, "begins_with(SK, :lo)", &[(":lo", prefix)]).await
    }

    /// Every item of partition `pk` with `lo <= SK <= hi`, in SK order.
    async fn query_between(&self, pk: String, lo: &str, hi: &str) -> Result<Vec<Item>, StoreError> {
        self.query_keys(pk, "SK BETWEEN :lo AND :hi", &[(":lo", lo), (":hi", hi)]).await
    }

    /// Every item of partition `pk` whose SK meets `sk_condition`: one
    /// consistent Query, paged past 1 MB.
    async fn query_keys(
        &self,
        pk: String,
        sk_condition: &str,
        values: &[(&str, &str)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(format!("PK = :pk AND {sk_condition}"))
                .expression_attribute_values(":pk", s(pk.clone()));
            for (name, value) in values {
                query = query.expression_attribute_values(*name, s(*value));
            }
            let out =
                query.consistent_read(true).set_exclusive_start_key(start.take()).send().await.map_err(classify)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(items),
            }
        }
    }
}

impl DynamoStore {
    /// The writes that insert `change`: its record (if absent), its change
    /// list item, its first audit entry (sealed) and its index entries
    /// (service, listing, waiting).
    async fn insert_writes(&self, change: &Change, entry: &AuditEntry) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut listed = key(keys::tenant_changes_pk(&change.tenant), keys::tenant_changes_sk(&change.id));
        listed.insert("entity".into(), s("change_list"));
        listed.insert("change_id".into(), s(change.id.to_string()));
        let mut writes = vec![
            put(&self.table, Self::change_item(change)?, Some("attribute_not_exists(PK)"))?,
            put(&self.table, listed, None)?,
            put(
                &self.table,
                Self::audit_item(&seal_entry(self.sealer.as_deref(), entry).await?)?,
                Some("attribute_not_exists(PK)"),
            )?,
        ];
        writes.extend(self.index_writes(None, change)?);
        Ok(writes)
    }

    /// The writes of `update`: the record (conditional on the expected
    /// version), its sealed entries (if absent), its index entries moved
    /// from those of [`ChangeUpdate::before`], and the counters.
    async fn update_writes(&self, update: &ChangeUpdate<'_>) -> Result<Vec<TransactWriteItem>, StoreError> {
        let (change, expected) = (update.change, update.expected());
        let mut meta =
            put(&self.table, Self::change_item(change)?, Some("attribute_exists(PK) AND version = :expected"))?;
        if let Some(p) = meta.put.as_mut() {
            p.expression_attribute_values = Some(HashMap::from([(":expected".to_owned(), n(expected))]));
        }
        let mut writes = vec![meta];
        for entry in &seal_entries(self.sealer.as_deref(), update.entries).await? {
            writes.push(put(&self.table, Self::audit_item(entry)?, Some("attribute_not_exists(PK)"))?);
        }
        // Conditional on the version `before` was read at, so its entries are the stored ones.
        writes.extend(self.index_writes(Some(update.before), change)?);
        for (pk, sk, changes, failures) in keys::counter_increments(update) {
            let add = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression("ADD changes :changes, failures :failures SET entity = :entity")
                .expression_attribute_values(":changes", n(changes))
                .expression_attribute_values(":failures", n(failures))
                .expression_attribute_values(":entity", s("counter"))
                .build()
                .map_err(|e| StoreError::backend(false, e))?;
            writes.push(TransactWriteItem::builder().update(add).build());
        }
        for (wait, added) in keys::wait_increments(update) {
            let (pk, sk) = keys::wait_key(&wait);
            let mut adds = vec![
                ("decided".to_owned(), added.decided),
                ("wait_seconds".to_owned(), added.wait_seconds),
                ("escalations".to_owned(), added.escalations),
                ("breaches".to_owned(), added.breaches),
            ];
            adds.extend(added.buckets.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (format!("b{i}"), *n)));
            let expression = adds.iter().map(|(a, _)| format!("{a} :{a}")).collect::<Vec<_>>().join(", ");
            let mut add = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression(format!(
                    "ADD {expression} SET entity = :entity, wait_dimension = :dimension, wait_name = :name"
                ))
                .expression_attribute_values(":entity", s("approval_waits"))
                .expression_attribute_values(":dimension", s(wait.dimension.as_str()))
                .expression_attribute_values(":name", s(wait.name.clone()));
            for (a, v) in adds {
                add = add.expression_attribute_values(format!(":{a}"), n(v));
            }
            writes.push(
                TransactWriteItem::builder().update(add.build().map_err(|e| StoreError::backend(false, e))?).build(),
            );
        }
        Ok(writes)
    }
}

impl ChangeWriter for DynamoStore {
    async fn insert_change(&self, change: &Change, entry: &AuditEntry) -> Result<(), StoreError> {
        let writes = self.insert_writes(change, entry).await?;
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed_at(&e).is_some() => Err(StoreError::AlreadyExists),
            Err(e) => Err(classify_transaction(e)),
        }
    }

    async fn update_change(&self, update: ChangeUpdate<'_>) -> Result<(), StoreError> {
        let writes = self.update_writes(&update).await?;
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed_at(&e).is_some() => {
                Err(self.update_failure(update.change, update.expected()).await)
            }
            Err(e) => Err(classify_transaction(e)),
        }
    }

    async fn insert_linked(
        &self,
        change: &Change,
        entry: &AuditEntry,
        update: ChangeUpdate<'_>,
    ) -> Result<(), StoreError> {
        let mut writes = self.insert_writes(change, entry).await?;
        let inserted = writes.len();
        writes.extend(self.update_writes(&update).await?);
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match condition_failed_at(&e) {
                Some(i) if i < inserted => Err(StoreError::AlreadyExists),
                Some(_) => Err(self.update_failure(update.change, update.expected()).await),
                None => Err(classify_transaction(e)),
            },
        }
    }
}

impl Counters for DynamoStore {
    async fn counts(&self, wanted: &[CounterKey]) -> Result<Vec<Counts>, StoreError> {
        self.read_counters(wanted.iter().map(|k| (keys::counter_pk(k), keys::counter_sk(k))).collect()).await
    }

    async fn volumes(&self, wanted: &[VolumeKey]) -> Result<Vec<u64>, StoreError> {
        let counts = self.read_counters(wanted.iter().map(keys::volume_key).collect()).await?;
        Ok(counts.into_iter().map(|c| c.changes).collect())
    }

    /// One BatchGetItem (per 100 keys) of the outcome counters and one item per service of incident counters.
    async fn history(
        &self,
        outcomes: &[CounterKey],
        incidents: &[crate::ports::IncidentCounterKey],
    ) -> Result<(Vec<Counts>, Vec<crate::ports::IncidentCounts>), StoreError> {
        self.read_history(outcomes, incidents).await
    }

    /// One Query of the month's partition (paged past 1 MB).
    async fn waits(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(WaitDimension, String, WaitCounts)>, StoreError> {
        let items = self.query_prefix(keys::waits_pk(tenant, month), "W#").await?;
        items
            .iter()
            .map(|item| {
                let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let dimension = WaitDimension::ALL
                    .into_iter()
                    .find(|d| d.as_str() == text("wait_dimension"))
                    .ok_or_else(|| StoreError::Corrupt {
                        key: format!("{}/{}", text("PK"), text("SK")),
                        message: "approval-wait counter names no known dimension".into(),
                    })?;
                let mut counts = WaitCounts {
                    decided: num("decided"),
                    wait_seconds: num("wait_seconds"),
                    escalations: num("escalations"),
                    breaches: num("breaches"),
                    ..Default::default()
                };
                for (i, b) in counts.buckets.iter_mut().enumerate() {
                    *b = num(&format!("b{i}"));
                }
                Ok((dimension, text("wait_name"), counts))
            })
            .collect()
    }
}

impl DynamoStore {
    /// The counter items at `wanted`, in order (zero where absent): one BatchGetItem per 100 keys.
    async fn read_counters(&self, wanted: Vec<(String, String)>) -> Result<Vec<Counts>, StoreError> {
        let keys_of: Vec<Item> = wanted.iter().map(|(pk, sk)| key(pk.clone(), sk.clone())).collect();
        let mut found: HashMap<(String, String), Counts> = HashMap::new();
        for item in self.batch_get_items(keys_of, false).await? {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
            found.insert((text("PK"), text("SK")), Counts { changes: num("changes"), failures: num("failures") });
        }
        Ok(wanted.iter().map(|k| found.get(k).copied().unwrap_or_default()).collect())
    }
}

impl DueIndex for DynamoStore {
    async fn due(
        &self,
        partition: &DuePartition,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<Change>, StoreError> {
        let range = keys::due_range(partition, until, after.as_ref())?;
        let page = self.due_page(&range, limit).await?;
        Ok(Page { items: page.items.iter().map(|(_, item)| decode(item)).collect::<Result<_, _>>()?, next: page.next })
    }
}

impl DynamoStore {
    /// A page of the due index's `range` (GSI1), earliest first, with each
    /// item's GSI1SK: the cursor's own item skipped, the last one's sort key
    /// as the next page's cursor when an item is left.
    pub(crate) async fn due_page(
        &self,
        range: &keys::DueRange,
        limit: usize,
    ) -> Result<Page<(String, Item)>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        let mut last: Option<String> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(TABLE.global_indexes[0].0)
                .expression_attribute_values(":pk", s(range.pk.clone()))
                .expression_attribute_values(":hi", s(range.hi.clone()))
                .set_exclusive_start_key(start.take())
                .limit((limit + 1) as i32);
            query = match &range.after {
                Some(a) => query
                    .key_condition_expression("GSI1PK = :pk AND GSI1SK BETWEEN :lo AND :hi")
                    .expression_attribute_values(":lo", s(a.clone())),
                None => query.key_condition_expression("GSI1PK = :pk AND GSI1SK <= :hi"),
            };
            let out = query.send().await.map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let sk = item.get("GSI1SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if range.after.as_deref() == Some(sk.as_str()) {
                    continue;
                }
                if items.len() == limit {
                    return Ok(Page { items, next: last.map(Cursor::issued) });
                }
                last = Some(sk.clone());
                items.push((sk, item));
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(Page { items, next: None }),
            }
        }
    }
}

/// `state` of a dedupe claim: leased by work in progress, or done.
const LEASED: &str = "leased";
const DONE: &str = "done";

impl DynamoStore {
    fn claim_item(key_str: &str, state: &str, owner: &str, expires: DateTime<Utc>) -> Item {
        let mut item = key(keys::idem_pk(key_str), keys::IDEM_SK);
        item.insert("entity".into(), s("dedupe"));
        item.insert("state".into(), s(state));
        if !owner.is_empty() {
            item.insert("owner".into(), s(owner));
        }
        item.insert(TABLE.ttl_attribute.into(), n(expires.timestamp()));
        item
    }

    /// Why a claim was refused: a live done key makes it a duplicate, else it
    /// is in progress. One consistent GetItem per key (at most three, and
    /// only on this path), within the function's existing GetItem permission.
    async fn claim_refused(&self, keys_str: &[String], now: DateTime<Utc>) -> Result<Claim, StoreError> {
        for k in keys_str {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::idem_pk(k), keys::IDEM_SK)))
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            let Some(item) = out.item else { continue };
            let live = item
                .get(TABLE.ttl_attribute)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|exp| exp > now.timestamp());
            // Claims written before leases existed have no state: they were done.
            if live && item.get("state").and_then(|v| v.as_s().ok()).is_none_or(|state| state == DONE) {
                return Ok(Claim::Duplicate);
            }
        }
        Ok(Claim::InProgress)
    }
}

impl Dedupe for DynamoStore {
    async fn claim(
        &self,
        keys_str: &[String],
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let expires = expiry(now, lease);
        // TTL deletion is lazy (it can lag by days), so expired claims and leases are taken over here.
        let mut txn = self.client.transact_write_items();
        for k in keys_str {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(Self::claim_item(k, LEASED, owner, expires)))
                .condition_expression("attribute_not_exists(PK) OR #exp <= :now")
                .expression_attribute_names("#exp", TABLE.ttl_attribute)
                .expression_attribute_values(":now", n(now.timestamp()))
                .build()
                .map_err(|e| StoreError::backend(false, e))?;
            txn = txn.transact_items(TransactWriteItem::builder().put(put).build());
        }
        match txn.send().await {
            Ok(_) => Ok(Claim::New),
            Err(e) if condition_failed_at(&e).is_some() => self.claim_refused(keys_str, now).await,
            // DynamoDB cancels concurrent transactions on the same items
            // (moto runs them one at a time): another copy is claiming them.
            Err(e) if cancelled_by_conflict(&e) => Ok(Claim::InProgress),
            Err(e) => Err(classify_transaction(e)),
        }
    }

    async fn complete(&self, keys_str: &[String], now: DateTime<Utc>, ttl: Duration) -> Result<(), StoreError> {
        let expires = expiry(now, ttl);
        let mut txn = self.client.transact_write_items();
        for k in keys_str {
            txn = txn.transact_items(put(&self.table, Self::claim_item(k, DONE, "", expires), None)?);
        }
        txn.send().await.map_err(classify_transaction)?;
        Ok(())
    }

    async fn release(&self, keys_str: &[String], owner: &str) -> Result<(), StoreError> {
        // One delete per key (at most three, and only after a failed
        // publish), each conditional, so that a done key, or a lease another
        // attempt took over, is never removed.
        for k in keys_str {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::idem_pk(k), keys::IDEM_SK)))
                .condition_expression("#state = :leased AND #owner = :owner")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":leased", s(LEASED))
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
    }
}

impl DynamoStore {
    /// An activity row: the row whole in `doc`, beside the attributes the
    /// query filters on and the TTL attribute.
    fn activity_item(tenant: &TenantId, row: &Activity) -> Result<Item, StoreError> {
        let mut item = key(keys::activity_pk(tenant), keys::activity_sk(row.occurred_at, &row.event_id));
        item.insert("entity".into(), s("activity"));
        item.insert("source".into(), s(row.source.as_str()));
        item.insert("detail_type".into(), s(row.detail_type.as_str()));
        if let Some(service) = &row.service {
            item.insert("service".into(), s(service.as_str()));
        }
        item.insert(TABLE.ttl_attribute.into(), n(row.expires_at.timestamp()));
        item.insert(DOC.into(), doc_of(row)?);
        Ok(item)
    }
}

impl ActivityLog for DynamoStore {
    /// One PutItem per row, replacing any row of the same event.
    async fn record(&self, tenant: &TenantId, rows: &[Activity]) -> Result<(), StoreError> {
        for row in rows {
            let item = Self::activity_item(tenant, row)?;
            self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        }
        Ok(())
    }

    /// One Query: the range newest first, `Limit` = the rows a page
    /// evaluates, the filters and the expiry as a filter expression.
    async fn activity(&self, q: &ActivityQuery) -> Result<Page<Activity>, StoreError> {
        let Some(range) = keys::activity_range(q)? else { return Ok(Page { items: vec![], next: None }) };
        let mut filter = vec!["#exp > :now".to_owned()];
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(range.pk.clone()))
            .expression_attribute_values(":lo", s(range.lo))
            .expression_attribute_values(":hi", s(range.hi))
            .expression_attribute_names("#exp", TABLE.ttl_attribute)
            .expression_attribute_values(":now", n(q.now.timestamp()))
            .scan_index_forward(false)
            .limit(i32::try_from(q.evaluated()).unwrap_or(i32::MAX))
            .set_exclusive_start_key(range.below.map(|below| key(range.pk, below)));
        for (attr, name, value, wanted) in [
            ("#service", "service", ":service", &q.service),
            ("#source", "source", ":source", &q.source),
            ("#type", "detail_type", ":type", &q.detail_type),
        ] {
            if let Some(wanted) = wanted {
                query =
                    query.expression_attribute_names(attr, name).expression_attribute_values(value, s(wanted.as_str()));
                filter.push(format!("{attr} = {value}"));
            }
        }
        let out = query.filter_expression(filter.join(" AND ")).send().await.map_err(classify)?;
        filtered_page(out.items.unwrap_or_default(), out.last_evaluated_key.as_ref(), q.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    fn cancelled(codes: &[&str]) -> SdkError<TransactWriteItemsError, ()> {
        let reasons = codes.iter().map(|c| CancellationReason::builder().code(*c).build()).collect();
        let err = TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons)).build();
        SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(err), ())
    }

    #[test]
    fn a_transaction_cancelled_by_a_conflict_is_retryable() {
        let e = classify_transaction(cancelled(&["None", "TransactionConflict"]));
        assert!(matches!(e, StoreError::Backend { retryable: true, .. }), "{e:?}");
        let e = classify_transaction(cancelled(&["ThrottlingError"]));
        assert!(matches!(e, StoreError::Backend { retryable: true, .. }), "{e:?}");
    }

    #[test]
    fn a_claim_cancelled_by_a_concurrent_claim_is_seen_as_in_progress() {
        assert!(cancelled_by_conflict(&cancelled(&["None", "TransactionConflict"])));
        assert!(!cancelled_by_conflict(&cancelled(&["ConditionalCheckFailed"])));
        assert_eq!(condition_failed_at(&cancelled(&["None", "ConditionalCheckFailed"])), Some(1));
    }

    #[test]
    fn a_transaction_cancelled_for_a_bad_request_is_not_retryable() {
        let e = classify_transaction(cancelled(&["ValidationError"]));
        assert!(matches!(e, StoreError::Backend { retryable: false, .. }), "{e:?}");
    }
}
