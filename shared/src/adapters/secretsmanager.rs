//! Webhook secrets from AWS Secrets Manager: one secret whose value is the
//! JSON document `{"<tenant>": {"<source>": ["secret", "previous"]}}`
//! (the same shape as the local `CHANGEHUB_SECRETS_FILE`). Read at first use,
//! not at init, and kept for a few minutes so a rotation is picked up
//! without a redeploy.

pub use aws_sdk_secretsmanager::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

use super::env_secrets::{SecretsDocument, parse_document};
use crate::domain::TenantId;
use crate::domain::audit::AuditKey;
use crate::ingest::Origin;
use crate::ports::{AuditSealer, BoxError, SecretSource, SecretsError};

/// How long a fetched document is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// The document and when it was fetched.
type Cached = Option<(Instant, Arc<SecretsDocument>)>;

#[derive(Clone)]
pub struct SecretsManagerSecrets {
    client: Client,
    secret_id: String,
    cache: Arc<RwLock<Cached>>,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into(), cache: Arc::new(RwLock::new(None)) }
    }

    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        if let Some((at, doc)) = self.cache.read().await.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(doc.clone());
        }
        let mut cache = self.cache.write().await;
        if let Some((at, doc)) = cache.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(doc.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretsError::Backend(e.into()))?;
        let text = out.secret_string.ok_or_else(|| SecretsError::Invalid("the secret has no string value".into()))?;
        let doc = Arc::new(parse_document(&text)?);
        *cache = Some((Instant::now(), doc.clone()));
        Ok(doc)
    }
}

impl SecretSource for SecretsManagerSecrets {
    async fn secrets(&self, tenant: &TenantId, origin: Origin) -> Result<Vec<String>, SecretsError> {
        let doc = self.document().await?;
        Ok(doc.get(tenant.as_str()).and_then(|m| m.get(origin.as_str())).cloned().unwrap_or_default())
    }
}

/// The hub's audit key: the string value of secret `secret_id` (at least 32
/// bytes; the template generates 64 random characters).
pub async fn audit_key(client: &Client, secret_id: &str) -> Result<AuditKey, BoxError> {
    let out = client.get_secret_value().secret_id(secret_id).send().await?;
    let text = out.secret_string.ok_or("the audit key secret has no string value")?;
    Ok(AuditKey::new(text.as_bytes())?)
}

/// Seals with [`audit_key`], read at the first write (not at init).
pub fn audit_sealer(client: Client, secret_id: impl Into<String>) -> AuditSealer {
    let secret_id = secret_id.into();
    AuditSealer::lazy(move || {
        let (client, secret_id) = (client.clone(), secret_id.clone());
        async move { audit_key(&client, &secret_id).await }
    })
}
