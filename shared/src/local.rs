//! The local hub: every handler in one process, on the embedded adapters.
//! `changehub serve` runs it; the end-to-end tests and the benchmark start it too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::adapters::embedded::EmbeddedStore;
use crate::adapters::env_secrets::StaticSecrets;
use crate::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use crate::adapters::local_bus::LocalBus;
use crate::adapters::local_notifier::{FileNotifier, JsonLines};
use crate::app::Changes;
use crate::app::activity::ActivityRetention;
use crate::app::catalog::CachedCatalog;
use crate::app::deployments::{self, DeploymentError, Deployments};
use crate::app::ingest::{Ingest, Webhooks};
use crate::app::publish::Outbox;
use crate::app::tagging::{ConsumeError, Consumer};
use crate::http::bearer::{Authenticator, ClaimNames, LocalKey, LocalKeyError};
use crate::http::{self, webhooks};
use crate::ports::{SecretsError, StoreError, SystemClock};

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
}

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
    /// The API's catalog cache, which escalation shares (a breach reads the tenant's CAB).
    catalog: CachedCatalog<EmbeddedStore>,
    /// Ticks escalation, once started ([`Hub::escalate_every`]).
    escalator: Option<JoinHandle<()>>,
}

impl Hub {
    pub fn open(config: &HubConfig) -> Result<Self, HubError> {
        let key = LocalKey::for_database(&config.db)?;
        let sealer = Arc::new(crate::ports::AuditSealer::with_key(key.audit_key()?));
        let store = EmbeddedStore::open(&config.db)
            .map_err(|source| HubError::Store { path: config.db.clone(), source })?
            .with_sealer(sealer);
        let bus = LocalBus::new();
        let public_url = crate::config::public_url()?;
        let changes = Arc::new(Changes::new(store.clone(), SystemClock));
        let notifier = FileNotifier::new(&config.notifications);
        let outbox = Outbox::new(store.clone(), bus.clone(), notifier, SystemClock, changes.catalog.clone())
            .with_public_url(public_url.clone());
        let (stop_publisher, stop) = tokio::sync::oneshot::channel();
        let publisher = tokio::spawn(run_publisher(store.stream(), outbox, stop));
        let correlate_events = bus.add_rule("correlate", crate::app::tagging::rule_pattern()?);
        let names = ClaimNames { bootstrap_admin_group: config.bootstrap_admin_group.clone(), ..ClaimNames::default() };
        let auth = Authenticator::Local(Arc::new(key), names);
        let ingest = || {
            Ingest::new(store.clone(), bus.clone(), changes.catalog.clone(), SystemClock)
                .with_retention(config.activity_retention)
        };
        let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: config.secrets.clone() });
        let writeback = HttpWriteBack::new(config.secrets.clone(), Timeouts::default(), Retries::default())
            .map_err(HubError::WriteBack)?;
        let dead_letters = JsonLines::new(config.dead_letters());
        let consumer = Arc::new(
            Consumer::new(changes.clone(), FileNotifier::new(&config.notifications), writeback)
                .with_public_url(public_url),
        );
        let correlator = tokio::spawn(consume(
            "correlate",
            correlate_events,
            dead_letters.clone(),
            move |e| {
                let consumer = consumer.clone();
                async move { consumer.handle(&e.detail_type, &e.detail).await }
            },
            ConsumeError::retryable,
        ));
        let deployments =
            Arc::new(Deployments { store: store.clone(), catalog: changes.catalog.clone(), clock: SystemClock });
        tokio::spawn(consume(
            "deployments",
            bus.add_rule("deployments", crate::domain::EventPattern::parse(deployments::event_pattern())?),
            dead_letters,
            move |e| {
                let deployments = deployments.clone();
                async move { deployments.handle(&e.detail_type, &e.detail).await }
            },
            DeploymentError::retryable,
        ));
        let router = limited(
            http::finish(
                http::change_routes(changes.clone(), auth.clone())
                    .merge(webhooks::webhook_routes(webhooks, config.limits.webhooks))
                    .merge(webhooks::local_routes(Arc::new(ingest()), auth)),
            ),
            config.limits,
        );
        let catalog = changes.catalog.clone();
        Ok(Self { store, bus, router, publisher, correlator, stop_publisher, catalog, escalator: None })
    }

    /// Runs an escalation tick every `period` (the local stand-in for the
    /// escalate function's schedule) until the hub stops. A tick's writes
    /// are each whole, so stopping it mid-tick takes nothing twice.
    pub fn escalate_every(&mut self, period: Duration) {
        let escalator = crate::app::escalation::Escalator {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
            clock: SystemClock,
        };
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
        let Hub { store, bus, router, publisher, correlator, stop_publisher, escalator, .. } = self;
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

/// Binds `addr`; a clear error if the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HubError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| HubError::Io(std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))))
}

/// Times a local consumer tries an event that fails for a reason a retry may fix.
const LOCAL_ATTEMPTS: u32 = 3;

/// The file beside the notifications file that keeps the events the local
/// consumers could not apply: `changehub serve`'s dead-letter queue.
pub const DEAD_LETTERS_FILE: &str = "dead-letters.jsonl";

impl HubConfig {
    /// Where the local consumers put the events they could not apply
    /// ([`DEAD_LETTERS_FILE`] in the notifications file's directory).
    pub fn dead_letters(&self) -> PathBuf {
        self.notifications.with_file_name(DEAD_LETTERS_FILE)
    }
}

/// A local consumer of one bus rule, as Lambda runs the function on AWS:
/// each event is applied, tried again a few times when a retry may help,
/// and one that still fails, or that no retry can fix (an unreadable
/// event), is appended to the dead-letter file with its reason, never
/// dropped. `name` is the function's (`deployments`, `correlate`).
async fn consume<T, E, Fut>(
    name: &'static str,
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::domain::HubEvent>,
    dead_letters: JsonLines,
    apply: impl Fn(crate::domain::HubEvent) -> Fut,
    retryable: fn(&E) -> bool,
) where
    T: std::fmt::Debug,
    E: std::error::Error,
    Fut: Future<Output = Result<T, E>>,
{
    while let Some(event) = events.recv().await {
        let mut attempts = 1;
        let failure = loop {
            match apply(event.clone()).await {
                Ok(done) => {
                    tracing::debug!(consumer = name, event_id = %event.id, ?done, "event applied");
                    break None;
                }
                Err(e) if retryable(&e) && attempts < LOCAL_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
                    attempts += 1;
                }
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = failure {
            let why = (reason(&e), retryable(&e), attempts);
            dead_letter(&dead_letters, name, &event, why).await;
        }
    }
}

/// An error and its causes, `: ` between them.
fn reason(error: &dyn std::error::Error) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// Appends the event that failed, with why (the reason, whether a retry may
/// help, the attempts made), to the dead-letter file, and logs it (the whole
/// event when the file cannot be written).
async fn dead_letter(
    file: &JsonLines,
    consumer: &str,
    event: &crate::domain::HubEvent,
    (reason, retryable, attempts): (String, bool, u32),
) {
    let letter = serde_json::json!({
        "at": chrono::Utc::now(),
        "consumer": consumer,
        "error": reason,
        "retryable": retryable,
        "attempts": attempts,
        "event": event,
    });
    match file.append(&letter).await {
        Ok(()) => tracing::error!(
            consumer, event_id = %event.id, detail_type = %event.detail_type, error = %reason, retryable,
            file = %file.path().display(), "event not applied; kept in the dead-letter file"
        ),
        Err(e) => tracing::error!(
            consumer, error = %reason, file = %file.path().display(), write_error = %e, letter = %letter,
            "event not applied, and the dead-letter file could not be written"
        ),
    }
}

/// The local escalate schedule: a tick every `period`; a failed tick is
/// logged and the next one takes what it left.
async fn run_escalator(
    escalator: crate::app::escalation::Escalator<EmbeddedStore, CachedCatalog<EmbeddedStore>, SystemClock>,
    period: Duration,
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match escalator.tick().await {
            Ok(tick) => tracing::debug!(read = tick.read, taken = tick.taken.len(), "escalation tick"),
            Err(e) => tracing::error!(error = %e, "escalation tick failed; the next one retries"),
        }
    }
}

async fn run_publisher(
    mut stream: tokio::sync::broadcast::Receiver<crate::adapters::embedded::Committed>,
    outbox: Outbox<EmbeddedStore, LocalBus, FileNotifier, SystemClock, CachedCatalog<EmbeddedStore>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let publish = |c: crate::adapters::embedded::Committed| {
        let outbox = &outbox;
        async move {
            if let Err(e) = outbox.publish(&c.change, &c.entry).await {
                tracing::error!(change_id = %c.change.id, seq = c.entry.seq, error = %e, "could not publish a committed mutation");
            }
        }
    };
    loop {
        tokio::select! {
            received = stream.recv() => match received {
                Ok(c) => publish(c).await,
                Err(RecvError::Lagged(n)) => {
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
                tracing::warn!(missed = n, "publisher fell behind; some notifications were skipped")
            }
            Err(_) => return,
        }
    }
}
