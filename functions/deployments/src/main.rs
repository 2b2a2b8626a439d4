//! The deployments Lambda: the target of the hub bus rule for the canonical
//! deployment events (`Deployment Created`, `Deployment Status Changed`,
//! `Workflow Run Changed`). Each becomes an audited write of a change record;
//! the outbox publishes the `Change ...` events for them.

use std::sync::Arc;

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::secretsmanager;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::deployments::Deployments;
use changehub::config::{self, ConfigError};
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    table: String,
    /// The secret holding the audit key that seals every audit entry.
    audit_key_secret: String,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            audit_key_secret: config::required("CHANGEHUB_AUDIT_KEY_SECRET")?,
        })
    }
}

type Deps = Deployments<DynamoStore, CachedCatalog<DynamoStore>, SystemClock>;

#[tracing::instrument(skip(deps, event), fields(event_id = ?event.payload.get("id")))]
async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    deployments::handle(deps, &event.payload).await.map_err(|e| deployments::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    // The audit key is read at the first write, not here.
    let sealer = secretsmanager::audit_sealer(secretsmanager::Client::new(&aws), config.audit_key_secret);
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table).with_sealer(Arc::new(sealer));
    let deps = Deployments { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
    run(service_fn(|event| handle(&deps, event))).await
}
