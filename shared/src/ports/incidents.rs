//! The incident records port: one record per tenant, source and external
//! id, written conditionally on its version, listed newest first by start.

use chrono::{DateTime, Utc};
use std::future::Future;

use super::activity::MAX_EVALUATED;
use super::store::{Cursor, Page, StoreError};
use crate::domain::incident::{Incident, IncidentId, Source, Status};
use crate::domain::{ServiceName, TenantId};

/// A page of a tenant's incidents, newest first by `started_at` (then id).
/// With `service`, the service's own index is read; the other filters are
/// applied to the rows read.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentQuery {
    pub tenant: TenantId,
    pub service: Option<ServiceName>,
    pub source: Option<Source>,
    pub external_id: Option<String>,
    pub status: Option<Status>,
    pub major: Option<bool>,
    pub change_related: Option<bool>,
    /// Incidents started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Incidents started at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many records (1..=[`super::MAX_PAGE`]).
    pub limit: usize,
    /// The `next` of the previous page.
    pub after: Option<Cursor>,
}

impl IncidentQuery {
    /// Every incident of `tenant`, `limit` a page.
    pub fn new(tenant: TenantId, limit: usize) -> Self {
        IncidentQuery {
            tenant,
            service: None,
            source: None,
            external_id: None,
            status: None,
            major: None,
            change_related: None,
            since: None,
            until: None,
            limit,
            after: None,
        }
    }

    /// A service's incidents started in `[from, to]`, newest first.
    pub fn of_service(
        tenant: TenantId,
        service: ServiceName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Self {
        IncidentQuery {
            service: Some(service),
            since: Some(from),
            until: Some(to),
            ..IncidentQuery::new(tenant, limit)
        }
    }

    /// Whether a record is one this query lists.
    pub fn matches(&self, incident: &Incident) -> bool {
        fn is<T: PartialEq>(wanted: &Option<T>, value: &T) -> bool {
            wanted.as_ref().is_none_or(|w| w == value)
        }
        self.service.as_ref().is_none_or(|s| incident.service.as_ref() == Some(s))
            && self.since.is_none_or(|t| incident.started_at >= t)
            && self.until.is_none_or(|t| incident.started_at <= t)
            && is(&self.source, &incident.source)
            && is(&self.external_id, &incident.external_id)
            && is(&self.status, &incident.status)
            && is(&self.major, &incident.major)
            && is(&self.change_related, &incident.change_related)
    }

    fn filtered(&self) -> bool {
        self.source.is_some()
            || self.external_id.is_some()
            || self.status.is_some()
            || self.major.is_some()
            || self.change_related.is_some()
    }

    /// Rows one page evaluates at most: `limit` unfiltered, else [`MAX_EVALUATED`].
    pub fn evaluated(&self) -> usize {
        if self.filtered() { MAX_EVALUATED.max(self.limit) } else { self.limit }
    }
}

pub trait IncidentStore: Send + Sync {
    fn get_incident(
        &self,
        tenant: &TenantId,
        id: &IncidentId,
    ) -> impl Future<Output = Result<Option<Incident>, StoreError>> + Send;

    /// Stores `after` (version `n`) if the stored record is `before`'s
    /// version (`n - 1`; none stored when `before` is `None`), else
    /// `VersionConflict`. The tenant's listing and the service index move
    /// from `before`'s keys to `after`'s in the same write.
    fn put_incident(
        &self,
        before: Option<&Incident>,
        after: &Incident,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page: the matching records among at most
    /// [`IncidentQuery::evaluated`] rows of the range after the cursor, and a
    /// `next` cursor whenever the range may hold more (even when the page came
    /// back short). `InvalidCursor` if `after` is not one of these cursors.
    fn incidents(&self, query: &IncidentQuery) -> impl Future<Output = Result<Page<Incident>, StoreError>> + Send;
}
