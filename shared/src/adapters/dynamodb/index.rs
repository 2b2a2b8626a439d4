//! The DynamoDB store's index entries (service, listing, waiting): their
//! attributes, the writes that move them with a change, and the listing
//! and waiting queries.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::{DynamoStore, Item, classify, key, put, s};
use crate::adapters::FoundOnce;
use crate::adapters::keys::{self, IndexItem};
use crate::domain::correlation::{Implementation, Outcome};
use crate::domain::{Change, ChangeId};
use crate::ports::{
    ChangeQuery, Cursor, ImplementationQuery, Implemented, InvalidCursor, Listing, Page, ReadCost, StoreError,
    WaitingQuery,
};

/// An index item's attributes: its key, the change it names, and what the
/// window test and the listing filters read.
fn index_attributes(pk: String, sk: String, idx: &IndexItem) -> Item {
    let mut item = key(pk, sk);
    let entity = match (&idx.listing, idx.planned_end, idx.implementation) {
        (Some(_), _, _) => "change_listing",
        (None, Some(_), _) => "change_index",
        (None, None, Some(_)) => "change_implementation",
        (None, None, None) => "change_waiting",
    };
    item.insert("entity".into(), s(entity));
    item.insert("change_id".into(), s(idx.change_id.to_string()));
    if let Some(end) = idx.planned_end {
        item.insert("planned_end".into(), s(keys::time_key(end)));
    }
    if let Some(i) = idx.implementation {
        item.insert("started_at".into(), s(keys::time_key(i.started_at())));
        if let Implementation::Finished { ended_at, outcome, .. } = i {
            item.insert("ended_at".into(), s(keys::time_key(ended_at)));
            item.insert("outcome".into(), s(outcome_name(outcome)));
        }
    }
    if let Some(l) = &idx.listing {
        item.insert("state".into(), s(l.state.as_str()));
        item.insert("change_type".into(), s(l.change_type.as_str()));
        item.insert("requester".into(), s(l.requester.clone()));
        item.insert("services".into(), AttributeValue::Ss(l.services.iter().map(|x| x.to_string()).collect()));
    }
    item
}

/// An index item read back: its sort key and what it holds.
pub(super) fn index_item_of(item: &Item) -> Result<(String, IndexItem), StoreError> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
    let sk = text("SK").cloned().unwrap_or_default();
    let corrupt = |message: &str| StoreError::Corrupt { key: sk.clone(), message: message.into() };
    let change_id = text("change_id")
        .and_then(|raw| ChangeId::parse(raw).ok())
        .ok_or_else(|| corrupt("index item without change_id"))?;
    let time = |name: &str| match text(name) {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| corrupt(&format!("index item with a bad {name}"))),
        None => Ok(None),
    };
    let planned_end = time("planned_end")?;
    let implementation = match (time("started_at")?, time("ended_at")?, text("outcome")) {
        (None, _, _) => None,
        (Some(started_at), None, _) => Some(Implementation::Ongoing { started_at }),
        (Some(started_at), Some(ended_at), Some(outcome)) => {
            let outcome = parse::<Outcome>(Some(outcome))
                .and_then(Result::ok)
                .ok_or_else(|| corrupt("implementation item with a bad outcome"))?;
            Some(Implementation::Finished { started_at, ended_at, outcome })
        }
        (Some(_), Some(_), None) => return Err(corrupt("implementation item without an outcome")),
    };
    fn parse<T: DeserializeOwned>(raw: Option<&String>) -> Option<Result<T, serde_json::Error>> {
        raw.map(|v| serde_json::from_value(serde_json::Value::String(v.clone())))
    }
    let listing = match (parse(text("state")), parse(text("change_type")), text("requester")) {
        (Some(state), Some(change_type), Some(requester)) => {
            let services = item
                .get("services")
                .and_then(|v| v.as_ss().ok())
                .map(|names| names.iter().map(|n| crate::domain::ServiceName::parse(n)).collect::<Result<Vec<_>, _>>())
                .transpose()
                .map_err(|_| corrupt("listing item with a bad service"))?
                .unwrap_or_default();
            Some(Listing {
                state: state.map_err(|_| corrupt("listing item with a bad state"))?,
                change_type: change_type.map_err(|_| corrupt("listing item with a bad change_type"))?,
                requester: requester.clone(),
                services,
            })
        }
        _ => None,
    };
    Ok((sk, IndexItem { change_id, planned_end, listing, implementation }))
}

/// An outcome as the implementation index stores it (its JSON name).
fn outcome_name(outcome: Outcome) -> String {
    match serde_json::to_value(outcome) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{outcome:?}"),
    }
}

/// A window index item's planned end (service and listing indexes carry one).
pub(super) fn windowed_end(sk: &str, idx: &IndexItem) -> Result<DateTime<Utc>, StoreError> {
    idx.planned_end
        .ok_or_else(|| StoreError::Corrupt { key: sk.to_owned(), message: "index item without planned_end".into() })
}

/// The listing filter as a `FilterExpression` on the listing item's
/// attributes and its values; none when nothing filters.
fn filter_expression(f: &crate::ports::ChangeFilter) -> Option<(String, Vec<(&'static str, AttributeValue)>)> {
    let conditions = [
        f.state.map(|v| ("#state = :state", ":state", s(v.as_str()))),
        f.change_type.map(|v| ("change_type = :type", ":type", s(v.as_str()))),
        f.requester.as_ref().map(|v| ("requester = :requester", ":requester", s(v.clone()))),
        f.service.as_ref().map(|v| ("contains(services, :service)", ":service", s(v.as_str()))),
    ];
    let given: Vec<_> = conditions.into_iter().flatten().collect();
    if given.is_empty() {
        return None;
    }
    let expression = given.iter().map(|(c, _, _)| *c).collect::<Vec<_>>().join(" AND ");
    Some((expression, given.into_iter().map(|(_, name, value)| (name, value)).collect()))
}

impl DynamoStore {
    /// The deletes and puts that move a change's index entries from those of
    /// `before` to those of `after` ([`keys::index_writes`]).
    pub(super) fn index_writes(
        &self,
        before: Option<&Change>,
        after: &Change,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let writes = keys::index_writes(before, after);
        let mut items = Vec::with_capacity(writes.deletes.len() + writes.puts.len());
        for (pk, sk) in writes.deletes {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .build()
                .map_err(|e| StoreError::backend(false, e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        for ((pk, sk), idx) in writes.puts {
            items.push(put(&self.table, index_attributes(pk, sk, &idx), None)?);
        }
        Ok(items)
    }

    /// One Query of the listing index, `Limit` = the entries to evaluate
    /// (plus the cursor's own, which the range starts at), the filter as a
    /// `FilterExpression`; then one BatchGetItem of the page.
    pub(super) async fn listing_page(&self, q: &ChangeQuery) -> Result<Page<Change>, StoreError> {
        let range = keys::window_range(q.from, q.to, q.after.as_ref())?;
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(keys::plan_pk(&q.tenant)))
            .expression_attribute_values(":lo", s(range.lo.clone()))
            .expression_attribute_values(":hi", s(range.hi.clone()))
            .limit((q.evaluate + usize::from(range.after.is_some())) as i32)
            .consistent_read(true);
        if let Some((expression, values)) = filter_expression(&q.filter) {
            query = query.filter_expression(expression);
            if q.filter.state.is_some() {
                // `state` is a reserved word.
                query = query.expression_attribute_names("#state", "state");
            }
            for (name, value) in values {
                query = query.expression_attribute_values(name, value);
            }
        }
        let out = query.send().await.map_err(classify)?;
        let (mut ids, mut last_sk, mut more) = (Vec::new(), None, false);
        for item in out.items.unwrap_or_default() {
            let (sk, idx) = index_item_of(&item)?;
            if range.after.as_deref() == Some(sk.as_str()) || !range.keeps(&sk, windowed_end(&sk, &idx)?, q.from) {
                continue;
            }
            if ids.len() == q.limit {
                more = true;
                break;
            }
            ids.push(idx.change_id);
            last_sk = Some(sk);
        }
        let evaluated_to = out.last_evaluated_key.as_ref().and_then(|k| k.get("SK")).and_then(|v| v.as_s().ok());
        let next = match (more, evaluated_to) {
            (true, _) => last_sk,
            (false, Some(sk)) => Some(sk.clone()),
            (false, None) => None,
        };
        let items = self.batch_get(&q.tenant, &ids).await?;
        Ok(Page { items, next: next.map(Cursor::issued) })
    }

    /// One Query per principal (at most `limit + 1` entries after the
    /// cursor each), merged; then one BatchGetItem of the page.
    pub(super) async fn waiting_page(&self, q: &WaitingQuery) -> Result<Page<Change>, StoreError> {
        if q.after.as_deref().is_some_and(|c| !keys::waiting_cursor_is_valid(c)) {
            return Err(InvalidCursor.into());
        }
        let mut found = Vec::new();
        for who in &q.who {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(keys::waiting_pk(&q.tenant, who)))
                .limit((q.limit + 1) as i32)
                .consistent_read(true);
            query = match q.after.as_deref() {
                Some(after) => query
                    .key_condition_expression("PK = :pk AND SK > :after")
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("PK = :pk"),
            };
            for item in query.send().await.map_err(classify)?.items.unwrap_or_default() {
                let (sk, idx) = index_item_of(&item)?;
                found.push((sk, idx.change_id));
            }
        }
        let (ids, next) = crate::adapters::merge_waiting(found, q.limit);
        Ok(Page { items: self.batch_get(&q.tenant, &ids).await?, next })
    }
}

impl crate::ports::ImplementationReader for DynamoStore {
    /// One Query per service and class (paged past 1 MB), then one
    /// BatchGetItem per 100 changes found.
    async fn implemented(&self, q: &ImplementationQuery) -> Result<Implemented, StoreError> {
        let (mut cost, mut found) = (ReadCost::default(), FoundOnce::default());
        for (pk, range) in keys::implementation_ranges(q) {
            let mut start = None;
            loop {
                let out = self
                    .range_query(pk.clone(), &range)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(classify)?;
                let items = out.items.unwrap_or_default();
                cost += ReadCost { calls: 1, items: items.len() };
                for item in &items {
                    let (sk, idx) = index_item_of(item)?;
                    found.keep(q, &sk, &idx)?;
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        let changes = self.batch_get(&q.tenant, &found.ids).await?;
        cost += ReadCost { calls: found.ids.len().div_ceil(100), items: changes.len() };
        Ok(Implemented { changes, cost })
    }

    async fn plannable(&self, q: &crate::ports::ServiceWindowQuery) -> Result<crate::ports::Page<Change>, StoreError> {
        self.service_window(keys::plannable_pk(&q.tenant, &q.service), q).await
    }
}

impl crate::ports::IndexRestore for DynamoStore {
    /// One transaction: a condition check of the record's version and a
    /// Put of each index entry.
    async fn restore_index(&self, change: &Change) -> Result<bool, StoreError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(keys::change_pk(&change.tenant, &change.id), keys::META)))
            .condition_expression("version = :version")
            .expression_attribute_values(":version", super::n(change.version))
            .build()
            .map_err(|e| StoreError::backend(false, e))?;
        let mut txn = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build());
        for ((pk, sk), idx) in keys::index_entries(change) {
            txn = txn.transact_items(put(&self.table, index_attributes(pk, sk, &idx), None)?);
        }
        match txn.send().await {
            Ok(_) => Ok(true),
            Err(e) if super::condition_failed_at(&e).is_some() => Ok(false),
            Err(e) => Err(super::classify_transaction(e)),
        }
    }
}
