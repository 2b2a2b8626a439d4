//! The ingest Lambda: webhooks behind API Gateway (HTTP API).

use std::sync::Arc;

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::eventbridge::{self, EventBridgeBus};
use changehub::adapters::secretsmanager::{self, SecretsManagerSecrets};
use changehub::app::activity::ActivityRetention;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{ClaimTimes, Ingest, Webhooks};
use changehub::config::{self, ConfigError};
use changehub::domain::TenantId;
use changehub::http::webhooks::WebhookLimits;
use changehub::http::{finish, webhooks};
use changehub::ports::SystemClock;
use lambda_http::{Error, run, tracing};

/// Named environment variables, read once at init.
struct Config {
    table: String,
    event_bus: String,
    secrets_id: String,
    claims: ClaimTimes,
    retention: ActivityRetention,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            event_bus: config::required("CHANGEHUB_EVENT_BUS")?,
            secrets_id: config::required("CHANGEHUB_SECRETS_ID")?,
            claims: ClaimTimes::from_env()?,
            retention: ActivityRetention::from_env()?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    // A cold process's first delivery needs the webhook secrets and its
    // tenant's catalog: both are read in the background from here on,
    // while the rest of init runs; the delivery waits for what is still
    // under way. The catalog read ahead is the `default` tenant's (the
    // tenant of `/webhooks/{source}`).
    let secrets = SecretsManagerSecrets::new(secretsmanager::Client::new(&aws), config.secrets_id);
    secrets.prefetch();
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table);
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    catalog.prefetch(TenantId::parse(webhooks::DEFAULT_TENANT)?);
    let ingest =
        Ingest::new(store, EventBridgeBus::new(eventbridge::Client::new(&aws), config.event_bus), catalog, SystemClock)
            .with_claims(config.claims)
            .with_retention(config.retention);
    // One request at a time per Lambda instance: one body at a time.
    let limits = WebhookLimits { concurrent_bodies: 1 };
    run(finish(webhooks::webhook_routes(Arc::new(Webhooks { ingest, secrets }), limits))).await
}
