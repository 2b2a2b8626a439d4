//! The local hub: every handler in one process, on the embedded adapters.
//! `changehub serve` runs it; the end-to-end tests and the benchmark start it too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::adapters::chat::deliver::{self, Backoff, Deliverer};
use crate::adapters::chat::queue::DeliveryQueue;
use crate::adapters::chat::{Hook, HookNotifier};
use crate::adapters::embedded::EmbeddedStore;
use crate::adapters::env_secrets::StaticSecrets;
use crate::adapters::file_clock::FileClock;
use crate::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use crate::adapters::local_bus::{LocalBus, Work};
use crate::adapters::local_notifier::FileNotifier;
use crate::adapters::scm::{Endpoints, ForgeClient};
use crate::app::Changes;
use crate::app::activity::ActivityRetention;
use crate::app::catalog::CachedCatalog;
use crate::app::deployments::{self, DeploymentError, Deployments};
use crate::app::drift::{Drift, DriftError};
use crate::app::escalation::Escalator;
use crate::app::freeze_starting::{FreezeTick, FreezeTicker};
use crate::app::gate::Wakeups;
use crate::app::ingest::{Ingest, Webhooks};
use crate::app::merge_gate::{MergeGate, MergeGateError};
use crate::app::protection::{Protection, ProtectionError, ProtectionTick, ProtectionTicker};
use crate::app::publish::Outbox;
use crate::app::rollback::{RollbackError, Rollbacks};
use crate::app::tagging::{ConsumeError, Consumer};
use crate::dead_letters::{DeadLetters, Redrive};
use crate::http::bearer::{Authenticator, ClaimNames, LocalKey, LocalKeyError};
use crate::http::gates::LongPoll;
use crate::http::{self, webhooks};
use crate::ports::{Clock, SecretsError, StoreError, SystemClock};

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub db: PathBuf,
    pub notifications: PathBuf,
    /// Webhook secrets (see `adapters::env_secrets`).
    pub secrets: StaticSecrets,
    /// Members of this group are admins of their tenant whatever its catalog says; none if `None`.
    pub bootstrap_admin_group: Option<String>,
    pub limits: ServeLimits,
    /// How long the activity log keeps an accepted event.
    pub activity_retention: ActivityRetention,
    /// The hub's address as readers reach it (`serve --public-url`), for
    /// the links and commands of notifications; none: no link.
    pub public_url: Option<String>,
}

/// The chat webhooks `serve` posts notifications to (none by default),
/// and how patiently ([`crate::adapters::chat`]).
#[derive(Debug, Clone)]
pub struct ChatHooks {
    pub hooks: Vec<Hook>,
    /// The attempts of one pass.
    pub retries: Retries,
    /// The wait between passes of a delivery that failed.
    pub backoff: Backoff,
}

impl Default for ChatHooks {
    fn default() -> Self {
        Self { hooks: Vec::new(), retries: deliver::default_retries(), backoff: Backoff::default() }
    }
}

/// What the hub notifies through: the notifications file, then the chat webhooks' queue.
type HubNotifier = HookNotifier<FileNotifier>;

/// Default of [`ServeLimits::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServeLimits::concurrent_requests`].
pub const DEFAULT_CONCURRENT_REQUESTS: usize = 256;

/// What one `changehub serve` process takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request not answered in this time (reading its body included) gets 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait (and time out) for a slot.
    pub concurrent_requests: usize,
    /// Webhook bodies read at once (see [`webhooks::WebhookLimits`]).
    pub webhooks: webhooks::WebhookLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            concurrent_requests: DEFAULT_CONCURRENT_REQUESTS,
            webhooks: webhooks::WebhookLimits::default(),
        }
    }
}

/// The hub's clock: the system's, or for tests the instant in a clock file
/// (`changehub serve --clock-file`, a hidden testing aid). Every part of the
/// hub reads this one clock: the API, ingest (its claims and webhook
/// timestamps), the publisher's claims, the correlator, the deployments
/// consumer and the escalation ticker.
#[derive(Debug, Clone, Default)]
pub enum HubClock {
    #[default]
    System,
    File(Arc<FileClock>),
}

impl Clock for HubClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            HubClock::System => SystemClock.now(),
            HubClock::File(file) => file.now(),
        }
    }
}

/// The hub's escalation use case, on its store, catalog cache and clock.
type HubEscalator = Escalator<EmbeddedStore, CachedCatalog<EmbeddedStore>, HubClock>;
/// The hub's "freeze starting" use case, publishing on its bus and notifier.
type HubFreezes = FreezeTicker<EmbeddedStore, CachedCatalog<EmbeddedStore>, HubClock, LocalBus, HubNotifier>;
/// The hub's protection rule requests due (a recheck, a time-out, a redelivery), handed to the bus.
type HubProtections = ProtectionTicker<EmbeddedStore, LocalBus, HubClock>;

/// The hub's escalation tick: approvals and reminders, then freezes about
/// to start, then the protection rule requests due.
pub struct HubTicker {
    pub escalator: HubEscalator,
    pub freezes: HubFreezes,
    pub protections: HubProtections,
}

/// What one of the hub's ticks did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HubTick {
    #[serde(flatten)]
    pub tick: crate::app::escalation::Tick,
    pub freezes: FreezeTick,
    pub protections: ProtectionTick,
}

#[derive(Debug, thiserror::Error)]
pub enum HubTickError {
    #[error(transparent)]
    Escalation(#[from] crate::app::escalation::EscalationError),
    #[error(transparent)]
    Freezes(#[from] crate::app::freeze_starting::FreezeTickError),
    #[error(transparent)]
    Protections(#[from] crate::app::protection::ProtectionTickError),
}

impl HubTicker {
    pub async fn tick(&self) -> Result<HubTick, HubTickError> {
        let tick = self.escalator.tick().await?;
        let freezes = self.freezes.tick().await?;
        Ok(HubTick { tick, freezes, protections: self.protections.tick().await? })
    }
}

/// Where a hub with a clock file takes an escalation tick on request
/// (`POST`), for tests that move its clock; no other hub serves it.
pub const TEST_TICK_PATH: &str = "/_test/escalation-tick";
/// Where a hub with a clock file answers once nothing is under way (`GET`):
/// every event delivered has been handled and every committed mutation
/// published ([`Work`]), so a test can check that something did *not*
/// happen without guessing how long to wait. 503 after [`SETTLE_WITHIN`].
pub const TEST_SETTLED_PATH: &str = "/_test/settled";
/// How long [`TEST_SETTLED_PATH`] waits for the hub to settle.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot open the database {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("server failed")]
    Io(#[from] std::io::Error),
    #[error("webhook secrets")]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Key(#[from] LocalKeyError),
    #[error(transparent)]
    AuditKey(#[from] crate::domain::audit::AuditKeyError),
    #[error("the write-back client")]
    WriteBack(#[source] crate::ports::BoxError),
    #[error("the rule of a local consumer")]
    Pattern(#[from] crate::domain::event::PatternError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The assembled hub, ready to serve.
pub struct Hub {
    pub store: EmbeddedStore,
    pub bus: LocalBus,
    router: axum::Router,
    publisher: JoinHandle<()>,
    /// Applies incident, alert and alarm events to incident records and tags
    /// them, and re-checks the incidents a change event's implementation may
    /// explain (the correlate function's part).
    correlator: JoinHandle<()>,
    /// Tells the publisher to drain what is committed and stop.
    stop_publisher: tokio::sync::oneshot::Sender<()>,
    /// Escalation, on the API's catalog cache (a breach reads the tenant's CAB).
    escalation: Arc<HubTicker>,
    /// Ticks escalation, once started ([`Hub::escalate_every`]).
    escalator: Option<JoinHandle<()>>,
    /// Posts the queued chat webhook deliveries, until told to stop.
    deliverer: JoinHandle<()>,
    stop_deliverer: tokio::sync::oneshot::Sender<()>,
}

impl Hub {
    /// The hub, notifying to the notifications file only.
    pub fn open(config: &HubConfig) -> Result<Self, HubError> {
        Self::open_with(config, HubClock::System, &ChatHooks::default())
    }

    /// The hub on `clock`, notifying to the notifications file and to
    /// `chat`'s webhooks. With a clock file it also takes an escalation
    /// tick on `POST` [`TEST_TICK_PATH`], so a test that moves the clock
    /// need not wait for the ticker.
    pub fn open_with(config: &HubConfig, clock: HubClock, chat: &ChatHooks) -> Result<Self, HubError> {
        let key = LocalKey::for_database(&config.db)?;
        let sealer = Arc::new(crate::ports::AuditSealer::with_key(key.audit_key()?));
        let bus = LocalBus::new();
        let work = bus.work();
        let store = EmbeddedStore::open(&config.db)
            .map_err(|source| HubError::Store { path: config.db.clone(), source })?
            .with_sealer(sealer)
            .with_work(work.clone());
        let public_url = config.public_url.clone();
        let queue = DeliveryQueue::beside(&config.notifications);
        let deliverer = Deliverer::new(&chat.hooks, queue.clone(), Timeouts::default(), chat.retries, chat.backoff);
        let hooks: Arc<[Hook]> = chat.hooks.clone().into();
        let notifier =
            HookNotifier::new(FileNotifier::new(&config.notifications), hooks, queue.clone(), deliverer.waker());
        let (stop_deliverer, stop) = tokio::sync::oneshot::channel();
        let deliverer = tokio::spawn(deliverer.run(stop));
        let changes =
            Arc::new(Changes::new(store.clone(), clock.clone()).with_gate_retention(config.activity_retention));
        let outbox = Outbox::new(store.clone(), bus.clone(), notifier.clone(), clock.clone(), changes.catalog.clone())
            .with_public_url(public_url.clone());
        let (stop_publisher, stop) = tokio::sync::oneshot::channel();
        let publisher = tokio::spawn(run_publisher(store.stream(), outbox, stop, work.clone()));
        let correlate_events = bus.add_rule("correlate", crate::app::tagging::rule_pattern()?);
        let names = ClaimNames { bootstrap_admin_group: config.bootstrap_admin_group.clone(), ..ClaimNames::default() };
        let auth = Authenticator::Local(Arc::new(key), names);
        let ingest = || {
            Ingest::new(store.clone(), bus.clone(), changes.catalog.clone(), clock.clone())
                .with_retention(config.activity_retention)
        };
        let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: config.secrets.clone() });
        let writeback = HttpWriteBack::new(config.secrets.clone(), Timeouts::default(), Retries::default())
            .map_err(HubError::WriteBack)?;
        // What a consumer cannot apply is recorded, and redriven later when a retry may help.
        let dead_letters = DeadLetters::beside(&config.notifications, Redrive::from_env()?);
        let consumers = Consumers { dead_letters: dead_letters.clone(), work: work.clone() };
        // The merge gate: statuses on pull and merge requests, set again when a linked change is decided.
        let forges =
            ForgeClient::new(config.secrets.clone(), Endpoints::from_env()?, Timeouts::default(), Retries::default());
        // Rollback automation: a failed production deployment of a change that plans it runs its service's rollback.
        let rollbacks = Arc::new(Rollbacks {
            store: store.clone(),
            catalog: changes.catalog.clone(),
            forges: forges.clone(),
            clock: clock.clone(),
        });
        consumers.spawn(
            "rollback",
            bus.add_rule("rollback", crate::app::rollback::rule_pattern()?),
            move |e| {
                let rollbacks = rollbacks.clone();
                async move { rollbacks.handle(&e.detail_type, &e.detail).await }
            },
            RollbackError::retryable,
        );
        // Deployment protection rules: answered on GitHub's callback, at once or when the change is decided.
        let protection =
            Arc::new(Protection { changes: changes.clone(), callbacks: forges.clone(), notifier: notifier.clone() });
        consumers.spawn(
            "protection",
            bus.add_rule("protection", crate::app::protection::rule_pattern()?),
            move |e| {
                let protection = protection.clone();
                async move { protection.handle(&e.detail_type, &e.detail).await }
            },
            ProtectionError::retryable,
        );
        let merge_gate = Arc::new(MergeGate {
            store: store.clone(),
            catalog: changes.catalog.clone(),
            forges,
            clock: clock.clone(),
            public_url: public_url.clone(),
        });
        consumers.spawn(
            "merge-gate",
            bus.add_rule("merge-gate", crate::app::merge_gate::rule_pattern()?),
            move |e| {
                let merge_gate = merge_gate.clone();
                async move { merge_gate.handle(&e.detail_type, &e.detail).await }
            },
            MergeGateError::retryable,
        );
        let consumer =
            Arc::new(Consumer::new(changes.clone(), notifier.clone(), writeback).with_public_url(public_url.clone()));
        // The deployment gate's waiters decide again when a change is
        // committed, an event is applied (an incident resolved) or the API
        // writes (a freeze lifted): never by polling.
        let wakeups = Wakeups::new();
        tokio::spawn(wake_on_commits(store.stream(), wakeups.clone()));
        let applied = wakeups.clone();
        let correlator = consumers.spawn(
            "correlate",
            correlate_events,
            move |e| {
                let (consumer, applied) = (consumer.clone(), applied.clone());
                async move {
                    let done = consumer.handle(&e.detail_type, &e.detail).await;
                    applied.wake();
                    done
                }
            },
            ConsumeError::retryable,
        );
        let drift = Arc::new(
            Drift::new(store.clone(), changes.catalog.clone(), clock.clone(), notifier.clone())
                .with_public_url(public_url.clone()),
        );
        consumers.spawn(
            "drift",
            bus.add_rule("drift", crate::app::drift::rule_pattern()?),
            move |e| {
                let drift = drift.clone();
                async move { drift.handle(&e.detail_type, &e.detail).await }
            },
            DriftError::retryable,
        );
        let deployments =
            Arc::new(Deployments { store: store.clone(), catalog: changes.catalog.clone(), clock: clock.clone() });
        consumers.spawn(
            "deployments",
            bus.add_rule("deployments", crate::domain::EventPattern::parse(deployments::event_pattern())?),
            move |e| {
                let deployments = deployments.clone();
                async move { deployments.handle(&e.detail_type, &e.detail).await }
            },
            DeploymentError::retryable,
        );
        let escalation = Arc::new(HubTicker {
            escalator: Escalator { store: store.clone(), catalog: changes.catalog.clone(), clock: clock.clone() },
            freezes: FreezeTicker::new(store.clone(), changes.catalog.clone(), clock.clone(), bus.clone(), notifier),
            protections: ProtectionTicker { store: store.clone(), bus: bus.clone(), clock: clock.clone() },
        });
        // A held gate answer ends before the request timeout would cut it off.
        let longest = config.limits.request_timeout.saturating_sub(Duration::from_secs(2));
        let long_poll = LongPoll { wakeups: wakeups.clone(), longest };
        let mut routes = http::change_routes(changes.clone(), auth.clone())
            .merge(webhooks::webhook_routes(webhooks, config.limits.webhooks))
            .merge(webhooks::local_routes(Arc::new(ingest()), auth));
        if let HubClock::File(file) = &clock {
            tracing::warn!(file = %file.path().display(), tick = TEST_TICK_PATH, "the hub's clock is a clock file: a testing aid");
            routes = routes.merge(test_routes(escalation.clone(), work));
        }
        let routes = routes
            .layer(axum::Extension(long_poll))
            .layer(axum::Extension(http::HealthReports(vec![
                webhook_backlog(queue),
                dead_letter_backlog(dead_letters),
            ])))
            .layer(axum::middleware::from_fn_with_state(wakeups, wake_after_writes));
        let router = limited(http::finish(routes), config.limits);
        Ok(Self {
            store,
            bus,
            router,
            publisher,
            correlator,
            stop_publisher,
            escalation,
            escalator: None,
            deliverer,
            stop_deliverer,
        })
    }

    /// Runs an escalation tick every `period` (the local stand-in for the
    /// escalate function's schedule) until the hub stops. A tick's writes
    /// are each whole, so stopping it mid-tick takes nothing twice.
    pub fn escalate_every(&mut self, period: Duration) {
        let escalator = self.escalation.clone();
        if let Some(running) = self.escalator.replace(tokio::spawn(run_escalator(escalator, period))) {
            running.abort();
        }
    }

    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests
    /// (whose writes are committed before they are answered) and drains the
    /// publisher of the mutations already committed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HubError> {
        let Hub {
            store, bus, router, publisher, correlator, stop_publisher, escalator, deliverer, stop_deliverer, ..
        } = self;
        axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        if let Some(escalator) = escalator {
            escalator.abort();
            let _ = escalator.await;
        }
        drop((store, bus));
        // Every answered write is committed and on the stream: the publisher
        // drains those and stops.
        let _ = stop_publisher.send(());
        let _ = publisher.await;
        // The bus is gone with the publisher: the correlator applies what it
        // was handed and stops (unless someone still holds a bus).
        let _ = tokio::time::timeout(Duration::from_secs(5), correlator).await;
        // A last pass posts what was queued meanwhile; what it cannot post
        // in time stays queued for the next start.
        let _ = stop_deliverer.send(());
        let _ = tokio::time::timeout(DELIVERER_GRACE, deliverer).await;
        Ok(())
    }
}

/// The router behind a request timeout (408) and a limit on requests in
/// flight, shared by every connection.
fn limited(router: axum::Router, limits: ServeLimits) -> axum::Router {
    use axum::error_handling::HandleErrorLayer;
    use tower::ServiceBuilder;
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                http::error::ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "the request was not complete in time",
                )
            }))
            .timeout(limits.request_timeout)
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.concurrent_requests.max(1))),
    )
}

/// Wakes the gate's waiters on every committed change mutation.
async fn wake_on_commits(
    mut commits: tokio::sync::broadcast::Receiver<crate::adapters::embedded::Committed>,
    wakeups: Wakeups,
) {
    loop {
        match commits.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => wakeups.wake(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Wakes the gate's waiters after every write the API or a webhook answered with a success.
async fn wake_after_writes(
    axum::extract::State(wakeups): axum::extract::State<Wakeups>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let write = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let gate = req.uri().path() == "/gates/deployments";
    let response = next.run(req).await;
    if write && !gate && response.status().is_success() {
        wakeups.wake();
    }
    response
}
/// `GET /health`'s `webhooks`: the chat webhooks' backlog ([`Kept::backlog`](crate::adapters::chat::queue::Kept::backlog)).
fn webhook_backlog(queue: DeliveryQueue) -> http::HealthReport {
    backlog_report("webhooks", "the webhook queue", move || {
        let queue = queue.clone();
        async move { queue.list().await.map(|kept| kept.backlog()) }
    })
}

/// `GET /health`'s `dead_letters`: the letters waiting to be redriven, or exhausted ([`crate::dead_letters::Backlog`]).
fn dead_letter_backlog(letters: DeadLetters) -> http::HealthReport {
    backlog_report("dead_letters", "the dead letters", move || {
        let letters = letters.clone();
        async move { letters.backlog().await }
    })
}

/// A health report of what `read` answers, or that `what` cannot be read.
fn backlog_report<B, Fut>(
    name: &'static str,
    what: &'static str,
    read: impl Fn() -> Fut + Send + Sync + 'static,
) -> http::HealthReport
where
    B: serde::Serialize,
    Fut: Future<Output = Result<B, crate::adapters::chat::queue::QueueError>> + Send + 'static,
{
    let report = move || -> std::pin::Pin<Box<dyn Future<Output = serde_json::Value> + Send>> {
        let read = read();
        Box::pin(async move {
            match read.await {
                Ok(backlog) => serde_json::json!(backlog),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read {what}");
                    serde_json::json!({"error": format!("cannot read {what}; see the hub's log")})
                }
            }
        })
    };
    http::HealthReport { name, report: Arc::new(report) }
}

/// How long `serve` waits at exit for the deliverer's last pass.
const DELIVERER_GRACE: Duration = Duration::from_secs(5);

/// Binds `addr`; a clear error if the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HubError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| HubError::Io(std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))))
}

/// Times a local consumer tries an event that fails for a reason a retry may fix.
const LOCAL_ATTEMPTS: u32 = 3;

pub use crate::dead_letters::DEAD_LETTERS_FILE;

impl HubConfig {
    /// Where the local consumers record the events they could not apply
    /// ([`DEAD_LETTERS_FILE`] in the notifications file's directory).
    pub fn dead_letters(&self) -> PathBuf {
        self.notifications.with_file_name(DEAD_LETTERS_FILE)
    }
}

/// What every local consumer shares: where its dead letters go, and the
/// tally of work under way that each event it handles ends.
#[derive(Clone)]
struct Consumers {
    dead_letters: DeadLetters,
    work: Work,
}

impl Consumers {
    /// Runs [`consume`] for `name` on `events`, in the background.
    fn spawn<T, E, Fut>(
        &self,
        name: &'static str,
        events: tokio::sync::mpsc::UnboundedReceiver<crate::domain::HubEvent>,
        apply: impl Fn(crate::domain::HubEvent) -> Fut + Send + Sync + 'static,
        retryable: fn(&E) -> bool,
    ) -> tokio::task::JoinHandle<()>
    where
        T: std::fmt::Debug + Send + 'static,
        E: std::error::Error + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        tokio::spawn(consume(name, events, self.clone(), apply, retryable))
    }
}

/// A local consumer of one bus rule, as Lambda runs the function on AWS:
/// each event is applied, tried again a few times when a retry may help,
/// and one that still fails, or that no retry can fix (an unreadable
/// event), becomes a dead letter with its reason, never dropped
/// ([`crate::dead_letters`]). Between events it redrives its letters that
/// are due (all of them at its first pass). `name` is the function's
/// (`deployments`, `correlate`).
async fn consume<T, E, Fut>(
    name: &'static str,
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::domain::HubEvent>,
    Consumers { dead_letters, work }: Consumers,
    apply: impl Fn(crate::domain::HubEvent) -> Fut,
    retryable: fn(&E) -> bool,
) where
    T: std::fmt::Debug,
    E: std::error::Error,
    Fut: Future<Output = Result<T, E>>,
{
    let mut rescan = tokio::time::interval(dead_letters.redrive().rescan());
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            received = events.recv() => {
                let Some(event) = received else { return };
                if let Err(failure) = apply_with_retries(name, &apply, &event, retryable).await {
                    dead_letters.keep(name, &event, failure).await;
                }
                work.finished(1);
            }
            _ = rescan.tick() => {
                for letter in dead_letters.due(name, std::mem::take(&mut first)).await {
                    let outcome = apply_with_retries(name, &apply, &letter.event, retryable).await;
                    dead_letters.redriven(letter, outcome.map_err(|(reason, ..)| reason)).await;
                }
            }
        }
    }
}

/// Applies `event`, again while a retry may help (up to [`LOCAL_ATTEMPTS`]);
/// why it failed at last.
async fn apply_with_retries<T, E, Fut>(
    name: &'static str,
    apply: &impl Fn(crate::domain::HubEvent) -> Fut,
    event: &crate::domain::HubEvent,
    retryable: fn(&E) -> bool,
) -> Result<(), crate::dead_letters::Failure>
where
    T: std::fmt::Debug,
    E: std::error::Error,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 1;
    loop {
        match apply(event.clone()).await {
            Ok(done) => {
                tracing::debug!(consumer = name, event_id = %event.id, ?done, "event applied");
                return Ok(());
            }
            Err(e) if retryable(&e) && attempts < LOCAL_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
                attempts += 1;
            }
            Err(e) => return Err((crate::error_chain(&e), retryable(&e), attempts)),
        }
    }
}

/// The local escalate schedule: a tick every `period`; a failed tick is
/// logged and the next one takes what it left.
async fn run_escalator(escalator: Arc<HubTicker>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match escalator.tick().await {
            Ok(t) => tracing::debug!(
                read = t.tick.read,
                taken = t.tick.taken.len(),
                freezes = t.freezes.told.len(),
                "escalation tick"
            ),
            Err(e) => tracing::error!(error = %e, "escalation tick failed; the next one retries"),
        }
    }
}

/// `POST` [`TEST_TICK_PATH`]: one escalation tick now, answered with what it
/// did. Nothing a scheduled tick would not do: it takes only the steps due by
/// the hub's clock, each once, however many ticks overlap.
fn test_routes(escalation: Arc<HubTicker>, work: Work) -> axum::Router {
    let tick = move || {
        let escalation = escalation.clone();
        async move {
            match escalation.tick().await {
                Ok(tick) => Ok(axum::Json(tick)),
                Err(e) => Err(http::error::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "tick_failed",
                    format!("the escalation tick failed: {}", crate::error_chain(&e)),
                )),
            }
        }
    };
    let settled = move || {
        let work = work.clone();
        async move {
            let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
            // Zero twice in a row, a few milliseconds apart: what a handler
            // was about to hand on is counted by then.
            let mut quiet = 0;
            while quiet < 2 {
                if tokio::time::Instant::now() >= deadline {
                    return Err(http::error::ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "not_settled",
                        format!("{} pieces of work still under way after {SETTLE_WITHIN:?}", work.under_way()),
                    ));
                }
                quiet = if work.under_way() == 0 { quiet + 1 } else { 0 };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(axum::Json(serde_json::json!({ "settled": true })))
        }
    };
    axum::Router::new()
        .route(TEST_TICK_PATH, axum::routing::post(tick))
        .route(TEST_SETTLED_PATH, axum::routing::get(settled))
}

async fn run_publisher(
    mut stream: tokio::sync::broadcast::Receiver<crate::adapters::embedded::Committed>,
    outbox: Outbox<EmbeddedStore, LocalBus, HubNotifier, HubClock, CachedCatalog<EmbeddedStore>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    work: Work,
) {
    let publish = |c: crate::adapters::embedded::Committed| {
        let (outbox, work) = (&outbox, &work);
        async move {
            if let Err(e) = outbox.publish(&c.change, &c.entry).await {
                tracing::error!(change_id = %c.change.id, seq = c.entry.seq, error = %e, "could not publish a committed mutation");
            }
            work.finished(1);
        }
    };
    loop {
        tokio::select! {
            received = stream.recv() => match received {
                Ok(c) => publish(c).await,
                Err(RecvError::Lagged(n)) => {
                    work.finished(usize::try_from(n).unwrap_or(usize::MAX));
                    tracing::warn!(missed = n, "publisher fell behind; some notifications were skipped")
                }
                Err(RecvError::Closed) => return,
            },
            _ = &mut stop => break,
        }
    }
    loop {
        match stream.try_recv() {
            Ok(c) => publish(c).await,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                work.finished(usize::try_from(n).unwrap_or(usize::MAX));
                tracing::warn!(missed = n, "publisher fell behind; some notifications were skipped")
            }
            Err(_) => return,
        }
    }
}
