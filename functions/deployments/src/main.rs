//! The deployments Lambda: the target of the hub bus rule for the canonical
//! deployment events (`Deployment Created`, `Deployment Status Changed`,
//! `Workflow Run Changed`). Each becomes an audited write of a change record;
//! the outbox publishes the `Change ...` events for them.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::secretsmanager;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::deployments::Deployments;
use changehub::config::AuditedTable;
use changehub::ports::SystemClock;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

type Deps = Deployments<DynamoStore, CachedCatalog<DynamoStore>, SystemClock>;

#[tracing::instrument(skip(deps, event), fields(event_id = ?event.payload.get("id")))]
async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    deployments::handle(deps, &event.payload).await.map_err(|e| deployments::diagnostic(&e))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let table = AuditedTable::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let store = table.store(&aws, secretsmanager::LazyClient::new(&aws));
    let deps = Deployments { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
    run(service_fn(|event| handle(&deps, event))).await
}
