//! The correlate Lambda: the target of the hub bus rule for incident, alert
//! and alarm events and for the change events that set or move a change's
//! implementation. Each incident event updates its incident record (and the
//! tenant's open major incidents), tags it change-related both ways, tells
//! people of each tag (the SNS topic, and write-backs where the tenant's
//! catalog turns them on) and records it for problem management; a change
//! event does the same for each incident the change may explain (a change
//! that arrives after its incident). Every failure fails the invocation, so
//! it is retried and sent to the dead-letter queue, with its reason, when
//! retries run out (an unreadable event included).

use std::sync::Arc;

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use changehub::adapters::secretsmanager::{self, SecretsManagerSecrets};
use changehub::adapters::sns::{self, SnsNotifier};
use changehub::app::Changes;
use changehub::app::tagging::Consumer;
use changehub::config::{self, AuditedTable, ConfigError};
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    table: AuditedTable,
    /// Where tags are told.
    topic_arn: String,
    /// The secret holding the tenants' write-back tokens; none: write-backs are refused as not configured.
    writeback_secret: Option<String>,
    /// The hub's public address, for links in notifications.
    public_url: Option<String>,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: AuditedTable::from_env()?,
            topic_arn: config::required("CHANGEHUB_TOPIC_ARN")?,
            writeback_secret: config::optional("CHANGEHUB_WRITEBACK_SECRET"),
            public_url: config::public_url()?,
        })
    }
}

type Deps = Consumer<DynamoStore, SystemClock, SnsNotifier, HttpWriteBack<Option<SecretsManagerSecrets>>>;

async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    correlate::handle(deps, &event.payload).await.map_err(|e| correlate::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let secrets = secretsmanager::LazyClient::new(&aws);
    let store = config.table.store(&aws, secrets.clone());
    let tokens = config.writeback_secret.map(|id| SecretsManagerSecrets::new(secrets, id));
    let writeback = HttpWriteBack::new(tokens, Timeouts::default(), Retries::default())?;
    let notifier = SnsNotifier::new(sns::Client::new(&aws), config.topic_arn);
    let deps = Consumer::new(Arc::new(Changes::new(store, SystemClock)), notifier, writeback)
        .with_public_url(config.public_url);
    run(service_fn(|event| handle(&deps, event))).await
}
