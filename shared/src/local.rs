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
use crate::adapters::local_notifier::FileNotifier;
use crate::app::Changes;
use crate::app::activity::ActivityRetention;
use crate::app::catalog::CachedCatalog;
use crate::app::deployments::{self, Deployments};
use crate::app::ingest::{Ingest, Webhooks};
use crate::app::publish::Outbox;
use crate::app::tagging::Consumer;
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
}

/// The assembled hub, ready to serve.
pub struct Hub {
    pub store: EmbeddedStore,
    pub bus: LocalBus,
    router: axum::Router,
    publisher: JoinHandle<()>,
    /// Applies incident, alert and alarm events to incident records and tags them (the correlate function's part).
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
        let notifier = FileNotifier::new(&config.notifications);
        let outbox = Outbox::new(store.clone(), bus.clone(), notifier, SystemClock);
        let (stop_publisher, stop) = tokio::sync::oneshot::channel();
        let publisher = tokio::spawn(run_publisher(store.stream(), outbox, stop));
        let incident_events = bus.add_rule("correlate", crate::app::incidents::rule_pattern()?);
        let names = ClaimNames { bootstrap_admin_group: config.bootstrap_admin_group.clone(), ..ClaimNames::default() };
        let auth = Authenticator::Local(Arc::new(key), names);
        let changes = Arc::new(Changes::new(store.clone(), SystemClock));
        let ingest = || {
            Ingest::new(store.clone(), bus.clone(), changes.catalog.clone(), SystemClock)
                .with_retention(config.activity_retention)
        };
        let webhooks = Arc::new(Webhooks { ingest: ingest(), secrets: config.secrets.clone() });
        let writeback = HttpWriteBack::new(config.secrets.clone(), Timeouts::default(), Retries::default())
            .map_err(HubError::WriteBack)?;
        let consumer = Consumer::new(changes.clone(), FileNotifier::new(&config.notifications), writeback);
        let correlator = tokio::spawn(run_correlator(consumer, incident_events));
        let deployments = Deployments { store: store.clone(), catalog: changes.catalog.clone(), clock: SystemClock };
        tokio::spawn(run_deployments(
            bus.add_rule("deployments", crate::domain::EventPattern::parse(deployments::event_pattern())?),
            deployments,
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

/// The local deployments consumer: each deployment event on the local bus
/// becomes an audited change write (which the publisher then publishes),
/// tried again a few times when a retry may help, as EventBridge would.
async fn run_deployments(
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::domain::HubEvent>,
    deployments: Deployments<EmbeddedStore, CachedCatalog<EmbeddedStore>, SystemClock>,
) {
    while let Some(event) = events.recv().await {
        for attempt in 1..=LOCAL_ATTEMPTS {
            match deployments.handle(&event.detail_type, &event.detail).await {
                Ok(applied) => tracing::debug!(event_id = %event.id, ?applied, "deployment event applied"),
                Err(e) if e.retryable() && attempt < LOCAL_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    continue;
                }
                Err(e) => tracing::error!(event_id = %event.id, error = %e, "deployment event not recorded"),
            }
            break;
        }
    }
}

/// The local correlate consumer: each incident, alert or alarm event the
/// rule delivers updates its record and tags it change-related, tried again
/// a few times when a retry may help. A failure is logged (the local hub
/// has no dead-letter queue).
async fn run_correlator(
    consumer: Consumer<EmbeddedStore, SystemClock, FileNotifier, HttpWriteBack<StaticSecrets>>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::domain::HubEvent>,
) {
    while let Some(event) = events.recv().await {
        for attempt in 1..=LOCAL_ATTEMPTS {
            match consumer.handle(&event.detail_type, &event.detail).await {
                Ok(tagged) => tracing::debug!(event_id = %event.id, ?tagged, "incident event applied"),
                Err(e) if e.retryable() && attempt < LOCAL_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(event_id = %event.id, detail_type = %event.detail_type, error = %e, "could not apply an incident event")
                }
            }
            break;
        }
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
    outbox: Outbox<EmbeddedStore, LocalBus, FileNotifier, SystemClock>,
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
