//! The api Lambda: the change API behind API Gateway (HTTP API).

use std::sync::Arc;

use changehub::adapters::dynamodb::{Client, DynamoStore};
use changehub::adapters::secretsmanager;
use changehub::app::Changes;
use changehub::config::{self, ConfigError};
use changehub::http::bearer::{Authenticator, ClaimNames, apigw_claims};
use changehub::ports::SystemClock;
use lambda_http::{Error, run, tracing};

/// Named environment variables, read once at init.
struct Config {
    table: String,
    /// The secret holding the audit key that seals every audit entry.
    audit_key_secret: String,
    claims: ClaimNames,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::required("CHANGEHUB_TABLE")?,
            audit_key_secret: config::required("CHANGEHUB_AUDIT_KEY_SECRET")?,
            claims: ClaimNames::from_env()?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    // The audit key is read at the first write, not here.
    let sealer = secretsmanager::audit_sealer(secretsmanager::Client::new(&aws), config.audit_key_secret);
    let store = DynamoStore::new(Client::new(&aws), config.table).with_sealer(Arc::new(sealer));
    let app = Arc::new(Changes::new(store, SystemClock));
    let router = changehub::http::router(app, Authenticator::Upstream(config.claims));
    run(router.layer(axum::middleware::from_fn(apigw_claims))).await
}
