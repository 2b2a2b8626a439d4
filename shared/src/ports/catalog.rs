//! Per-tenant documents (catalog, freeze windows, major incidents), the
//! tenant's governance trail that audits every write of them, and the
//! catalog as use cases read it.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

use super::store::{Cursor, Page, StoreError};
use crate::domain::TenantId;
use crate::domain::audit::{AuditEntry, TrailHead};
use crate::domain::catalog::CatalogView;

/// The kinds of per-tenant document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Catalog,
    Freezes,
    Incidents,
    Delegations,
    /// Bulk-change suppression windows of unauthorized-change alerts.
    Suppressions,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Catalog => "catalog",
            DocKind::Freezes => "freezes",
            DocKind::Incidents => "incidents",
            DocKind::Delegations => "delegations",
            DocKind::Suppressions => "suppressions",
        }
    }
}

/// One version of a tenant document. Every version is also kept, immutable,
/// as the document's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredDoc {
    /// 1 for the first version, then one more per write.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub body: serde_json::Value,
    /// When the tick is due to take the document (a freezes document's next
    /// "freeze starting" notice): the store keeps it in the due index
    /// ([`FreezesDue`]) in the same write as the document; none takes it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

/// A tenant document the due index returned.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDoc {
    pub tenant: TenantId,
    pub doc: StoredDoc,
}

/// The freezes documents due for their "freeze starting" notices: one entry
/// per tenant at most (its document's [`StoredDoc::due_at`]), in one of
/// [`crate::ports::DUE_SHARDS`] shards by tenant, so a tick reads only what is due.
pub trait FreezesDue: Send + Sync {
    /// The freezes documents of shard `shard` due no later than `until`, earliest first.
    fn due_freezes(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<DueDoc>, StoreError>> + Send;
}

/// Small per-tenant documents, each read with one GetItem and replaced with
/// one conditional write that also appends to the tenant's governance trail
/// (hash chained and sealed like a change's audit trail).
pub trait TenantDocs: Send + Sync {
    fn get_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
    ) -> impl Future<Output = Result<Option<StoredDoc>, StoreError>> + Send;

    /// Stores `doc` as the current version if the stored one is
    /// `doc.version - 1` (none when `doc.version` is 1), keeps it in the
    /// history, and appends `entry` to the tenant's governance trail if the
    /// trail's head is at `entry.seq - 1` (no trail when `entry.seq` is 1),
    /// moving the head to it; all in one atomic write. `VersionConflict`
    /// (naming the document's expected version) if either moved.
    fn put_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        doc: &StoredDoc,
        entry: &AuditEntry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Where the tenant's governance trail ends; none before its first entry.
    fn trail_head(&self, tenant: &TenantId) -> impl Future<Output = Result<Option<TrailHead>, StoreError>> + Send;

    /// A page of the governance trail, oldest first, after the cursor.
    /// `InvalidCursor` if it is not one of this trail's.
    fn trail(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<Page<AuditEntry>, StoreError>> + Send;
}

/// The tenant's catalog, validated and indexed. An empty catalog (version 0)
/// when the tenant has none yet.
pub trait CatalogReader: Send + Sync {
    fn catalog(&self, tenant: &TenantId) -> impl Future<Output = Result<Arc<CatalogView>, StoreError>> + Send;
}
