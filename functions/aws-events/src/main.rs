//! The aws-events Lambda: the target of the EventBridge rules that forward
//! AWS events (CloudWatch alarms, Config, CloudFormation, CloudTrail) from the
//! default bus. Every failure fails the invocation, so it is retried and sent
//! to the dead-letter queue, with its reason, when retries run out (an event
//! that cannot be normalized included: see `aws_events::diagnostic`).

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::eventbridge::{self, EventBridgeBus};
use changehub::app::activity::ActivityRetention;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::{ClaimTimes, Ingest};
use changehub::config::{self, ConfigError};
use changehub::domain::TenantId;
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    table: String,
    event_bus: String,
    /// The tenant this AWS account's events belong to.
    tenant: TenantId,
    claims: ClaimTimes,
    retention: ActivityRetention,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            event_bus: config::required("CHANGEHUB_EVENT_BUS")?,
            tenant: config::aws_tenant()?,
            claims: ClaimTimes::from_env()?,
            retention: ActivityRetention::from_env()?,
        })
    }
}

type Deps = Ingest<DynamoStore, EventBridgeBus, CachedCatalog<DynamoStore>, SystemClock>;

async fn handle(deps: &Deps, tenant: &TenantId, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    aws_events::handle(deps, tenant, &event.payload).await.map_err(|e| aws_events::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table);
    // Every event needs the tenant's catalog: read it in the background
    // while the rest of init runs; the first event waits for what is left.
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    catalog.prefetch(config.tenant.clone());
    let deps =
        Ingest::new(store, EventBridgeBus::new(eventbridge::Client::new(&aws), config.event_bus), catalog, SystemClock)
            .with_claims(config.claims)
            .with_retention(config.retention);
    let tenant = config.tenant;
    run(service_fn(|event| handle(&deps, &tenant, event))).await
}
