//! The embedded store: one redb file, laid out like the DynamoDB table (same
//! keys, see [`super::keys`]), with the same conditions checked inside one
//! serializable write transaction. Every commit is durable when it returns.

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{expiry, keys};
use crate::domain::{AuditEntry, Change, ChangeId, TenantId};
use crate::ports::{
    Activity, ActivityLog, ActivityQuery, AuditSealer, ChangeQuery, ChangeReader, ChangeUpdate, ChangeWriter, Claim,
    CounterKey, Counters, Counts, Cursor, Dedupe, DueIndex, DuePartition, IncidentCounterKey, IncidentCounts, Page,
    ServiceWindowQuery, StoreError, VolumeKey, WaitCounts, WaitDimension, WaitKey, WaitingQuery, seal_entries,
    seal_entry,
};

mod findings;
mod incidents;
mod index;
mod problems;
mod production;
mod protection;
mod pulls;
mod trails;

use index::{reindex, window_page};

/// (PK, SK) → JSON document.
const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// The due index, as DynamoDB's GSI1: (GSI1PK, GSI1SK) → the change's PK.
const GSI1: TableDefinition<(&str, &str), &str> = TableDefinition::new("gsi1");

#[derive(Debug, Default, Serialize, Deserialize)]
struct CounterItem {
    changes: u64,
    failures: u64,
}

/// One approval-wait counter, as the DynamoDB item holds it.
#[derive(Debug, Serialize, Deserialize)]
struct WaitItem {
    dimension: WaitDimension,
    name: String,
    decided: u64,
    wait_seconds: u64,
    buckets: Vec<u64>,
    escalations: u64,
    breaches: u64,
}

impl WaitItem {
    fn counts(&self) -> WaitCounts {
        let mut c = WaitCounts {
            decided: self.decided,
            wait_seconds: self.wait_seconds,
            escalations: self.escalations,
            breaches: self.breaches,
            ..Default::default()
        };
        for (b, n) in c.buckets.iter_mut().zip(&self.buckets) {
            *b = *n;
        }
        c
    }

    /// Adds `added` to the counter item (absent: zero) of `key`.
    fn add(
        table: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
        key: &WaitKey,
        added: &WaitCounts,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::wait_key(key);
        let mut counts = match get_item::<WaitItem>(&*table, &pk, &sk)? {
            Some(item) => item.counts(),
            None => WaitCounts::default(),
        };
        counts.add(added);
        let item = WaitItem {
            dimension: key.dimension,
            name: key.name.clone(),
            decided: counts.decided,
            wait_seconds: counts.wait_seconds,
            buckets: counts.buckets.to_vec(),
            escalations: counts.escalations,
            breaches: counts.breaches,
        };
        table.insert((pk.as_str(), sk.as_str()), encode(&item)?.as_slice()).map_err(backend)?;
        Ok(())
    }
}

/// Moves a change's due-index entry from its old record's key to its new one's.
fn reindex_due(
    gsi: &mut redb::Table<(&str, &str), &str>,
    old: Option<&Change>,
    new: &Change,
    pk: &str,
) -> Result<(), StoreError> {
    move_due(gsi, old.and_then(keys::due_keys), keys::due_keys(new), pk)
}

/// Moves an item's due entry (GSI1) from `before` to `after` (either may be
/// none), pointing at the item's `pk`; nothing when they are the same.
fn move_due(
    gsi: &mut redb::Table<(&str, &str), &str>,
    before: Option<(String, String)>,
    after: Option<(String, String)>,
    pk: &str,
) -> Result<(), StoreError> {
    if before == after {
        return Ok(());
    }
    if let Some((gpk, gsk)) = before {
        gsi.remove((gpk.as_str(), gsk.as_str())).map_err(backend)?;
    }
    if let Some((gpk, gsk)) = after {
        gsi.insert((gpk.as_str(), gsk.as_str()), pk).map_err(backend)?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimItem {
    expires_at: DateTime<Utc>,
    /// The attempt holding a lease.
    #[serde(default)]
    owner: String,
    /// Leased (work in progress) or done. Claims written before leases existed were done.
    #[serde(default = "done_by_default")]
    done: bool,
}

fn done_by_default() -> bool {
    true
}

/// A committed mutation, as a DynamoDB stream record would carry it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub change: Change,
    pub entry: AuditEntry,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    stream: tokio::sync::broadcast::Sender<Committed>,
    sealer: Option<Arc<AuditSealer>>,
    /// Items read and decoded by this database's operations, see [`EmbeddedStore::items_read`].
    reads: Arc<std::sync::atomic::AtomicU64>,
    /// Counts each mutation emitted until its publisher ends it ([`EmbeddedStore::with_work`]).
    work: Option<crate::adapters::local_bus::Work>,
}

/// Mutations a slow stream consumer may fall behind by before it misses some.
const STREAM_CAPACITY: usize = 4096;

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::backend(false, e.into())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::backend(false, e))
}

thread_local! {
    /// Items decoded by the store operation running on this thread (see [`EmbeddedStore::items_read`]).
    static DECODED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn decode<T: DeserializeOwned>(pk: &str, sk: &str, bytes: &[u8]) -> Result<T, StoreError> {
    DECODED.with(|d| d.set(d.get() + 1));
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: format!("{pk}/{sk}"), message: e.to_string() })
}

/// The database file is held by another process (or another store in this one).
#[derive(Debug, thiserror::Error)]
#[error(
    "the database is already open in another process: is a `changehub serve` running on it? \
     Stop it first, or use another database with --db"
)]
pub struct AlreadyOpen;

impl EmbeddedStore {
    /// Opens the database file, creating it (and its table) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::backend(false, AlreadyOpen),
            other => backend(other),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(ITEMS).map_err(backend)?;
        txn.open_table(GSI1).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let (stream, _) = tokio::sync::broadcast::channel(STREAM_CAPACITY);
        Ok(Self { db: Arc::new(db), stream, sealer: None, reads: Arc::default(), work: None })
    }

    /// Counts every mutation it emits on `work`, which the stream's one
    /// publisher ends per mutation published (`changehub serve`).
    pub fn with_work(self, work: crate::adapters::local_bus::Work) -> Self {
        Self { work: Some(work), ..self }
    }

    /// Seals every audit entry it writes with the hub's audit key.
    pub fn with_sealer(self, sealer: Arc<AuditSealer>) -> Self {
        Self { sealer: Some(sealer), ..self }
    }

    /// Every mutation committed from now on, in commit order: the local
    /// counterpart of the table's DynamoDB stream.
    pub fn stream(&self) -> tokio::sync::broadcast::Receiver<Committed> {
        self.stream.subscribe()
    }

    fn emit(&self, change: Change, entry: AuditEntry) {
        // Counted before it can be received, so its end never comes first.
        if let Some(work) = &self.work {
            work.started();
        }
        // No subscriber is fine: nothing is listening.
        if self.stream.send(Committed { change, entry }).is_err()
            && let Some(work) = &self.work
        {
            work.finished(1);
        }
    }

    /// Runs blocking database work off the async executor.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let (db, reads) = (self.db.clone(), self.reads.clone());
        tokio::task::spawn_blocking(move || {
            DECODED.with(|d| d.set(0));
            let done = f(&db);
            reads.fetch_add(DECODED.with(std::cell::Cell::get), std::sync::atomic::Ordering::Relaxed);
            done
        })
        .await
        .map_err(|e| StoreError::backend(false, e))?
    }

    /// How many items this database's operations have read so far: every
    /// index entry, record, finding and claim decoded, counted as DynamoDB
    /// counts the items a Query or GetItem returns (those a filter then
    /// drops included). `changehub bench` takes the difference around one
    /// operation.
    pub fn items_read(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every change record in the file, of every tenant. An admin scan for
    /// `changehub audit verify`: no request path reads the whole store.
    pub async fn all_changes(&self) -> Result<Vec<Change>, StoreError> {
        self.scan(|pk, sk, value| match sk == keys::META && pk.contains("#CHG#") {
            true => decode(pk, sk, value).map(Some),
            false => Ok(None),
        })
        .await
    }

    /// What `pick` takes of every item in the file, in key order: admin
    /// scans for `changehub audit verify`, never a request path.
    async fn scan<T, F>(&self, pick: F) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
        F: Fn(&str, &str, &[u8]) -> Result<Option<T>, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let (pk, sk) = k.value();
                out.extend(pick(pk, sk, v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Stores many new changes, each with its first audit entry (as
    /// [`ChangeWriter::insert_change`] does, index entries included), in one
    /// write transaction and without telling the stream: for loading a
    /// benchmark's history fast, never a request path.
    pub async fn insert_many(&self, changes: Vec<(Change, AuditEntry)>) -> Result<(), StoreError> {
        let mut sealed = Vec::with_capacity(changes.len());
        for (change, entry) in changes {
            let entry = seal_entry(self.sealer.as_deref(), &entry).await?;
            sealed.push((change, entry));
        }
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            for (change, entry) in &sealed {
                insert_in(&txn, change, entry)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    /// Deletes one raw item. For tests that stage a database an older hub
    /// wrote; not used on any request path.
    pub async fn delete_raw(&self, pk: String, sk: String) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            txn.open_table(ITEMS).map_err(backend)?.remove((pk.as_str(), sk.as_str())).map_err(backend)?;
            txn.commit().map_err(backend)
        })
        .await
    }

    /// Overwrites one raw item. For tests that tamper with stored data and for
    /// admin repair; not used on any request path.
    pub async fn put_raw(&self, pk: String, sk: String, value: serde_json::Value) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let bytes = encode(&value)?;
            let txn = db.begin_write().map_err(backend)?;
            txn.open_table(ITEMS)
                .map_err(backend)?
                .insert((pk.as_str(), sk.as_str()), bytes.as_slice())
                .map_err(backend)?;
            txn.commit().map_err(backend)
        })
        .await
    }
}

fn get_item<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    pk: &str,
    sk: &str,
) -> Result<Option<T>, StoreError> {
    match table.get((pk, sk)).map_err(backend)? {
        Some(guard) => decode(pk, sk, guard.value()).map(Some),
        None => Ok(None),
    }
}

impl ChangeReader for EmbeddedStore {
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
        self.query_prefix(keys::change_pk(tenant, id), keys::AUDIT_PREFIX).await
    }

    async fn audit_entries(
        &self,
        tenant: &TenantId,
        id: &ChangeId,
        seqs: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let (lo, hi) = (keys::audit_sk(*seqs.start()), keys::audit_sk(*seqs.end()));
        self.query_between(keys::change_pk(tenant, id), lo, hi).await
    }

    async fn change_ids(&self, tenant: &TenantId) -> Result<Vec<ChangeId>, StoreError> {
        self.query_prefix(keys::tenant_changes_pk(tenant), keys::INDEX_PREFIX).await
    }
}

impl EmbeddedStore {
    /// A page of `q`'s window in the start-sorted index partition `pk` (the
    /// service's, or its plannable changes').
    pub(super) async fn service_window(&self, pk: String, q: &ServiceWindowQuery) -> Result<Page<Change>, StoreError> {
        let range = keys::service_range(q)?;
        let (tenant, from, limit) = (q.tenant.clone(), q.from, q.limit);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            window_page(&table, &pk, &range, &tenant, from, limit, usize::MAX, |_| true)
        })
        .await
    }

    /// The item at (`pk`, `sk`), decoded; none if there is none.
    async fn read_item<T: DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        sk: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            get_item(&table, &pk, sk)
        })
        .await
    }

    /// Every item of partition `pk` whose SK starts with `prefix`, in SK
    /// order, as DynamoDB's `begins_with` query reads them.
    async fn query_prefix<T: DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        prefix: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        // `~` sorts after every character a key uses.
        let hi = format!("{prefix}~");
        self.query_between(pk, prefix.to_owned(), hi).await
    }

    /// Every item of partition `pk` with `lo <= SK <= hi`, in SK order.
    async fn query_between<T: DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        lo: String,
        hi: String,
    ) -> Result<Vec<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let mut out = Vec::new();
            for row in table.range((pk.as_str(), lo.as_str())..=(pk.as_str(), hi.as_str())).map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                out.push(decode(&pk, k.value().1, v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// A page of partition `pk`'s items within `range`, in sort-key order.
    async fn page_in<T: DeserializeOwned + Send + 'static>(
        &self,
        pk: String,
        range: keys::SkRange,
        limit: usize,
    ) -> Result<Page<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let rows = table.range((pk.as_str(), range.lo.as_str())..=(pk.as_str(), range.hi.as_str()));
            let rows = rows.map_err(backend)?.map(|row| {
                let (k, v) = row.map_err(backend)?;
                let sk = k.value().1;
                Ok((sk.to_owned(), decode(&pk, sk, v.value())?))
            });
            paged(rows, range.after.as_deref(), limit)
        })
        .await
    }
}

/// An update as one write transaction applies it: the new record, its sealed
/// entries, and what moves with it.
struct Apply {
    change: Change,
    entries: Vec<AuditEntry>,
    expected: u64,
    increments: Vec<(String, String, i64, i64)>,
    waits: Vec<(WaitKey, WaitCounts)>,
}

impl Apply {
    async fn of(sealer: Option<&AuditSealer>, update: &ChangeUpdate<'_>) -> Result<Apply, StoreError> {
        Ok(Apply {
            change: update.change.clone(),
            entries: seal_entries(sealer, update.entries).await?,
            expected: update.expected(),
            increments: keys::counter_increments(update),
            waits: keys::wait_increments(update),
        })
    }
}

/// Stores a new change, its list and index entries and its first audit
/// entry inside `txn`; `AlreadyExists` if the id is taken.
fn insert_in(txn: &redb::WriteTransaction, change: &Change, entry: &AuditEntry) -> Result<(), StoreError> {
    let pk = keys::change_pk(&change.tenant, &change.id);
    let mut table = txn.open_table(ITEMS).map_err(backend)?;
    if table.get((pk.as_str(), keys::META)).map_err(backend)?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    table.insert((pk.as_str(), keys::META), encode(change)?.as_slice()).map_err(backend)?;
    let (lpk, lsk) = (keys::tenant_changes_pk(&change.tenant), keys::tenant_changes_sk(&change.id));
    table.insert((lpk.as_str(), lsk.as_str()), encode(&change.id)?.as_slice()).map_err(backend)?;
    let aud = keys::audit_sk(entry.seq);
    table.insert((pk.as_str(), aud.as_str()), encode(entry)?.as_slice()).map_err(backend)?;
    reindex(&mut table, None, change)?;
    reindex_due(&mut txn.open_table(GSI1).map_err(backend)?, None, change, &pk)
}

/// Applies an update inside `txn`, on the conditions `update_change` states.
fn update_in(txn: &redb::WriteTransaction, a: &Apply) -> Result<(), StoreError> {
    let (change, expected) = (&a.change, a.expected);
    let pk = keys::change_pk(&change.tenant, &change.id);
    let mut table = txn.open_table(ITEMS).map_err(backend)?;
    let current: Change = get_item(&table, &pk, keys::META)?.ok_or(StoreError::NotFound)?;
    if current.version != expected {
        return Err(StoreError::VersionConflict { expected });
    }
    for entry in &a.entries {
        let aud = keys::audit_sk(entry.seq);
        if table.get((pk.as_str(), aud.as_str())).map_err(backend)?.is_some() {
            return Err(StoreError::VersionConflict { expected });
        }
        table.insert((pk.as_str(), aud.as_str()), encode(entry)?.as_slice()).map_err(backend)?;
    }
    table.insert((pk.as_str(), keys::META), encode(change)?.as_slice()).map_err(backend)?;
    // The stored record is the one the update was read from (same version).
    reindex(&mut table, Some(&current), change)?;
    for (cpk, csk, changes, failures) in &a.increments {
        let mut counts: CounterItem = get_item(&table, cpk, csk)?.unwrap_or_default();
        counts.changes = counts.changes.saturating_add_signed(*changes);
        counts.failures = counts.failures.saturating_add_signed(*failures);
        table.insert((cpk.as_str(), csk.as_str()), encode(&counts)?.as_slice()).map_err(backend)?;
    }
    for (key, added) in &a.waits {
        WaitItem::add(&mut table, key, added)?;
    }
    reindex_due(&mut txn.open_table(GSI1).map_err(backend)?, Some(&current), change, &pk)
}

impl ChangeWriter for EmbeddedStore {
    async fn insert_change(&self, change: &Change, entry: &AuditEntry) -> Result<(), StoreError> {
        let (change, entry) = (change.clone(), seal_entry(self.sealer.as_deref(), entry).await?);
        let (change, entry) = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(backend)?;
                insert_in(&txn, &change, &entry)?;
                txn.commit().map_err(backend)?;
                Ok((change, entry))
            })
            .await?;
        self.emit(change, entry);
        Ok(())
    }

    async fn update_change(&self, update: ChangeUpdate<'_>) -> Result<(), StoreError> {
        let apply = Apply::of(self.sealer.as_deref(), &update).await?;
        let apply = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(backend)?;
                update_in(&txn, &apply)?;
                txn.commit().map_err(backend)?;
                Ok(apply)
            })
            .await?;
        for entry in apply.entries {
            self.emit(apply.change.clone(), entry);
        }
        Ok(())
    }

    async fn insert_linked(
        &self,
        change: &Change,
        entry: &AuditEntry,
        update: ChangeUpdate<'_>,
    ) -> Result<(), StoreError> {
        let (change, entry) = (change.clone(), seal_entry(self.sealer.as_deref(), entry).await?);
        let apply = Apply::of(self.sealer.as_deref(), &update).await?;
        let (change, entry, apply) = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(backend)?;
                insert_in(&txn, &change, &entry)?;
                update_in(&txn, &apply)?;
                txn.commit().map_err(backend)?;
                Ok((change, entry, apply))
            })
            .await?;
        self.emit(change, entry);
        for entry in apply.entries {
            self.emit(apply.change.clone(), entry);
        }
        Ok(())
    }
}

impl Counters for EmbeddedStore {
    async fn counts(&self, keys_wanted: &[CounterKey]) -> Result<Vec<Counts>, StoreError> {
        self.read_counters(keys_wanted.iter().map(|k| (keys::counter_pk(k), keys::counter_sk(k))).collect()).await
    }

    async fn volumes(&self, keys_wanted: &[VolumeKey]) -> Result<Vec<u64>, StoreError> {
        let counts = self.read_counters(keys_wanted.iter().map(keys::volume_key).collect()).await?;
        Ok(counts.into_iter().map(|c| c.changes).collect())
    }

    async fn history(
        &self,
        outcomes: &[CounterKey],
        incidents: &[IncidentCounterKey],
    ) -> Result<(Vec<Counts>, Vec<IncidentCounts>), StoreError> {
        let outcomes: Vec<(String, String)> =
            outcomes.iter().map(|k| (keys::counter_pk(k), keys::counter_sk(k))).collect();
        let incidents = incidents.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let counts = outcomes
                .iter()
                .map(|(pk, sk)| {
                    let c: CounterItem = get_item(&table, pk, sk)?.unwrap_or_default();
                    Ok(Counts { changes: c.changes, failures: c.failures })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((counts, problems::incident_counts(&table, &incidents)?))
        })
        .await
    }

    async fn waits(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> Result<Vec<(WaitDimension, String, WaitCounts)>, StoreError> {
        let items: Vec<WaitItem> = self.query_prefix(keys::waits_pk(tenant, month), "W#").await?;
        Ok(items.into_iter().map(|i| (i.dimension, i.name.clone(), i.counts())).collect())
    }
}

impl EmbeddedStore {
    /// The counter items at `wanted`, in order (zero where absent).
    async fn read_counters(&self, wanted: Vec<(String, String)>) -> Result<Vec<Counts>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            wanted
                .iter()
                .map(|(pk, sk)| {
                    let c: CounterItem = get_item(&table, pk, sk)?.unwrap_or_default();
                    Ok(Counts { changes: c.changes, failures: c.failures })
                })
                .collect()
        })
        .await
    }
}

impl DueIndex for EmbeddedStore {
    async fn due(
        &self,
        partition: &DuePartition,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<Change>, StoreError> {
        let range = keys::due_range(partition, until, after.as_ref())?;
        self.due_page(range, limit, keys::META, "change", |_, _, change| Ok(change)).await
    }
}

impl EmbeddedStore {
    /// A page of a due-index partition (GSI1): the item each entry names
    /// (its `item_sk`; a missing one, a `what`, is corrupt), made with the
    /// entry's partition and sort key by `make`.
    pub(super) async fn due_page<I: DeserializeOwned, T: Send + 'static>(
        &self,
        range: keys::DueRange,
        limit: usize,
        item_sk: &'static str,
        what: &'static str,
        make: impl Fn(&str, &str, I) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Page<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let gsi = txn.open_table(GSI1).map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let (pk, lo, hi) = (range.pk.as_str(), range.after.as_deref().unwrap_or_default(), range.hi.as_str());
            let rows = gsi.range((pk, lo)..=(pk, hi)).map_err(backend)?.map(|row| {
                let (k, v) = row.map_err(backend)?;
                let sk = k.value().1.to_owned();
                let item = get_item(&table, v.value(), item_sk)?.ok_or_else(|| StoreError::Corrupt {
                    key: format!("{pk}/{sk}"),
                    message: format!("due index names a missing {what}"),
                })?;
                let made = make(pk, &sk, item)?;
                Ok((sk, made))
            });
            paged(rows, range.after.as_deref(), limit)
        })
        .await
    }
}

/// A page of `(sort key, item)` rows read in order: the cursor's own row
/// skipped, at most `limit` items, and the last one's sort key as the next
/// page's cursor when a row is left (which is read to know it is there).
fn paged<T>(
    rows: impl IntoIterator<Item = Result<(String, T), StoreError>>,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<T>, StoreError> {
    let mut items = Vec::new();
    let mut last = None;
    for row in rows {
        let (sk, item) = row?;
        if after == Some(sk.as_str()) {
            continue;
        }
        if items.len() == limit {
            return Ok(Page { items, next: last.map(Cursor::issued) });
        }
        items.push(item);
        last = Some(sk);
    }
    Ok(Page { items, next: None })
}

impl Dedupe for EmbeddedStore {
    async fn claim(
        &self,
        keys: &[String],
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let pks: Vec<String> = keys.iter().map(|k| keys::idem_pk(k)).collect();
        let item = encode(&ClaimItem { expires_at: expiry(now, lease), owner: owner.to_owned(), done: false })?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let mut live = Vec::new();
                for pk in &pks {
                    if let Some(existing) = get_item::<ClaimItem>(&table, pk, keys::IDEM_SK)?
                        && existing.expires_at > now
                    {
                        live.push(existing.done);
                    }
                }
                if !live.is_empty() {
                    // Dropping the transaction aborts it: nothing was written.
                    return Ok(if live.contains(&true) { Claim::Duplicate } else { Claim::InProgress });
                }
                for pk in &pks {
                    table.insert((pk.as_str(), keys::IDEM_SK), item.as_slice()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)?;
            Ok(Claim::New)
        })
        .await
    }

    async fn complete(&self, keys: &[String], now: DateTime<Utc>, ttl: Duration) -> Result<(), StoreError> {
        let pks: Vec<String> = keys.iter().map(|k| keys::idem_pk(k)).collect();
        let item = encode(&ClaimItem { expires_at: expiry(now, ttl), owner: String::new(), done: true })?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                for pk in &pks {
                    table.insert((pk.as_str(), keys::IDEM_SK), item.as_slice()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn release(&self, keys: &[String], owner: &str) -> Result<(), StoreError> {
        let pks: Vec<String> = keys.iter().map(|k| keys::idem_pk(k)).collect();
        let owner = owner.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                for pk in &pks {
                    if get_item::<ClaimItem>(&table, pk, keys::IDEM_SK)?.is_some_and(|c| !c.done && c.owner == owner) {
                        table.remove((pk.as_str(), keys::IDEM_SK)).map_err(backend)?;
                    }
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }
}

/// Expired activity rows one write removes from the old end of a tenant's
/// log: the embedded store has no TTL deletion, so writes do it, a bounded
/// amount at a time (reads never list an expired row).
const ACTIVITY_SWEEP: usize = 100;

impl ActivityLog for EmbeddedStore {
    async fn record(&self, tenant: &TenantId, rows: &[Activity]) -> Result<(), StoreError> {
        let Some(now) = rows.iter().map(|r| r.received_at).max() else { return Ok(()) };
        let pk = keys::activity_pk(tenant);
        let rows: Vec<(String, Vec<u8>)> = rows
            .iter()
            .map(|r| Ok((keys::activity_sk(r.occurred_at, &r.event_id), encode(r)?)))
            .collect::<Result<_, StoreError>>()?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(backend)?;
                let mut expired = Vec::new();
                for row in table.range((pk.as_str(), "")..(pk.as_str(), "~")).map_err(backend)?.take(ACTIVITY_SWEEP) {
                    let (k, v) = row.map_err(backend)?;
                    let sk = k.value().1;
                    let old: Activity = decode(&pk, sk, v.value())?;
                    if old.expires_at > now {
                        break;
                    }
                    expired.push(sk.to_owned());
                }
                for sk in &expired {
                    table.remove((pk.as_str(), sk.as_str())).map_err(backend)?;
                }
                for (sk, bytes) in &rows {
                    table.insert((pk.as_str(), sk.as_str()), bytes.as_slice()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn activity(&self, q: &ActivityQuery) -> Result<Page<Activity>, StoreError> {
        let Some(range) = keys::activity_range(q)? else { return Ok(Page { items: vec![], next: None }) };
        let q = q.clone();
        self.newest_first(range, q.evaluated(), q.limit, move |row| q.matches(row)).await
    }
}

impl EmbeddedStore {
    /// A page of a `{time}#{id}` range, newest first: the rows `keep` keeps
    /// among at most `evaluated` read, at most `limit` of them, and the last
    /// row read as the cursor when rows remain (as DynamoDB's `Limit` does).
    pub(super) async fn newest_first<T: DeserializeOwned + Send + 'static>(
        &self,
        range: keys::ActivityRange,
        evaluated_max: usize,
        limit: usize,
        keep: impl Fn(&T) -> bool + Send + 'static,
    ) -> Result<Page<T>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            let pk = range.pk.as_str();
            let rows = match range.below.as_deref() {
                Some(below) => table.range((pk, range.lo.as_str())..(pk, below)),
                None => table.range((pk, range.lo.as_str())..=(pk, range.hi.as_str())),
            }
            .map_err(backend)?;
            let (mut items, mut evaluated, mut last) = (Vec::new(), 0, None);
            for row in rows.rev() {
                let (k, v) = row.map_err(backend)?;
                let sk = k.value().1;
                if evaluated == evaluated_max || items.len() == limit {
                    // More rows remain: the page resumes below the last one read.
                    return Ok(Page { items, next: last.map(Cursor::issued) });
                }
                let item: T = decode(pk, sk, v.value())?;
                evaluated += 1;
                if keep(&item) {
                    items.push(item);
                }
                last = Some(sk.to_owned());
            }
            Ok(Page { items, next: None })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_already_open_says_which_hub_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.db");
        let _first = EmbeddedStore::open(&path).expect("first open");
        match EmbeddedStore::open(&path) {
            Err(StoreError::Backend { retryable: false, source }) => {
                let message = source.to_string();
                assert!(message.contains("is a `changehub serve` running on it?"), "{message}");
                assert!(message.contains("--db"), "{message}");
            }
            Err(other) => panic!("expected the already-open refusal, got {other:?}"),
            Ok(_) => panic!("a second store opened the same database"),
        }
    }
}
