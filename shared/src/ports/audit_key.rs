//! The hub's audit key, as the stores that seal audit entries reach it: held
//! from the start (the local hub's key file) or loaded at the first write
//! (a Secrets Manager secret on AWS), never at a function's init.

use std::future::Future;
use std::pin::Pin;

use super::store::{BoxError, StoreError};
use crate::domain::AuditEntry;
use crate::domain::audit::AuditKey;

type Loading = Pin<Box<dyn Future<Output = Result<AuditKey, BoxError>> + Send>>;

/// Seals audit entries as a store writes them.
pub struct AuditSealer {
    key: tokio::sync::OnceCell<AuditKey>,
    load: Box<dyn Fn() -> Loading + Send + Sync>,
}

impl AuditSealer {
    /// A sealer with its key in hand.
    pub fn with_key(key: AuditKey) -> Self {
        Self {
            key: tokio::sync::OnceCell::new_with(Some(key)),
            load: Box::new(|| Box::pin(async { Err("the audit key is already loaded".into()) })),
        }
    }

    /// A sealer that loads its key at the first seal; a failed load is tried
    /// again at the next one.
    pub fn lazy<F>(load: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<AuditKey, BoxError>> + Send + 'static,
    {
        Self { key: tokio::sync::OnceCell::new(), load: Box::new(move || Box::pin(load())) }
    }

    /// The key, loading it if needed. A failed load is a retryable store
    /// error: nothing is written unsealed.
    pub async fn key(&self) -> Result<&AuditKey, StoreError> {
        self.key.get_or_try_init(|| (self.load)()).await.map_err(|e| StoreError::backend(true, AuditKeyUnavailable(e)))
    }
}

/// `entry`, sealed when the store has a sealer; as it is otherwise (tests,
/// stores opened without a key).
pub async fn seal_entry(sealer: Option<&AuditSealer>, entry: &AuditEntry) -> Result<AuditEntry, StoreError> {
    match sealer {
        Some(s) => Ok(s.key().await?.seal(entry)),
        None => Ok(entry.clone()),
    }
}

/// [`seal_entry`] for the entries of one write.
pub async fn seal_entries(sealer: Option<&AuditSealer>, entries: &[AuditEntry]) -> Result<Vec<AuditEntry>, StoreError> {
    match sealer {
        Some(s) => {
            let key = s.key().await?;
            Ok(entries.iter().map(|e| key.seal(e)).collect())
        }
        None => Ok(entries.to_vec()),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the audit key could not be loaded")]
pub struct AuditKeyUnavailable(#[source] BoxError);

impl std::fmt::Debug for AuditSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSealer").field("loaded", &self.key.initialized()).finish()
    }
}
