//! Webhook secrets, per tenant and source. Several may be valid at once so
//! that a secret can be rotated without refusing deliveries.

use std::future::Future;

use super::store::BoxError;
use crate::domain::TenantId;
use crate::ingest::Origin;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets backend failed")]
    Backend(#[source] BoxError),
    #[error("the secrets document is invalid: {0}")]
    Invalid(String),
}

pub trait SecretSource: Send + Sync {
    /// The secrets valid now for `origin`'s webhooks to `tenant`; empty when none is configured.
    fn secrets(
        &self,
        tenant: &TenantId,
        origin: Origin,
    ) -> impl Future<Output = Result<Vec<String>, SecretsError>> + Send;

    /// Whether [`Self::secrets`] would answer from memory now, without a
    /// call to the backend (a source that keeps its secrets in memory always does).
    fn is_cached(&self) -> bool {
        true
    }
}
