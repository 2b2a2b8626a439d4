//! Security events: refused attempts (403) on the API's write routes, kept
//! per tenant for [`SECURITY_EVENT_TTL`], one write per refusal, repeats by
//! one caller on one action within a minute collapsed into one event.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

use super::store::{Cursor, Page, StoreError};
use crate::domain::TenantId;

/// How long a security event is kept (the table's TTL removes it after).
pub const SECURITY_EVENT_TTL: Duration = Duration::from_secs(90 * 86_400);

/// One refused attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub tenant: TenantId,
    /// The caller (the user id their token names).
    pub user: String,
    /// The route refused, as `METHOD /path/{param}`.
    pub action: String,
    /// What it was attempted on: the request's path.
    pub target: String,
    /// Why it was refused, as the caller was told.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Refusals of one caller on one action within one minute: how many, when
/// the first and the last came, and the last one's target and reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityEvent {
    pub user: String,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub count: u64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// A tenant's security events in `[since, until]`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityQuery {
    pub tenant: TenantId,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// At most this many events per page (1..=100).
    pub limit: usize,
    pub after: Option<Cursor>,
}

pub trait SecurityLog: Send + Sync {
    /// Records a refusal with one unconditional write that adds one to the
    /// event of its caller, action and minute (creating it), kept until
    /// `refusal.at + ttl`.
    fn record_refusal(&self, refusal: &Refusal, ttl: Duration) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of the tenant's security events whose minute lies in the
    /// range, newest first: one query. Events past their TTL that the table
    /// has not removed yet are the caller's to leave out (by `since`).
    /// `InvalidCursor` if `after` is not one of this log's cursors.
    fn security_events(
        &self,
        query: &SecurityQuery,
    ) -> impl Future<Output = Result<Page<SecurityEvent>, StoreError>> + Send;
}
