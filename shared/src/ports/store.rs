//! Storage ports. Narrow traits: a handler that only reads asks for a
//! [`ChangeReader`], not the whole store.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

use crate::domain::waiting::Awaiting;
use crate::domain::{AuditEntry, Change, ChangeId, ChangeState, ChangeType, ServiceName, TenantId};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed since the caller read it (optimistic locking).
    #[error("version conflict: expected version {expected}, the record is at another version")]
    VersionConflict { expected: u64 },
    /// The record was expected to exist but does not.
    #[error("record not found")]
    NotFound,
    #[error("record already exists")]
    AlreadyExists,
    /// A page cursor the store could not have issued for the query.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// A stored item could not be decoded: data written by another version or edited by hand.
    #[error("stored item {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    /// The backend failed; `retryable` says whether trying again may help
    /// (throttling, timeouts, 5xx) or not.
    #[error("store backend failed")]
    Backend {
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    pub fn backend(retryable: bool, source: impl Into<BoxError>) -> Self {
        StoreError::Backend { retryable, source: source.into() }
    }

    /// Whether an event consumer that met this error should fail the event so the platform
    /// delivers it again. The one rule every consumer follows:
    /// - `Backend`: the backend's own flag (throttling, timeouts, 5xx yes; a rejected request no).
    /// - `VersionConflict`: yes; another writer won the race, a new delivery re-reads and
    ///   applies on top of it.
    /// - `NotFound` and `AlreadyExists`: yes; both say a concurrent writer had not yet written, or
    ///   had already written, what this one expected, and a new delivery re-reads the settled
    ///   record (the event source bounds the retries).
    /// - `Corrupt`: no; the stored item reads the same way every time.
    /// - `InvalidCursor`: no; a cursor the store could not have issued stays invalid.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend { retryable, .. } => *retryable,
            StoreError::VersionConflict { .. } | StoreError::NotFound | StoreError::AlreadyExists => true,
            StoreError::Corrupt { .. } | StoreError::InvalidCursor(_) => false,
        }
    }
}

/// Changes on one service whose planned window overlaps `[from, to]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceWindowQuery {
    pub tenant: TenantId,
    pub service: ServiceName,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// At most this many changes per page (1..=100).
    pub limit: usize,
    /// The `next` of the previous page.
    pub after: Option<Cursor>,
}

pub const MAX_PAGE: usize = 100;

/// What a tenant-wide listing keeps: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub state: Option<ChangeState>,
    pub change_type: Option<ChangeType>,
    /// The requester's user id, exactly.
    pub requester: Option<String>,
    /// One of the change's services.
    pub service: Option<ServiceName>,
}

/// What a tenant's listing index holds of a change, so that it filters
/// without reading the records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub state: ChangeState,
    pub change_type: ChangeType,
    pub requester: String,
    pub services: Vec<ServiceName>,
}

impl Listing {
    pub fn of(change: &Change) -> Self {
        Self {
            state: change.state,
            change_type: change.change_type,
            requester: change.requester.clone(),
            services: change.services.clone(),
        }
    }
}

impl ChangeFilter {
    pub fn admits(&self, l: &Listing) -> bool {
        self.state.is_none_or(|s| s == l.state)
            && self.change_type.is_none_or(|t| t == l.change_type)
            && self.requester.as_ref().is_none_or(|r| *r == l.requester)
            && self.service.as_ref().is_none_or(|s| l.services.contains(s))
    }

    pub fn is_empty(&self) -> bool {
        *self == ChangeFilter::default()
    }
}

/// A tenant's changes whose planned window overlaps `[from, to]` and that
/// pass `filter`, by planned start.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeQuery {
    pub tenant: TenantId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub filter: ChangeFilter,
    /// At most this many changes per page (1..=100).
    pub limit: usize,
    /// At most this many index entries are read per call, matching or not
    /// (DynamoDB's `Limit`), so a call costs the same whatever the filter
    /// keeps: a page may come back short, even empty, with a cursor.
    pub evaluate: usize,
    /// The `next` of the previous page.
    pub after: Option<Cursor>,
}

/// Index entries a tenant-wide listing reads per call ([`ChangeQuery::evaluate`]).
pub const EVALUATED_PER_PAGE: usize = 250;

/// Changes waiting for a decision by any of `who`, earliest due first.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingQuery {
    pub tenant: TenantId,
    pub who: Vec<Awaiting>,
    /// At most this many changes per page (1..=100).
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// A page of results, ordered by planned start, with the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Where a page resumes: the `next` of the page before, handed back as is.
/// Opaque outside the store that issued it: [`Cursor::parse`] refuses only
/// what no store issues, and a store refuses a cursor it could not have
/// issued for the query with [`StoreError::InvalidCursor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

/// A cursor no store issued (or not for this query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one the store issued")]
pub struct InvalidCursor;

impl Cursor {
    /// The longest cursor a store issues.
    pub const MAX_LEN: usize = 128;

    /// A cursor a caller hands back: not empty, at most [`Cursor::MAX_LEN`]
    /// bytes, without a newline or NUL.
    pub fn parse(token: &str) -> Result<Self, InvalidCursor> {
        if token.is_empty() || token.len() > Self::MAX_LEN || token.contains(['\n', '\0']) {
            return Err(InvalidCursor);
        }
        Ok(Self(token.to_owned()))
    }

    /// A cursor as a store issues it, taken as is.
    pub fn issued(token: String) -> Self {
        Self(token)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Cursor {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Cursor> for String {
    fn from(c: Cursor) -> Self {
        c.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub trait ChangeReader: Send + Sync {
    fn get_change(
        &self,
        tenant: &TenantId,
        id: &ChangeId,
    ) -> impl Future<Output = Result<Option<Change>, StoreError>> + Send;

    /// One index query plus one batch read per page, whatever the history size.
    /// `InvalidCursor` if `query.after` is not a cursor of a service window.
    fn changes_for_service(
        &self,
        query: &ServiceWindowQuery,
    ) -> impl Future<Output = Result<Page<Change>, StoreError>> + Send;

    /// A tenant's changes in a window, filtered ([`ChangeQuery`]): one index
    /// query (at most [`ChangeQuery::evaluate`] entries) and one batch read
    /// per page. `InvalidCursor` if `query.after` is not a cursor of a window.
    fn list_changes(&self, query: &ChangeQuery) -> impl Future<Output = Result<Page<Change>, StoreError>> + Send;

    /// Changes waiting for a decision by any of `query.who`: one query per
    /// principal and one batch read per page. Whether the caller may really
    /// decide each one (dual control) is for the use case to check.
    fn waiting_for(&self, query: &WaitingQuery) -> impl Future<Output = Result<Page<Change>, StoreError>> + Send;

    /// The whole audit trail, oldest first.
    fn audit_trail(
        &self,
        tenant: &TenantId,
        id: &ChangeId,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    /// The entries numbered `seqs` (inclusive), oldest first: one query of
    /// the change's partition, whatever the length of its history. For the
    /// outbox publisher, which learns from a stream record which entries a
    /// write added.
    fn audit_entries(
        &self,
        tenant: &TenantId,
        id: &ChangeId,
        seqs: std::ops::RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    /// The ids of every change of a tenant, oldest first (ids are time
    /// ordered): one query of the tenant's change list, paged. For audit
    /// verification, not request paths.
    fn change_ids(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<ChangeId>, StoreError>> + Send;
}

/// Outcomes of one kind of change on one service in one month: the
/// pre-aggregated history that risk scoring and metrics read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub tenant: TenantId,
    pub service: ServiceName,
    /// `YYYY-MM`.
    pub month: String,
    pub category: String,
    pub change_type: ChangeType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub changes: u64,
    pub failures: u64,
}

/// What an update adds to the outcome counters under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    pub key: CounterKey,
    /// Changes finished: 1 for an outcome, 0 for an incident's count.
    pub changes: i64,
    /// Failures: 1 for a failed outcome or a change-related incident, -1
    /// when a wrong tag is removed.
    pub failures: i64,
}

impl Bump {
    /// One finished change, failed or not.
    pub fn outcome(key: CounterKey, failed: bool) -> Self {
        Self { key, changes: 1, failures: i64::from(failed) }
    }

    /// A failure added (`delta` 1) or taken back (-1) without a change finishing.
    pub fn failure(key: CounterKey, delta: i64) -> Self {
        Self { key, changes: 0, failures: delta }
    }
}

/// Whom a volume counter counts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VolumeOf {
    /// A requester (the user id their token names).
    Requester(String),
    /// A team: the owner group of a service the change touches.
    Team(String),
}

/// Changes of one type submitted in one month by one requester or one team:
/// the volume metrics read (emergency volume).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeKey {
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub month: String,
    pub change_type: ChangeType,
    pub of: VolumeOf,
}

/// What the approval-wait counters are kept by: the level's name, the
/// service whose chain it comes from, that service's owner group, the change type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitDimension {
    Level,
    Service,
    Team,
    ChangeType,
}

impl WaitDimension {
    pub const ALL: [WaitDimension; 4] =
        [WaitDimension::Level, WaitDimension::Service, WaitDimension::Team, WaitDimension::ChangeType];

    pub fn as_str(self) -> &'static str {
        match self {
            WaitDimension::Level => "level",
            WaitDimension::Service => "service",
            WaitDimension::Team => "team",
            WaitDimension::ChangeType => "change_type",
        }
    }
}

/// Upper bounds (seconds) of the wait histogram's buckets, log-spaced from
/// one minute to 30 days; a last bucket holds the waits above 30 days.
pub const WAIT_BUCKETS: [u64; 18] = [
    60,
    2 * 60,
    5 * 60,
    10 * 60,
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    3 * 86_400,
    5 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
];

/// The histogram bucket a wait of `seconds` falls in (`WAIT_BUCKETS.len()` above 30 days).
pub fn wait_bucket(seconds: u64) -> usize {
    WAIT_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(WAIT_BUCKETS.len())
}

/// One key of the approval-wait counters: a tenant's month under one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WaitKey {
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub month: String,
    pub dimension: WaitDimension,
    /// The level, service, team or change type's name.
    pub name: String,
}

/// What an update adds to the approval-wait counters under `key`: a step
/// decided after waiting `waited` seconds, an escalation, a breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitBump {
    pub key: WaitKey,
    pub waited: Option<u64>,
    pub escalations: u64,
    pub breaches: u64,
}

/// The approval-wait counters of one dimension's name in one month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitCounts {
    pub decided: u64,
    pub wait_seconds: u64,
    /// Decided steps per bucket of [`WAIT_BUCKETS`] (one more for the overflow).
    pub buckets: [u64; WAIT_BUCKETS.len() + 1],
    pub escalations: u64,
    pub breaches: u64,
}

impl WaitCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &WaitCounts) {
        self.decided += other.decided;
        self.wait_seconds += other.wait_seconds;
        for (b, o) in self.buckets.iter_mut().zip(other.buckets) {
            *b += o;
        }
        self.escalations += other.escalations;
        self.breaches += other.breaches;
    }

    /// What `bump` adds, as counts.
    pub fn of(bump: &WaitBump) -> WaitCounts {
        let mut c = WaitCounts { escalations: bump.escalations, breaches: bump.breaches, ..Default::default() };
        if let Some(w) = bump.waited {
            c.decided = 1;
            c.wait_seconds = w;
            if let Some(b) = c.buckets.get_mut(wait_bucket(w)) {
                *b = 1;
            }
        }
        c
    }
}

/// A change's new version, the record it replaces, the audit entries that
/// lead to it (oldest first, the last one's seq equal to the change's
/// version), and counters to bump.
#[derive(Debug, Clone, Copy)]
pub struct ChangeUpdate<'a> {
    /// The stored record this update replaces, as the caller read it: the
    /// write is conditional on its version, so the index entries derived from
    /// it (service, listing, waiting) are the ones stored, and the stores move
    /// them to those of `change` in the same write.
    pub before: &'a Change,
    pub change: &'a Change,
    pub entries: &'a [AuditEntry],
    pub bumps: &'a [Bump],
    /// Volume counters to add one to.
    pub volumes: &'a [VolumeKey],
    /// Approval-wait counters to add to.
    pub waits: &'a [WaitBump],
}

impl ChangeUpdate<'_> {
    /// The version the stored change must be at.
    pub fn expected(&self) -> u64 {
        self.before.version
    }
}

pub trait Counters: Send + Sync {
    /// The counts under each key, in the order given (zero where nothing was counted).
    fn counts(&self, keys: &[CounterKey]) -> impl Future<Output = Result<Vec<Counts>, StoreError>> + Send;

    /// The volume under each key, in the order given (zero where nothing was counted).
    fn volumes(&self, keys: &[VolumeKey]) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;

    /// The outcome counts and the incident counts under each key, in the
    /// orders given, in one batch read: risk scoring's whole history. The
    /// incident counters are one item per service, whatever the months asked.
    fn history(
        &self,
        outcomes: &[CounterKey],
        incidents: &[crate::ports::IncidentCounterKey],
    ) -> impl Future<Output = Result<(Vec<Counts>, Vec<crate::ports::IncidentCounts>), StoreError>> + Send;

    /// Every approval-wait counter of `tenant`'s `month`, by dimension and
    /// name: one query of the month's partition, which holds one item per
    /// level, service, team and change type that had a wait counted.
    fn waits(
        &self,
        tenant: &TenantId,
        month: &str,
    ) -> impl Future<Output = Result<Vec<(WaitDimension, String, WaitCounts)>, StoreError>> + Send;
}

/// Shards of the approvals-due partition, so that one hot partition never
/// takes every tenant's deadlines.
pub const DUE_SHARDS: u32 = 8;

/// A partition of the due index: which changes wait for what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DuePartition {
    /// Changes (of every tenant) waiting for an approval decision, in one
    /// of [`DUE_SHARDS`] shards ([`ChangeId::shard`]).
    Approvals { shard: u32 },
    /// A tenant's emergency changes awaiting their post-implementation review.
    Reviews { tenant: TenantId },
    /// Scheduled changes (of every tenant) whose "starting soon" reminder
    /// waits, in one of [`DUE_SHARDS`] shards, as approvals are.
    StartingSoon { shard: u32 },
    /// Verifying changes (of every tenant) whose bake ends, in one of
    /// [`DUE_SHARDS`] shards, as approvals are.
    Bake { shard: u32 },
}

impl DuePartition {
    /// The approvals partition `id` waits in.
    pub fn approvals_of(id: &ChangeId) -> Self {
        DuePartition::Approvals { shard: id.shard(DUE_SHARDS) }
    }

    /// The starting-soon partition `id` waits in.
    pub fn starting_soon_of(id: &ChangeId) -> Self {
        DuePartition::StartingSoon { shard: id.shard(DUE_SHARDS) }
    }

    /// The bake partition `id` waits in.
    pub fn bake_of(id: &ChangeId) -> Self {
        DuePartition::Bake { shard: id.shard(DUE_SHARDS) }
    }

    /// Every partition a tick reads: each shard of the approvals, then of the reminders.
    pub fn ticked() -> impl Iterator<Item = DuePartition> {
        let approvals = (0..DUE_SHARDS).map(|shard| DuePartition::Approvals { shard });
        let bakes = (0..DUE_SHARDS).map(|shard| DuePartition::Bake { shard });
        approvals.chain((0..DUE_SHARDS).map(|shard| DuePartition::StartingSoon { shard })).chain(bakes)
    }
}

/// The sparse due index: changes waiting for something, by deadline.
pub trait DueIndex: Send + Sync {
    /// Changes in `partition` due no later than `until`, earliest first.
    /// `InvalidCursor` if `after` could not have come from a page of this
    /// partition (checked for [`DuePartition::Reviews`], which the API pages).
    fn due(
        &self,
        partition: &DuePartition,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<Change>, StoreError>> + Send;
}

pub trait ChangeWriter: Send + Sync {
    /// Stores a new change, its service index entries and its first audit
    /// entry in one atomic write. `AlreadyExists` if the id is taken.
    fn insert_change(&self, change: &Change, entry: &AuditEntry)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces a change whose stored version is [`ChangeUpdate::expected`],
    /// appends the entries and bumps the counters (outcomes and volumes), in one atomic write.
    /// `VersionConflict` otherwise, `NotFound` if there is no such change.
    /// Every index follows the record in the same write: service, listing and
    /// waiting entries move from those of [`ChangeUpdate::before`] to those of
    /// the new record, and the due index is derived from the record.
    fn update_change(&self, update: ChangeUpdate<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Inserts `change` (as [`ChangeWriter::insert_change`]) and applies
    /// `update` to another change (as [`ChangeWriter::update_change`]) in one
    /// atomic write, both or neither: a rework's new draft and the rejected
    /// change it links back to. Fails as either would alone.
    fn insert_linked(
        &self,
        change: &Change,
        entry: &AuditEntry,
        update: ChangeUpdate<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outcome of [`Dedupe::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Every key was free (or its earlier claim or lease expired); the caller
    /// holds them now, for the lease, and must [`Dedupe::complete`] or
    /// [`Dedupe::release`] them.
    New,
    /// A key is done: the work was finished before. Nothing is to be done again.
    Duplicate,
    /// A key is leased by work still in progress: try again once it is done
    /// (or its lease has run out, if it never finishes).
    InProgress,
}

/// Two-phase claims with expiry, for deduplicating deliveries and events (the
/// way Powertools' idempotency does it): a claim is first a short lease,
/// then, once the work is done, a record kept until its TTL. An expired lease
/// (the worker timed out or crashed) can be claimed again.
pub trait Dedupe: Send + Sync {
    /// Takes every one of `keys` in one atomic write, leased to `owner` (a
    /// token unique to this attempt) until `now + lease`, or none of them.
    /// Any key done and unexpired makes the claim a [`Claim::Duplicate`];
    /// otherwise any key leased and unexpired makes it [`Claim::InProgress`].
    fn claim(
        &self,
        keys: &[String],
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the claimed keys done, remembered until `now + ttl`.
    fn complete(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up the keys still leased to `owner`, so that a retry of work that
    /// failed is not taken for a duplicate. Keys already done, and leases
    /// another attempt took over after `owner`'s ran out, are kept.
    fn release(&self, keys: &[String], owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_retried_by_the_backends_flag_and_never_when_corrupt_or_a_bad_cursor() {
        assert!(StoreError::backend(true, "throttled").is_retryable());
        assert!(!StoreError::backend(false, "validation").is_retryable());
        assert!(StoreError::VersionConflict { expected: 3 }.is_retryable());
        assert!(StoreError::NotFound.is_retryable());
        assert!(StoreError::AlreadyExists.is_retryable());
        assert!(!StoreError::Corrupt { key: "CHG#1".into(), message: "bad json".into() }.is_retryable());
        assert!(!StoreError::InvalidCursor(InvalidCursor).is_retryable());
    }

    #[test]
    fn a_cursor_is_handed_back_as_issued() {
        let c = Cursor::parse("CHG#2026-11-30T00:00:00.000000Z#01J").expect("well formed");
        assert_eq!(c.as_str(), "CHG#2026-11-30T00:00:00.000000Z#01J");
        assert_eq!(String::from(c.clone()), c.as_str());
    }

    #[test]
    fn a_cursor_no_store_issues_is_refused() {
        let long = "x".repeat(Cursor::MAX_LEN + 1);
        for bad in ["", "CHG#a\nb", "CHG#a\0b", long.as_str()] {
            assert_eq!(Cursor::parse(bad), Err(InvalidCursor), "{bad:?}");
        }
        assert!(Cursor::parse(&"x".repeat(Cursor::MAX_LEN)).is_ok());
    }

    #[test]
    fn a_filter_admits_a_listing_that_meets_every_condition_given() {
        let listing = Listing {
            state: ChangeState::Submitted,
            change_type: ChangeType::Normal,
            requester: "alice".into(),
            services: vec![ServiceName::parse("payments").expect("service")],
        };
        assert!(ChangeFilter::default().admits(&listing));
        let submitted_by_alice = ChangeFilter {
            state: Some(ChangeState::Submitted),
            requester: Some("alice".into()),
            ..ChangeFilter::default()
        };
        assert!(submitted_by_alice.admits(&listing));
        let on = |s: &str| ChangeFilter {
            service: Some(ServiceName::parse(s).expect("service")),
            ..submitted_by_alice.clone()
        };
        assert!(on("payments").admits(&listing) && !on("ledger").admits(&listing));
        let emergency = ChangeFilter { change_type: Some(ChangeType::Emergency), ..ChangeFilter::default() };
        assert!(!emergency.admits(&listing));
    }

    #[test]
    fn a_change_waits_for_approval_in_its_own_shard() {
        let id = ChangeId::new();
        assert_eq!(DuePartition::approvals_of(&id), DuePartition::Approvals { shard: id.shard(DUE_SHARDS) });
    }
}
