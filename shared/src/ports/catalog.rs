//! Per-tenant documents (catalog, freeze windows, major incidents) and the
//! catalog as use cases read it.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

use super::store::StoreError;
use crate::domain::TenantId;
use crate::domain::catalog::CatalogView;

/// The kinds of per-tenant document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Catalog,
    Freezes,
    Incidents,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Catalog => "catalog",
            DocKind::Freezes => "freezes",
            DocKind::Incidents => "incidents",
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
}

/// Small per-tenant documents, each read with one GetItem and replaced with
/// one conditional write.
pub trait TenantDocs: Send + Sync {
    fn get_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
    ) -> impl Future<Output = Result<Option<StoredDoc>, StoreError>> + Send;

    /// Stores `doc` as the current version if the stored one is
    /// `doc.version - 1` (none when `doc.version` is 1), and keeps it in the
    /// history, in one atomic write; `VersionConflict` otherwise.
    fn put_doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        doc: &StoredDoc,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The tenant's catalog, validated and indexed. An empty catalog (version 0)
/// when the tenant has none yet.
pub trait CatalogReader: Send + Sync {
    fn catalog(&self, tenant: &TenantId) -> impl Future<Output = Result<Arc<CatalogView>, StoreError>> + Send;
}
