//! The api Lambda: the change API behind API Gateway (HTTP API).

use std::sync::Arc;

use changehub::adapters::dynamodb::{Client, DynamoStore};
use changehub::app::Changes;
use changehub::config::{self, ConfigError};
use changehub::http::auth::{Authenticator, ClaimNames, apigw_claims};
use changehub::ports::SystemClock;
use lambda_http::{Error, run, tracing};

/// Named environment variables, read once at init.
struct Config {
    table: String,
    claims: ClaimNames,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: config::required("CHANGEHUB_TABLE")?, claims: ClaimNames::from_env()? })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_config().await?;
    let store = DynamoStore::new(Client::new(&aws), config.table);
    let app = Arc::new(Changes::new(store, SystemClock));
    let router = changehub::http::router(app, Authenticator::Upstream(config.claims));
    run(router.layer(axum::middleware::from_fn(apigw_claims))).await
}
