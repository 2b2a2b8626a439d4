//! The activity log port: every hub event the hub accepted, kept per tenant
//! for a while, so a person can see what the hub did with a delivery.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;

use super::store::{Cursor, Page, StoreError};
use crate::domain::TenantId;

/// One accepted hub event, as the activity log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The hub event's id (`detail.event_id`): a row's identity, so writing
    /// the same event again replaces its row.
    pub event_id: String,
    /// The canonical `detail-type` (`Deployment Status Changed`).
    pub detail_type: String,
    /// The hub event's `source` (`changehub.github`).
    pub source: String,
    /// The source's own id of the thing (deployment id, incident id...).
    pub external_id: String,
    /// The catalog service, or `None` with [`Activity::service_reason`].
    pub service: Option<String>,
    /// Why the service is unknown, when it is.
    pub service_reason: Option<String>,
    /// Change ids the event names.
    pub change_ids: Vec<String>,
    /// When it happened, as the source says: the log's order.
    pub occurred_at: DateTime<Utc>,
    /// When the hub accepted it.
    pub received_at: DateTime<Utc>,
    /// The sender's delivery id (an AWS event's id) it came in with.
    pub delivery_id: String,
    /// When the row leaves the log: [`Activity::received_at`] plus the retention.
    pub expires_at: DateTime<Utc>,
    /// A deployment gate's answer, on the rows of [`GATE_DETAIL_TYPE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::domain::gate::GateRecord>,
}

/// The `detail-type` of the rows that record a deployment gate's answers (`POST /gates/deployments`).
pub const GATE_DETAIL_TYPE: &str = "Deployment Gate Decided";
/// Their `source`.
pub const GATE_SOURCE: &str = "changehub.gate";

/// The most rows one page of a filtered query evaluates (DynamoDB's `Limit`),
/// whatever the history holds; an unfiltered page evaluates `limit` rows.
pub const MAX_EVALUATED: usize = 200;

/// A page of a tenant's activity, newest first by event time (then event id).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityQuery {
    pub tenant: TenantId,
    /// Events that happened at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events that happened at or before this time.
    pub until: Option<DateTime<Utc>>,
    pub service: Option<String>,
    /// A hub event `source` (`changehub.github`).
    pub source: Option<String>,
    pub detail_type: Option<String>,
    /// Rows expired by then are left out (TTL deletion is lazy).
    pub now: DateTime<Utc>,
    /// At most this many rows (1..=[`super::MAX_PAGE`]).
    pub limit: usize,
    /// The `next` of the previous page.
    pub after: Option<Cursor>,
}

impl ActivityQuery {
    /// Whether a row is one this query lists (its time range aside).
    pub fn matches(&self, row: &Activity) -> bool {
        let is = |wanted: &Option<String>, value: Option<&str>| wanted.as_deref().is_none_or(|w| value == Some(w));
        row.expires_at > self.now
            && is(&self.service, row.service.as_deref())
            && is(&self.source, Some(row.source.as_str()))
            && is(&self.detail_type, Some(row.detail_type.as_str()))
    }

    /// Rows one page evaluates at most: `limit` unfiltered, else [`MAX_EVALUATED`].
    pub fn evaluated(&self) -> usize {
        let filtered = self.service.is_some() || self.source.is_some() || self.detail_type.is_some();
        if filtered { MAX_EVALUATED.max(self.limit) } else { self.limit }
    }
}

/// The activity log: one partition per tenant, sorted by event time.
pub trait ActivityLog: Send + Sync {
    /// Keeps `rows` in `tenant`'s log, each under its event time and event
    /// id: writing a row again replaces it, never adds a second.
    fn record(&self, tenant: &TenantId, rows: &[Activity]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page: the matching rows among at most [`ActivityQuery::evaluated`]
    /// rows of the time range after the cursor, at most `limit` of them, and
    /// a `next` cursor whenever the range may hold more, even when the page
    /// came back short or empty (a filter matched few of the rows read).
    /// `InvalidCursor` if `after` is not an activity cursor.
    fn activity(&self, query: &ActivityQuery) -> impl Future<Output = Result<Page<Activity>, StoreError>> + Send;
}
