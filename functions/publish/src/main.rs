//! The publish Lambda: the change table's stream (the outbox) to hub events
//! on the bus and notifications on the SNS topic, each once. Failed records
//! are retried by the event source mapping from the first that failed, and
//! sent to its on-failure queue when retries run out.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use changehub::adapters::dynamodb::{self, DynamoStore};
use changehub::adapters::eventbridge::{self, EventBridgeBus};
use changehub::adapters::sns::{self, SnsNotifier};
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::ingest::ClaimTimes;
use changehub::app::publish::Outbox;
use changehub::config::{self, ConfigError};
use changehub::ports::SystemClock;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

/// Named environment variables, read once at init.
struct Config {
    table: String,
    event_bus: String,
    topic_arn: String,
    claims: ClaimTimes,
    /// The hub's public address, for links in notifications.
    public_url: Option<String>,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            event_bus: config::required("CHANGEHUB_EVENT_BUS")?,
            topic_arn: config::required("CHANGEHUB_TOPIC_ARN")?,
            claims: ClaimTimes::from_env()?,
            public_url: config::public_url()?,
        })
    }
}

struct Deps {
    outbox: Outbox<DynamoStore, EventBridgeBus, SnsNotifier, SystemClock, CachedCatalog<DynamoStore>>,
    store: DynamoStore,
}

async fn handle(deps: &Deps, event: LambdaEvent<Event>) -> Result<DynamoDbEventResponse, Error> {
    let lease = deps.outbox.claims.lease;
    let (response, tally) = publish::handle(&deps.outbox, &deps.store, event.payload, lease).await;
    tracing::info!(
        sent = tally.sent,
        duplicates = tally.duplicates,
        skipped = tally.skipped,
        failed = response.batch_item_failures.len(),
        "batch published"
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let store = DynamoStore::new(dynamodb::Client::new(&aws), config.table);
    let outbox = Outbox::new(
        store.clone(),
        EventBridgeBus::new(eventbridge::Client::new(&aws), config.event_bus),
        SnsNotifier::new(sns::Client::new(&aws), config.topic_arn),
        SystemClock,
        CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL),
    )
    .with_claims(config.claims)
    .with_public_url(config.public_url);
    let deps = Deps { outbox, store };
    run(service_fn(|event| handle(&deps, event))).await
}
