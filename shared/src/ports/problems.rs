//! The problem store: problem records, the per-service ring of recent
//! incidents the problem rule reads, and the once-only record of each
//! incident, all written together ([`IncidentWrite`]).

use std::future::Future;

use super::store::{Cursor, Page, StoreError};
use crate::domain::problem::{Problem, ProblemId, ProblemStatus, RecentIncidents};
use crate::domain::{ServiceName, TenantId};

/// Incidents and problems on one service in one month: the history risk
/// scoring reads beside the outcome counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IncidentCounterKey {
    pub tenant: TenantId,
    pub service: ServiceName,
    /// `YYYY-MM`, of the incidents' start.
    pub month: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncidentCounts {
    pub incidents: u64,
    pub change_related: u64,
    /// Problems opened by an incident that started in the month.
    pub problems: u64,
}

/// What the store remembers of an incident it counted: whether it was
/// counted as change-related yet (an incident may be tagged after it was
/// first counted, and is then counted as change-related once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    pub change_related: bool,
}

/// What [`ProblemStore::recurrence`] reads for one incident.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecurrenceState {
    /// How the incident was counted before, if it was.
    pub counted: Option<Counted>,
    /// The service's ring, as stored (version 0 when it has none).
    pub recent: RecentIncidents,
}

/// One incident counted, in one atomic write: conditional on the incident's
/// record being as read (`counted_before`) and the ring's version being the
/// one before `recent`'s, so that an incident recorded twice, or two at
/// once on one service, is never counted twice nor decided on a stale ring.
#[derive(Debug, Clone, Copy)]
pub struct IncidentWrite<'a> {
    pub tenant: &'a TenantId,
    pub service: &'a ServiceName,
    pub incident_id: &'a str,
    pub counted_before: Option<Counted>,
    pub counted: Counted,
    /// The ring to store, its version one past the stored one.
    pub recent: &'a RecentIncidents,
    /// Added to the counters of `month`.
    pub month: &'a str,
    pub add: IncidentCounts,
    /// A problem opened (version 1) or joined (its version one past the stored one).
    pub problem: Option<&'a Problem>,
}

/// A tenant's problems, newest first, that pass the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemQuery {
    pub tenant: TenantId,
    pub service: Option<ServiceName>,
    pub status: Option<ProblemStatus>,
    /// At most this many problems per page (1..=100).
    pub limit: usize,
    pub after: Option<Cursor>,
}

/// Problems a listing reads per call, matching or not, so that a call costs
/// the same whatever the filters keep: a page may come back short, with a cursor.
pub const PROBLEMS_EVALUATED: usize = 250;

impl ProblemQuery {
    pub fn admits(&self, p: &Problem) -> bool {
        self.service.as_ref().is_none_or(|s| *s == p.service) && self.status.is_none_or(|s| s == p.status)
    }
}

pub trait ProblemStore: Send + Sync {
    /// The incident's counted record and its service's ring: one batch read.
    fn recurrence(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        incident_id: &str,
    ) -> impl Future<Output = Result<RecurrenceState, StoreError>> + Send;

    /// Stores everything an incident changes in one atomic write.
    /// `VersionConflict` if the incident's record, the ring or the problem
    /// is not as the caller read it: read again and decide again.
    fn record_incident(&self, write: IncidentWrite<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_problem(
        &self,
        tenant: &TenantId,
        id: &ProblemId,
    ) -> impl Future<Output = Result<Option<Problem>, StoreError>> + Send;

    /// Replaces a problem stored at the version before `problem.version`;
    /// `VersionConflict` otherwise.
    fn put_problem(&self, problem: &Problem) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of [`ProblemQuery`]: one query of the tenant's problems (at
    /// most [`PROBLEMS_EVALUATED`] read). `InvalidCursor` if `after` is not a
    /// cursor of this listing.
    fn list_problems(&self, query: &ProblemQuery) -> impl Future<Output = Result<Page<Problem>, StoreError>> + Send;
}
