//! Reading changes by when they were implemented (what the correlation of an
//! incident reads) or may still be by their plan (what the drift consumer
//! reads besides), at a cost that does not grow with the history.

use chrono::{DateTime, Utc};
use std::future::Future;

use super::{Page, ServiceWindowQuery, StoreError};
use crate::domain::{Change, ServiceName, TenantId};

/// The changes on any of `services` whose recorded implementation can
/// matter to something that happened at `at`: it started at or before `at`,
/// and it ended at or after `since`, or after `at`, or has not ended. A
/// change that never started implementing is never one of them; nor is one
/// recorded before changes kept their implementation (until its next write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplementationQuery {
    pub tenant: TenantId,
    pub services: Vec<ServiceName>,
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl ImplementationQuery {
    /// Whether an implementation is one the query asks for.
    pub fn wants(&self, implementation: &crate::domain::correlation::Implementation) -> bool {
        implementation.started_at() <= self.at && implementation.ended_at().is_none_or(|end| end >= self.since)
    }
}

/// What a read cost: the backend requests it made (a Query, a page of one,
/// a BatchGetItem of up to 100 keys, or the embedded store's equivalent of
/// each) and the items they returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCost {
    pub calls: usize,
    pub items: usize,
}

impl std::ops::AddAssign for ReadCost {
    fn add_assign(&mut self, other: ReadCost) {
        self.calls += other.calls;
        self.items += other.items;
    }
}

/// The changes an [`ImplementationQuery`] found, each once, in no particular
/// order, and what reading them cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Implemented {
    pub changes: Vec<Change>,
    pub cost: ReadCost,
}

pub trait ImplementationReader: Send + Sync {
    /// The changes `query` asks for: a fixed number of index queries per
    /// service (one per implementation-length class), each reading a key range
    /// bounded by the window and the class, then one batch read per 100
    /// changes; never more whatever the history.
    fn implemented(&self, query: &ImplementationQuery) -> impl Future<Output = Result<Implemented, StoreError>> + Send;

    /// The changes on `query.service` whose planned window overlaps
    /// `[from, to]` and that a plan alone may still authorize: approved,
    /// scheduled, or implementing with no implementation recorded (the rest
    /// are read by [`ImplementationReader::implemented`]). One query of the
    /// service's plannable index, which holds no other change, and one batch
    /// read per page, so the read does not grow with the service's history.
    /// `InvalidCursor` if `query.after` is not a cursor of a window.
    fn plannable(&self, query: &ServiceWindowQuery) -> impl Future<Output = Result<Page<Change>, StoreError>> + Send;
}

/// Index upkeep for a table written by an older hub, before one of a
/// change's indexes existed (the plannable index): `changehub migrate`.
pub trait IndexRestore: Send + Sync {
    /// Writes every index entry `change` has, in one write conditional on
    /// the stored record still being at `change.version`: `true` when
    /// written, `false` when the change moved since it was read (read it
    /// again). Entries it holds already are written again unchanged, so
    /// running it twice changes nothing.
    fn restore_index(&self, change: &Change) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
