//! The drift Lambda: the target of the hub bus rule for configuration-change
//! evidence (AWS Config items, mutating CloudTrail calls, CloudFormation
//! stack changes and drift, and any tool's `Configuration Changed`). Each is
//! judged against the approved changes of its service; one that no change
//! authorizes becomes (or joins) an unauthorized-change finding, told on the
//! SNS topic. Every failure fails the invocation, so it is retried and sent
//! to the dead-letter queue, with its reason, when retries run out.

use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::sns::{self, SnsNotifier};
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::drift::Drift;
use changehub::app::ingest::ClaimTimes;
use changehub::config::{self, ConfigError};
use changehub::domain::TenantId;
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    table: String,
    /// Where findings are told.
    topic_arn: String,
    /// The tenant whose catalog is read at init: the one AWS events belong to.
    tenant: TenantId,
    claims: ClaimTimes,
    /// The hub's public address, for the finding's link (optional).
    public_url: Option<String>,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            topic_arn: config::required("CHANGEHUB_TOPIC_ARN")?,
            tenant: config::aws_tenant()?,
            claims: ClaimTimes::from_env()?,
            public_url: config::public_url()?,
        })
    }
}

type Deps = Drift<DynamoStore, CachedCatalog<DynamoStore>, SystemClock, SnsNotifier>;

async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    drift::handle(deps, &event.payload).await.map_err(|e| drift::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table);
    // Built at the first finding told: most evidence is authorized and tells nothing.
    let notifier = SnsNotifier::new(sns::LazyClient::new(&aws), config.topic_arn);
    // Every event needs its tenant's catalog (one GetItem, then cached for
    // the warm process): read the AWS tenant's in the background while the
    // rest of init runs, as aws-events does; the first event waits for what is left.
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    catalog.prefetch(config.tenant.clone());
    let mut deps = Drift::new(store, catalog, SystemClock, notifier).with_public_url(config.public_url);
    deps.claims = config.claims;
    run(service_fn(|event| handle(&deps, event))).await
}
