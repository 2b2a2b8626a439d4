//! The scm Lambda: the target of the hub bus rule for pull and merge
//! requests and for the change events that may turn their statuses. The
//! merge gate sets each gated request's `changehub/change` commit status on
//! GitHub or GitLab, links it to the changes it references (the reverse
//! index), and sets the statuses of every linked request again when a change
//! is decided. Every failure fails the invocation, so it is retried and sent
//! to the dead-letter queue, with its reason, when retries run out.
//!
//! It also runs rollback automation (a failed production deployment of a
//! change planned with an automated rollback dispatches its service's
//! rollback) and answers GitHub deployment protection rules (at once, or
//! when the change is decided or the escalation tick hands a kept request
//! back), alarming the CAB on the topic when an answer cannot be delivered.
//!
//! Init stays lean: no secret is read here. The forge credentials (one
//! Secrets Manager secret) are read at the first forge call and kept for a
//! few minutes; GitHub App installation tokens are kept by the client until
//! shortly before they expire, across warm invocations.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::scm::{Endpoints, ForgeClient, Retries, Timeouts};
use changehub::adapters::secretsmanager::{self, SecretsManagerSecrets};
use changehub::adapters::sns::{self, SnsNotifier};
use changehub::app::activity::ActivityRetention;
use changehub::app::catalog::CachedCatalog;
use changehub::config::{self, AuditedTable, ConfigError};
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use scm::Scm;
use serde_json::Value;

/// Named environment variables, read once at init.
struct Config {
    /// The table, and the audit key sealing the entries rollback automation writes on a change.
    table: AuditedTable,
    /// The secret holding the tenants' forge credentials (`github_app_id` and
    /// `github_app_key`, or `github_api`; `gitlab_api`).
    forge_secret: String,
    /// `CHANGEHUB_GITHUB_API_URL` and `CHANGEHUB_GITLAB_URL` (defaults: the public services).
    endpoints: Endpoints,
    /// The hub's public address: statuses link to the change's page under it.
    public_url: Option<String>,
    /// The topic a deployment protection rule's alarm goes to the CAB on.
    topic_arn: String,
    /// How long the activity log keeps the deployment gate's answers.
    gate_retention: ActivityRetention,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: AuditedTable::from_env()?,
            forge_secret: config::required("CHANGEHUB_FORGE_SECRET")?,
            endpoints: Endpoints::from_env()?,
            public_url: config::public_url()?,
            topic_arn: config::required("CHANGEHUB_TOPIC_ARN")?,
            gate_retention: ActivityRetention::from_env()?,
        })
    }
}

type Deps = Scm<DynamoStore, CachedCatalog<DynamoStore>, ForgeClient<SecretsManagerSecrets>, SystemClock, SnsNotifier>;

async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    deps.handle(&event.payload).await.map_err(|e| scm::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let secrets = secretsmanager::LazyClient::new(&aws);
    let store = config.table.store(&aws, secrets.clone());
    let credentials = SecretsManagerSecrets::new(secrets, config.forge_secret);
    let forges = ForgeClient::new(credentials, config.endpoints, Timeouts::default(), Retries::default());
    let notifier = SnsNotifier::new(sns::Client::new(&aws), config.topic_arn);
    let deps = Scm::new(store, forges, notifier, config.public_url, config.gate_retention);
    run(service_fn(|event| handle(&deps, event))).await
}
