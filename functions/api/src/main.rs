//! The api Lambda: the change API behind API Gateway (HTTP API).

use std::sync::Arc;

use changehub::adapters::secretsmanager;
use changehub::app::Changes;
use changehub::app::activity::ActivityRetention;
use changehub::config::{AuditedTable, ConfigError};
use changehub::http::bearer::{Authenticator, ClaimNames, apigw_claims};
use changehub::ports::SystemClock;
use lambda_http::{Error, run, tracing};

/// Named environment variables, read once at init.
struct Config {
    table: AuditedTable,
    claims: ClaimNames,
    /// How long the gate's answers stay in the activity log.
    gate_retention: ActivityRetention,
}

impl Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: AuditedTable::from_env()?,
            claims: ClaimNames::from_env()?,
            gate_retention: ActivityRetention::from_env()?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    // The audit key is read at the first write, not here.
    let store = config.table.store(&aws, secretsmanager::LazyClient::new(&aws));
    let app = Arc::new(Changes::new(store, SystemClock).with_gate_retention(config.gate_retention));
    let router = changehub::http::router(app, Authenticator::Upstream(config.claims));
    run(router.layer(axum::middleware::from_fn(apigw_claims))).await
}
