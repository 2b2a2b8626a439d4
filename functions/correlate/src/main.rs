//! The correlate Lambda: the target of the hub bus rule for incident, alert
//! and alarm events. Each event updates its incident record (and the tenant's
//! open major incidents); store failures fail the invocation so it is
//! retried, and sent to the dead-letter queue when retries run out.

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::secretsmanager;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::tagging::Tagging;
use changehub::config::{self, ConfigError};
use changehub::ports::SystemClock;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    table: String,
    /// The secret holding the audit key: the open major incidents' governance entries are sealed with it.
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

type Deps = Tagging<DynamoStore, CachedCatalog<DynamoStore>, SystemClock>;

async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(correlate::handle(deps, &event.payload).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let sealer = secretsmanager::audit_sealer(secretsmanager::Client::new(&aws), config.audit_key_secret);
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table).with_sealer(std::sync::Arc::new(sealer));
    let deps = Tagging::new(store.clone(), CachedCatalog::new(store, DEFAULT_CACHE_TTL), SystemClock);
    run(service_fn(|event| handle(&deps, event))).await
}
