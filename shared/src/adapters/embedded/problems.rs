//! The embedded store's problems, recent-incident rings and incident counters.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{EmbeddedStore, ITEMS, backend, decode, encode, get_item};
use crate::adapters::keys;
use crate::domain::problem::{Problem, ProblemId, RecentIncidents};
use crate::domain::{ServiceName, TenantId};
use crate::ports::{
    Counted, IncidentCounterKey, IncidentCounts, IncidentWrite, PROBLEMS_EVALUATED, Page, ProblemQuery, ProblemStore,
    RecurrenceState, StoreError,
};

/// A service's incident counters, by month (DynamoDB keeps them as attributes of one item).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct IncidentCounterItem {
    months: BTreeMap<String, MonthCounts>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct MonthCounts {
    incidents: u64,
    change_related: u64,
    problems: u64,
}

/// The counts of each key, read from the items of `table`, one item per service.
pub(super) fn incident_counts(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    wanted: &[IncidentCounterKey],
) -> Result<Vec<IncidentCounts>, StoreError> {
    let mut items: BTreeMap<(String, String), IncidentCounterItem> = BTreeMap::new();
    wanted
        .iter()
        .map(|k| {
            let item = match items.entry(keys::incident_counter_key(&k.tenant, &k.service)) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let (pk, sk) = e.key();
                    let stored = get_item(table, pk, sk)?.unwrap_or_default();
                    e.insert(stored)
                }
            };
            let month = item.months.get(&k.month).copied().unwrap_or_default();
            Ok(IncidentCounts {
                incidents: month.incidents,
                change_related: month.change_related,
                problems: month.problems,
            })
        })
        .collect()
}

/// Whether a conditional item is as the caller read it.
fn unchanged<T: PartialEq>(stored: Option<T>, expected: Option<T>) -> Result<(), StoreError> {
    if stored == expected { Ok(()) } else { Err(StoreError::VersionConflict { expected: 0 }) }
}

impl ProblemStore for EmbeddedStore {
    async fn recurrence(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        incident_id: &str,
    ) -> Result<RecurrenceState, StoreError> {
        let (cpk, csk) = keys::counted_key(tenant, incident_id);
        let (rpk, rsk) = keys::recent_key(tenant, service);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            Ok(RecurrenceState {
                counted: get_item(&table, &cpk, &csk)?,
                recent: get_item(&table, &rpk, &rsk)?.unwrap_or_default(),
            })
        })
        .await
    }

    async fn record_incident(&self, w: IncidentWrite<'_>) -> Result<(), StoreError> {
        let (cpk, csk) = keys::counted_key(w.tenant, w.incident_id);
        let (rpk, rsk) = keys::recent_key(w.tenant, w.service);
        let (ipk, isk) = keys::incident_counter_key(w.tenant, w.service);
        let (counted_before, counted, recent) = (w.counted_before, w.counted, w.recent.clone());
        let (month, add, problem) = (w.month.to_owned(), w.add, w.problem.cloned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                unchanged(get_item::<Counted>(&table, &cpk, &csk)?, counted_before)?;
                let stored: Option<RecentIncidents> = get_item(&table, &rpk, &rsk)?;
                let before = recent.version.saturating_sub(1);
                unchanged(stored.map(|r| r.version).filter(|v| *v > 0), (before > 0).then_some(before))?;
                if let Some(p) = &problem {
                    let (ppk, psk) = (keys::problems_pk(&p.tenant), keys::problem_sk(&p.id));
                    let stored: Option<Problem> = get_item(&table, &ppk, &psk)?;
                    let before = p.version.saturating_sub(1);
                    unchanged(stored.map(|s| s.version), (before > 0).then_some(before))?;
                    table.insert((ppk.as_str(), psk.as_str()), encode(p)?.as_slice()).map_err(backend)?;
                }
                table.insert((cpk.as_str(), csk.as_str()), encode(&counted)?.as_slice()).map_err(backend)?;
                table.insert((rpk.as_str(), rsk.as_str()), encode(&recent)?.as_slice()).map_err(backend)?;
                let mut counters: IncidentCounterItem = get_item(&table, &ipk, &isk)?.unwrap_or_default();
                let m = counters.months.entry(month).or_default();
                m.incidents += add.incidents;
                m.change_related += add.change_related;
                m.problems += add.problems;
                table.insert((ipk.as_str(), isk.as_str()), encode(&counters)?.as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn get_problem(&self, tenant: &TenantId, id: &ProblemId) -> Result<Option<Problem>, StoreError> {
        let (pk, sk) = (keys::problems_pk(tenant), keys::problem_sk(id));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            get_item(&table, &pk, &sk)
        })
        .await
    }

    async fn put_problem(&self, problem: &Problem) -> Result<(), StoreError> {
        let (pk, sk) = (keys::problems_pk(&problem.tenant), keys::problem_sk(&problem.id));
        self.replace_versioned(pk, sk, problem.clone(), problem.version, |p: &Problem| p.version, false).await
    }

    async fn list_problems(&self, q: &ProblemQuery) -> Result<Page<Problem>, StoreError> {
        let range = keys::problem_range(q.after.as_ref())?;
        let (rows, more) = self.newest_rows(keys::problems_pk(&q.tenant), range, PROBLEMS_EVALUATED).await?;
        Ok(keys::problem_page(rows, more, q))
    }
}

impl EmbeddedStore {
    /// Stores `item` (at `version`) where the stored one is at `version - 1`,
    /// else `VersionConflict` (`NotFound` when nothing is stored and
    /// `version` is past 1, unless `create` allows a first version).
    pub(super) async fn replace_versioned<T: Serialize + serde::de::DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        sk: String,
        item: T,
        version: u64,
        version_of: fn(&T) -> u64,
        create: bool,
    ) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let expected = version.saturating_sub(1);
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                match get_item::<T>(&table, &pk, &sk)? {
                    None if create && expected == 0 => {}
                    None if create => return Err(StoreError::VersionConflict { expected }),
                    None => return Err(StoreError::NotFound),
                    Some(stored) if version_of(&stored) != expected => {
                        return Err(StoreError::VersionConflict { expected });
                    }
                    Some(_) => {}
                };
                table.insert((pk.as_str(), sk.as_str()), encode(&item)?.as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    /// At most `max` rows of `range` in partition `pk`, newest first, the
    /// cursor's own skipped, and whether more remain.
    pub(super) async fn newest_rows<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        range: keys::SkRange,
        max: usize,
    ) -> Result<(Vec<(String, T)>, bool), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let mut rows = Vec::new();
            let mut more = false;
            for row in
                table.range((pk.as_str(), range.lo.as_str())..=(pk.as_str(), range.hi.as_str())).map_err(backend)?.rev()
            {
                let (k, v) = row.map_err(backend)?;
                let sk = k.value().1;
                if range.after.as_deref() == Some(sk) {
                    continue;
                }
                if rows.len() == max {
                    more = true;
                    break;
                }
                rows.push((sk.to_owned(), decode(&pk, sk, v.value())?));
            }
            Ok((rows, more))
        })
        .await
    }
}
