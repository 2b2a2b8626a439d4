//! The escalate Lambda: the target of an EventBridge Scheduler schedule.
//! Each invocation runs one escalation tick: the approvals the sharded due
//! index says are due take their reminder, escalation or breach, each once;
//! scheduled changes due for it get their "starting soon" reminder, once;
//! the outbox publishes the `Approval ...` and `Change Starting Soon` events
//! and notifications. Freeze windows about to start are told once each: the
//! tick publishes `Freeze Starting` on the hub bus and its routed
//! notifications on the SNS topic itself (a freezes document has no outbox).
//! Deployment protection rule requests whose time came (a freeze ended, a
//! time-out near GitHub's limit, an answer to send again) are handed to the
//! scm function as `Deployment Gate Due` on the hub bus: only it holds the
//! forge credentials.

use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::eventbridge::{self, EventBridgeBus};
use changehub::adapters::secretsmanager;
use changehub::adapters::sns::{self, SnsNotifier};
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::escalation::Escalator;
use changehub::app::freeze_starting::FreezeTicker;
use changehub::app::ingest::ClaimTimes;
use changehub::app::protection::ProtectionTicker;
use changehub::config::{self, AuditedTable};
use changehub::ports::SystemClock;
use escalate::{Scheduled, Summary};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

type Catalog = CachedCatalog<DynamoStore>;

struct Deps {
    escalator: Escalator<DynamoStore, Catalog, SystemClock>,
    freezes: FreezeTicker<DynamoStore, Catalog, SystemClock, EventBridgeBus, SnsNotifier>,
    protections: ProtectionTicker<DynamoStore, EventBridgeBus, SystemClock>,
}

#[tracing::instrument(skip(deps, event), fields(execution_id = ?event.payload.execution_id))]
async fn handle(deps: &Deps, event: LambdaEvent<Scheduled>) -> Result<Summary, Error> {
    Ok(escalate::handle(&deps.escalator, &deps.freezes, &deps.protections, &event.payload).await?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let table = AuditedTable::from_env()?;
    let aws = changehub::adapters::aws::load_lambda_config().await?;
    let (event_bus, topic_arn) = (config::required("CHANGEHUB_EVENT_BUS")?, config::required("CHANGEHUB_TOPIC_ARN")?);
    let claims = ClaimTimes::from_env()?;
    let store = table.store(&aws, secretsmanager::LazyClient::new(&aws));
    let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    // Built at the first event put or message told: most ticks find nothing due.
    let bus = EventBridgeBus::new(eventbridge::LazyClient::new(&aws), event_bus);
    let notifier = SnsNotifier::new(sns::LazyClient::new(&aws), topic_arn);
    let protections = ProtectionTicker { store: store.clone(), bus: bus.clone(), clock: SystemClock };
    let freezes =
        FreezeTicker { claims, ..FreezeTicker::new(store.clone(), catalog.clone(), SystemClock, bus, notifier) };
    let escalator = Escalator { catalog, store, clock: SystemClock };
    let deps = Deps { escalator, freezes, protections };
    run(service_fn(|event| handle(&deps, event))).await
}
