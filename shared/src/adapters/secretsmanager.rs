//! Webhook secrets and write-back tokens from AWS Secrets Manager: one
//! secret whose value is the JSON document
//! `{"<tenant>": {"<source>": ["secret", "previous"]}}` (the same shape as
//! the local `CHANGEHUB_SECRETS_FILE`; write-back tokens are the entries
//! `pagerduty_api` and `github_api`; the merge gate's credentials are
//! `github_app_id`, `github_app_key` and `gitlab_api`, see
//! [`super::env_secrets`]). The webhook secrets and the write-back
//! tokens are kept in two secrets of that shape, so that each function reads
//! only what it uses. Read at first use, or in the background from init
//! ([`SecretsManagerSecrets::prefetch`]), and kept for a few minutes so a
//! rotation is picked up without a redeploy.
//!
//! A refresh never makes things worse: an entry of the new document that is
//! wrong is logged by path and the last good document's entry for that
//! tenant and source is served instead; a new document that cannot be read
//! at all (or a failed fetch) leaves the last good one in use.

pub use aws_sdk_secretsmanager::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

use super::env_secrets::{Parsed, SecretsDocument, github_in, gitlab_in, parse_document, token_in};
use crate::domain::TenantId;
use crate::domain::audit::AuditKey;
use crate::domain::writeback::Target;
use crate::ingest::Origin;
use crate::ports::{
    AuditSealer, BoxError, ForgeCredentials, GithubCredential, SecretSource, SecretsError, WriteBackCredentials,
};

/// How long a fetched document is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// The Secrets Manager client, built at its first use ([`super::aws::Lazy`]):
/// most api requests and escalation ticks never read a secret.
pub type LazyClient = super::aws::Lazy<Client>;

impl LazyClient {
    /// A client built from `aws` at its first use.
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self::from_config(aws, Client::new)
    }
}

/// The document and when it was fetched.
type Cached = Option<(Instant, Arc<SecretsDocument>)>;

#[derive(Clone)]
pub struct SecretsManagerSecrets {
    client: LazyClient,
    secret_id: String,
    cache: Arc<RwLock<Cached>>,
}

impl SecretsManagerSecrets {
    pub fn new(client: impl Into<LazyClient>, secret_id: impl Into<String>) -> Self {
        Self { client: client.into(), secret_id: secret_id.into(), cache: Arc::new(RwLock::new(None)) }
    }

    /// Starts fetching the document in the background, so that a cold
    /// process's first delivery finds it fetched, or being fetched (and
    /// waits for that fetch: it holds the cache). A failed prefetch is
    /// logged and leaves nothing cached: the first delivery fetches again.
    pub fn prefetch(&self) -> tokio::task::JoinHandle<()> {
        let secrets = self.clone();
        tokio::spawn(async move {
            if let Err(error) = secrets.document().await {
                tracing::warn!(secret_id = %secrets.secret_id, %error, "webhook secrets prefetch failed; the first delivery fetches them again");
            }
        })
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
        let previous = cache.as_ref().map(|(_, doc)| doc.clone());
        let doc = match (self.fetch().await, previous) {
            (Ok(parsed), previous) => {
                parsed.log_skipped();
                Arc::new(merge(parsed, previous.as_deref()))
            }
            (Err(e), Some(previous)) => {
                tracing::error!(secret_id = %self.secret_id, error = %e, "secrets not refreshed; the last good document stays in use");
                previous
            }
            (Err(e), None) => return Err(e),
        };
        *cache = Some((Instant::now(), doc.clone()));
        Ok(doc)
    }

    async fn fetch(&self) -> Result<Parsed, SecretsError> {
        let text = secret_string(&self.client, &self.secret_id).await.map_err(SecretsError::Backend)?;
        let text = text.ok_or_else(|| SecretsError::Invalid("the secret has no string value".into()))?;
        parse_document(&text)
    }
}

/// The string value of secret `secret_id`, if it has one.
async fn secret_string(client: &Client, secret_id: &str) -> Result<Option<String>, BoxError> {
    Ok(client.get_secret_value().secret_id(secret_id).send().await?.secret_string)
}

/// The new document, with each entry it left out taken from the last good
/// document (a whole tenant, or one tenant's source).
fn merge(parsed: Parsed, previous: Option<&SecretsDocument>) -> SecretsDocument {
    let mut doc = parsed.document;
    let Some(previous) = previous else { return doc };
    for skipped in &parsed.skipped {
        let Some(old) = previous.get(&skipped.tenant) else { continue };
        let entry = doc.entry(skipped.tenant.clone()).or_default();
        match &skipped.source {
            Some(source) => {
                if let Some(secrets) = old.get(source) {
                    entry.insert(source.clone(), secrets.clone());
                }
            }
            None => entry.extend(old.iter().map(|(k, v)| (k.clone(), v.clone()))),
        }
    }
    doc
}

impl SecretSource for SecretsManagerSecrets {
    async fn secrets(&self, tenant: &TenantId, origin: Origin) -> Result<Vec<String>, SecretsError> {
        let doc = self.document().await?;
        Ok(doc.get(tenant.as_str()).and_then(|m| m.get(origin.as_str())).cloned().unwrap_or_default())
    }

    fn is_cached(&self) -> bool {
        // A fetch in progress holds the write lock: not cached.
        self.cache.try_read().is_ok_and(|c| c.as_ref().is_some_and(|(at, _)| at.elapsed() < REFRESH))
    }
}

impl WriteBackCredentials for SecretsManagerSecrets {
    async fn token(&self, tenant: &TenantId, target: Target) -> Result<Option<String>, SecretsError> {
        Ok(token_in(&*self.document().await?, tenant, target))
    }
}

impl ForgeCredentials for SecretsManagerSecrets {
    async fn github(&self, tenant: &TenantId) -> Result<Option<GithubCredential>, SecretsError> {
        Ok(github_in(&*self.document().await?, tenant))
    }

    async fn gitlab(&self, tenant: &TenantId) -> Result<Option<String>, SecretsError> {
        Ok(gitlab_in(&*self.document().await?, tenant))
    }
}

/// The hub's audit key: the string value of secret `secret_id` (at least 32
/// bytes; the template generates 64 random characters).
pub async fn audit_key(client: &Client, secret_id: &str) -> Result<AuditKey, BoxError> {
    let text = secret_string(client, secret_id).await?.ok_or("the audit key secret has no string value")?;
    Ok(AuditKey::new(text.as_bytes())?)
}

/// Seals with [`audit_key`], read at the first write (not at init), through
/// `client` (a [`LazyClient`] is built then too).
pub fn audit_sealer(client: impl Into<LazyClient>, secret_id: impl Into<String>) -> AuditSealer {
    let (client, secret_id): (LazyClient, String) = (client.into(), secret_id.into());
    AuditSealer::lazy(move || {
        let (client, secret_id) = (client.clone(), secret_id.clone());
        async move { audit_key(&client, &secret_id).await }
    })
}

#[cfg(feature = "dynamodb")]
impl crate::config::AuditedTable {
    /// The table's store, sealing with the audit key read at the first
    /// write (not here) through `secrets` (a [`LazyClient`]: built then).
    pub fn store(self, aws: &aws_config::SdkConfig, secrets: impl Into<LazyClient>) -> super::dynamodb::DynamoStore {
        let sealer = audit_sealer(secrets, self.audit_key_secret);
        super::dynamodb::DynamoStore::new(super::dynamodb::Client::new(aws), self.table).with_sealer(Arc::new(sealer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_lazy_client_is_built_at_its_first_use_not_by_the_sealer_or_secrets_holding_it() {
        let aws = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let built = Arc::new(AtomicBool::new(false));
        let client = LazyClient::with({
            let built = built.clone();
            move || {
                built.store(true, Ordering::SeqCst);
                Client::new(&aws)
            }
        });
        let _sealer = audit_sealer(client.clone(), "audit-key");
        let _secrets = SecretsManagerSecrets::new(client.clone(), "webhooks");
        assert!(!built.load(Ordering::SeqCst), "nothing is built before the first use");
        let _ = client.config();
        assert!(built.load(Ordering::SeqCst), "the first use builds it");
    }

    #[test]
    fn a_bad_entry_in_a_refreshed_document_keeps_the_last_good_secrets_for_it() {
        let good = parse_document(
            r#"{"default": {"github": ["old"]}, "acme": {"github": ["acme-old"], "pagerduty": ["pd"]}}"#,
        )
        .expect("good")
        .document;
        let refreshed =
            parse_document(r#"{"default": {"github": ["new"]}, "acme": {"github": "oops", "pagerduty": ["pd2"]}}"#)
                .expect("parsed");
        let merged = merge(refreshed, Some(&good));
        assert_eq!(merged["default"]["github"], ["new"]);
        assert_eq!(merged["acme"]["github"], ["acme-old"], "the bad entry keeps its last good value");
        assert_eq!(merged["acme"]["pagerduty"], ["pd2"]);

        let whole_tenant_bad = parse_document(r#"{"default": {"github": ["new"]}, "acme": 5}"#).expect("parsed");
        let merged = merge(whole_tenant_bad, Some(&good));
        assert_eq!(merged["acme"]["pagerduty"], ["pd"]);
    }
}
