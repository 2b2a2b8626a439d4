//! The embedded store's index entries (service, listing, waiting): the
//! writes that move them with a change, and the window and waiting queries.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};

use super::{EmbeddedStore, ITEMS, backend, decode, encode, get_item};
use crate::adapters::FoundOnce;
use crate::adapters::keys::{self, IndexItem};
use crate::domain::{Change, ChangeId, TenantId};
use crate::ports::{
    ChangeQuery, Cursor, ImplementationQuery, Implemented, InvalidCursor, Page, ReadCost, ServiceWindowQuery,
    StoreError, WaitingQuery,
};

/// Moves a change's index entries (service, listing, waiting) from those of
/// `before` to those of `after` ([`keys::index_writes`]).
pub(super) fn reindex(
    table: &mut redb::Table<(&str, &str), &[u8]>,
    before: Option<&Change>,
    after: &Change,
) -> Result<(), StoreError> {
    let writes = keys::index_writes(before, after);
    for (pk, sk) in &writes.deletes {
        table.remove((pk.as_str(), sk.as_str())).map_err(backend)?;
    }
    for ((pk, sk), item) in &writes.puts {
        table.insert((pk.as_str(), sk.as_str()), encode(item)?.as_slice()).map_err(backend)?;
    }
    Ok(())
}

/// The record an index item names; an index naming a missing change is corrupt.
fn get_change_item(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    tenant: &TenantId,
    id: &ChangeId,
) -> Result<Change, StoreError> {
    let pk = keys::change_pk(tenant, id);
    get_item(table, &pk, keys::META)?
        .ok_or_else(|| StoreError::Corrupt { key: pk, message: "an index item names a missing change".into() })
}

/// A page of a start-sorted index (service or listing) in `range`: at most
/// `evaluate` items after the cursor are read; of those still running at
/// `from` and that `admits` keeps, up to `limit` records. The cursor is the
/// last key returned when there are more, or the last key read when the read
/// stopped at `evaluate` (as DynamoDB's `Limit` and `LastEvaluatedKey` do).
#[allow(clippy::too_many_arguments)]
pub(super) fn window_page(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    pk: &str,
    range: &keys::SkRange,
    tenant: &TenantId,
    from: DateTime<Utc>,
    limit: usize,
    evaluate: usize,
    admits: impl Fn(&IndexItem) -> bool,
) -> Result<Page<Change>, StoreError> {
    let mut items = Vec::new();
    let (mut evaluated, mut last_sk) = (0, None::<String>);
    for row in table.range((pk, range.lo.as_str())..=(pk, range.hi.as_str())).map_err(backend)? {
        let (k, v) = row.map_err(backend)?;
        let sk = k.value().1;
        if range.after.as_deref() == Some(sk) {
            continue;
        }
        if evaluated == evaluate {
            return Ok(Page { items, next: last_sk.map(Cursor::issued) });
        }
        evaluated += 1;
        let idx: IndexItem = decode(pk, sk, v.value())?;
        let planned_end = idx.planned_end.ok_or_else(|| StoreError::Corrupt {
            key: format!("{pk}/{sk}"),
            message: "index item without planned_end".into(),
        })?;
        if range.keeps(sk, planned_end, from) && admits(&idx) {
            if items.len() == limit {
                return Ok(Page { items, next: last_sk.map(Cursor::issued) });
            }
            items.push(get_change_item(table, tenant, &idx.change_id)?);
        }
        last_sk = Some(sk.to_owned());
    }
    Ok(Page { items, next: None })
}

impl EmbeddedStore {
    pub(super) async fn listing_page(&self, q: &ChangeQuery) -> Result<Page<Change>, StoreError> {
        let range = keys::window_range(q.from, q.to, q.after.as_ref())?;
        let q = q.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let admits = |item: &IndexItem| item.listing.as_ref().is_some_and(|l| q.filter.admits(l));
            let pk = keys::plan_pk(&q.tenant);
            window_page(&table, &pk, &range, &q.tenant, q.from, q.limit, q.evaluate, admits)
        })
        .await
    }

    pub(super) async fn waiting_page(&self, q: &WaitingQuery) -> Result<Page<Change>, StoreError> {
        if q.after.as_deref().is_some_and(|c| !keys::waiting_cursor_is_valid(c)) {
            return Err(InvalidCursor.into());
        }
        let q = q.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let after = q.after.as_deref().unwrap_or_default();
            let mut found: Vec<(String, ChangeId)> = Vec::new();
            for who in &q.who {
                let pk = keys::waiting_pk(&q.tenant, who);
                let rows = table.range((pk.as_str(), after)..(pk.as_str(), "~")).map_err(backend)?;
                for row in rows.take(q.limit + 2) {
                    let (k, v) = row.map_err(backend)?;
                    let sk = k.value().1;
                    if sk != after {
                        found.push((sk.to_owned(), decode::<IndexItem>(&pk, sk, v.value())?.change_id));
                    }
                }
            }
            let (ids, next) = crate::adapters::merge_waiting(found, q.limit);
            let items = ids.iter().map(|id| get_change_item(&table, &q.tenant, id)).collect::<Result<_, _>>()?;
            Ok(Page { items, next })
        })
        .await
    }
}

impl crate::ports::ImplementationReader for EmbeddedStore {
    /// One range read per service and class, then the records, counted as
    /// DynamoDB would count them (a Query per range, a BatchGetItem per 100).
    async fn implemented(&self, q: &ImplementationQuery) -> Result<Implemented, StoreError> {
        let q = q.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let (mut cost, mut found) = (ReadCost::default(), FoundOnce::default());
            for (pk, range) in keys::implementation_ranges(&q) {
                cost.calls += 1;
                for row in
                    table.range((pk.as_str(), range.lo.as_str())..=(pk.as_str(), range.hi.as_str())).map_err(backend)?
                {
                    let (k, v) = row.map_err(backend)?;
                    let sk = k.value().1;
                    cost.items += 1;
                    found.keep(&q, sk, &decode(&pk, sk, v.value())?)?;
                }
            }
            let changes: Vec<Change> =
                found.ids.iter().map(|id| get_change_item(&table, &q.tenant, id)).collect::<Result<_, _>>()?;
            cost += ReadCost { calls: found.ids.len().div_ceil(100), items: changes.len() };
            Ok(Implemented { changes, cost })
        })
        .await
    }

    async fn plannable(&self, q: &ServiceWindowQuery) -> Result<Page<Change>, StoreError> {
        self.service_window(keys::plannable_pk(&q.tenant, &q.service), q).await
    }
}

impl crate::ports::IndexRestore for EmbeddedStore {
    /// One write transaction: the record read, and at its version each index entry put.
    async fn restore_index(&self, change: &Change) -> Result<bool, StoreError> {
        let change = change.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let written = {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let pk = keys::change_pk(&change.tenant, &change.id);
                let stored: Option<Change> = get_item(&table, &pk, keys::META)?;
                match stored {
                    Some(stored) if stored.version == change.version => {
                        for ((pk, sk), item) in keys::index_entries(&stored) {
                            table.insert((pk.as_str(), sk.as_str()), encode(&item)?.as_slice()).map_err(backend)?;
                        }
                        true
                    }
                    _ => false,
                }
            };
            txn.commit().map_err(backend)?;
            Ok(written)
        })
        .await
    }
}
