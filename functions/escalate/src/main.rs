//! The escalate Lambda: the target of an EventBridge Scheduler schedule.
//! Each invocation runs one escalation tick: the approvals the sharded due
//! index says are due take their reminder, escalation or breach, each once;
//! scheduled changes due for it get their "starting soon" reminder, once;
//! the outbox publishes the `Approval ...` and `Change Starting Soon` events
//! and notifications.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::secretsmanager;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::escalation::Escalator;
use changehub::config::AuditedTable;
use changehub::ports::SystemClock;
use escalate::{Scheduled, Summary};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

type Deps = Escalator<DynamoStore, CachedCatalog<DynamoStore>, SystemClock>;

#[tracing::instrument(skip(deps, event), fields(execution_id = ?event.payload.execution_id))]
async fn handle(deps: &Deps, event: LambdaEvent<Scheduled>) -> Result<Summary, Error> {
    Ok(escalate::handle(deps, &event.payload).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let table = AuditedTable::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let store = table.store(&aws, secretsmanager::Client::new(&aws));
    let deps = Escalator { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
    run(service_fn(|event| handle(&deps, event))).await
}
