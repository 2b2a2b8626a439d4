//! The escalate Lambda: the target of an EventBridge Scheduler schedule.
//! Each invocation runs one escalation tick: the approvals the sharded due
//! index says are due take their reminder, escalation or breach, each once;
//! the outbox publishes the `Approval ...` events and notifications.

use std::sync::Arc;

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::secretsmanager;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::escalation::Escalator;
use changehub::config::{self, ConfigError};
use changehub::ports::SystemClock;
use escalate::{Scheduled, Summary};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

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

type Deps = Escalator<DynamoStore, CachedCatalog<DynamoStore>, SystemClock>;

#[tracing::instrument(skip(deps, event), fields(execution_id = ?event.payload.execution_id))]
async fn handle(deps: &Deps, event: LambdaEvent<Scheduled>) -> Result<Summary, Error> {
    Ok(escalate::handle(deps, &event.payload).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    // The audit key is read at the first write, not here.
    let sealer = secretsmanager::audit_sealer(secretsmanager::Client::new(&aws), config.audit_key_secret);
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table).with_sealer(Arc::new(sealer));
    let deps = Escalator { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
    run(service_fn(|event| handle(&deps, event))).await
}
