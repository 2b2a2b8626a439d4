//! The findings port: the drift consumer's records. Unauthorized-change
//! findings, one record each, in one partition per tenant ordered by id
//! (which begins with the finding's window start), written conditionally
//! on their version; and the evidence of authorized observations, kept on
//! the change that authorized them.

use chrono::{DateTime, Utc};
use std::future::Future;

use super::store::{Cursor, Page, StoreError};
use crate::domain::finding::change_evidence::{ChangeEvidence, Recorded};
use crate::domain::finding::{Finding, FindingId, FindingKind, FindingStatus};
use crate::domain::{ChangeId, ServiceName, TenantId};

/// Findings a listing reads per call, matching or not, so that a call costs
/// the same whatever the filters keep: a page may come back short, with a cursor.
pub const FINDINGS_EVALUATED: usize = 250;

/// A tenant's findings, newest first, that pass the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingQuery {
    pub tenant: TenantId,
    pub service: Option<ServiceName>,
    pub status: Option<FindingStatus>,
    pub kind: Option<FindingKind>,
    /// Findings whose window starts at or after this time (to the minute).
    pub from: Option<DateTime<Utc>>,
    /// Findings whose window starts at or before this time (to the minute).
    pub to: Option<DateTime<Utc>>,
    /// At most this many findings per page (1..=100).
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl FindingQuery {
    /// Every finding of `tenant`, `limit` a page.
    pub fn new(tenant: TenantId, limit: usize) -> Self {
        FindingQuery { tenant, service: None, status: None, kind: None, from: None, to: None, limit, after: None }
    }

    pub fn admits(&self, f: &Finding) -> bool {
        self.service.as_ref().is_none_or(|s| f.service.as_ref() == Some(s))
            && self.status.is_none_or(|s| s == f.status)
            && self.kind.is_none_or(|k| k == f.kind)
    }
}

pub trait FindingStore: Send + Sync {
    fn get_finding(
        &self,
        tenant: &TenantId,
        id: &FindingId,
    ) -> impl Future<Output = Result<Option<Finding>, StoreError>> + Send;

    /// Stores `finding` if the stored one is at the version before
    /// (`finding.version - 1`; none stored when it is 1), else `VersionConflict`.
    fn put_finding(&self, finding: &Finding) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of [`FindingQuery`]: one query of the tenant's findings in the
    /// time range (at most [`FINDINGS_EVALUATED`] read), newest first.
    /// `InvalidCursor` if `after` is not a cursor of this listing.
    fn list_findings(&self, query: &FindingQuery) -> impl Future<Output = Result<Page<Finding>, StoreError>> + Send;

    /// Records `evidence` on its change, once per event id: one conditional
    /// write whatever the change holds (with the change's count, kept at
    /// most [`crate::domain::finding::change_evidence::MAX_CHANGE_EVIDENCE`]).
    fn record_evidence(&self, evidence: &ChangeEvidence) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// A page of a change's evidence, by the events' own times (oldest
    /// first), resuming after `after`; `InvalidCursor` if it is not a cursor of this listing.
    fn change_evidence(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<ChangeEvidence>, StoreError>> + Send;
}
