//! The deployment protection rule's ports: the requests kept until they
//! are answered (with the waiting set of each change and the due index),
//! and GitHub's callback that takes an answer.

use chrono::{DateTime, Utc};
use std::future::Future;

use super::scm::ScmError;
use super::store::{Cursor, Page, StoreError};
use crate::domain::gate::protection::{ProtectionRequest, ProtectionWaits};
use crate::domain::{ChangeId, TenantId};

/// The protection rule requests, one item each, and the requests waiting on
/// each change, one item per change; both read and written whole.
pub trait ProtectionStore: Send + Sync {
    fn get_protection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ProtectionRequest>, StoreError>> + Send;

    /// Stores `request` if the stored one is at the version before
    /// (`request.version - 1`; none stored when it is 1), else
    /// `VersionConflict`. Its due entry follows `request.due_at` in the same
    /// write (moved, or removed when `None`).
    fn put_protection(&self, request: &ProtectionRequest) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The requests of due shard `shard` (of [`crate::ports::DUE_SHARDS`])
    /// due no later than `until`, earliest first.
    fn due_protections(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<ProtectionRequest>, StoreError>> + Send;

    fn get_protection_waits(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
    ) -> impl Future<Output = Result<Option<ProtectionWaits>, StoreError>> + Send;

    /// Stores `waits` if the stored ones are at the version before, else `VersionConflict`.
    fn put_protection_waits(&self, waits: &ProtectionWaits) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a callback posts: `state` absent for a status report (a comment only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPost<'a> {
    pub environment: &'a str,
    pub state: Option<crate::domain::gate::protection::CallbackState>,
    pub comment: &'a str,
}

/// GitHub's deployment protection rule callback.
pub trait ProtectionCallbacks: Send + Sync {
    /// Posts `post` to `request`'s callback as the App installation that
    /// received it (retrying inside on 5xx, 429 and connection errors).
    fn post_callback(
        &self,
        request: &ProtectionRequest,
        post: &CallbackPost<'_>,
    ) -> impl Future<Output = Result<(), ScmError>> + Send;
}
