//! Ingest use cases: a signed webhook ([`Webhooks`]) or an AWS event
//! ([`Ingest::aws_event`]) in, canonical hub events out, each delivery
//! published once by the core they share ([`Ingest`]).

use chrono::{DateTime, Utc};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::app::activity::ActivityRetention;
use crate::app::once::{Once, OnceError, once};
use crate::domain::catalog::{CatalogView, MappingKind};
use crate::domain::event::MAX_EVENT_BYTES;
use crate::domain::{HubEvent, ServiceName, TenantId};
use crate::ingest::canonical::{Detail, SERVICE_TAG, ServiceResolution};
use crate::ingest::{self, Canonical, NormalizeError, Normalized, Origin, ServiceKey, signature};
use crate::ports::{
    Activity, ActivityLog, BusError, CatalogReader, Claim, Clock, Dedupe, EventBus, SecretSource, SecretsError,
    StoreError,
};

/// How long a done delivery is remembered. Vendors retry for up to two days
/// (PagerDuty 48 h, incident.io 24 h, EventBridge 24 h).
pub const DEDUPE_TTL: Duration = Duration::from_secs(72 * 3600);

/// How long a claim is leased while its events are published. It outlasts
/// a normal publish (well under a second), the work of one claim (each AWS
/// call gives up within `CHANGEHUB_SDK_OPERATION_TIMEOUT_MS`, 5 s) and the
/// ingest functions' 10 s timeout, and is shorter than the first retry of
/// any sender (EventBridge's asynchronous invocation retries after a
/// minute), so a delivery whose function timed out mid-publish is processed
/// again by the sender's retry. The escalate function (60 s) runs one
/// claim's work at a time, each well within the lease.
pub const DEDUPE_LEASE: Duration = Duration::from_secs(30);

/// The largest webhook body read (GitHub caps its payloads at 25 MB).
pub const MAX_WEBHOOK_BYTES: usize = 25 * 1024 * 1024;

/// How long claims are leased and kept; configuration with the defaults above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    pub lease: Duration,
    pub ttl: Duration,
}

impl Default for ClaimTimes {
    fn default() -> Self {
        Self { lease: DEDUPE_LEASE, ttl: DEDUPE_TTL }
    }
}

impl ClaimTimes {
    /// `CHANGEHUB_DEDUPE_LEASE_SECS` (default 30, at least 15: longer than
    /// the ingest functions' 10 s timeout and than one claim's work, so a
    /// lease outlives the attempt holding it), read once at start.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        const NAME: &str = "CHANGEHUB_DEDUPE_LEASE_SECS";
        const MIN_LEASE_SECS: u64 = 15;
        let lease = match crate::config::optional(NAME) {
            None => DEDUPE_LEASE,
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if secs >= MIN_LEASE_SECS => Duration::from_secs(secs),
                _ => {
                    return Err(crate::config::ConfigError::Invalid {
                        name: NAME,
                        message: format!("expected a whole number of seconds, at least {MIN_LEASE_SECS}"),
                    });
                }
            },
        };
        Ok(Self { lease, ttl: DEDUPE_TTL })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The events were published; their ids.
    Published(Vec<String>),
    /// This delivery was already processed: nothing emitted.
    Duplicate,
    /// A valid delivery of a kind the hub does not use.
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("authentication failed: {0}")]
    Unauthorized(#[from] signature::AuthError),
    #[error(transparent)]
    Invalid(#[from] NormalizeError),
    /// An event the delivery produces is over the bus's entry limit: the
    /// same delivery would be refused again, so it is not worth retrying.
    #[error("event {detail_type} is {size} bytes; the bus takes at most {max}")]
    TooLarge { detail_type: String, size: usize, max: usize },
    /// The same delivery is being published by another request right now.
    #[error("this delivery is being processed; retry")]
    InProgress,
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed; the dedupe claim was released so the sender's retry is processed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What ingest needs of a store: dedupe claims and the activity log.
pub trait IngestStore: Dedupe + ActivityLog {}
impl<T: Dedupe + ActivityLog> IngestStore for T {}

/// The publish-once core every ingest path shares: the store (dedupe claims
/// and the activity log), bus, catalog, clock.
pub struct Ingest<D, B, K, C> {
    pub store: D,
    pub bus: B,
    pub catalog: K,
    pub clock: C,
    pub claims: ClaimTimes,
    pub retention: ActivityRetention,
}

/// Signed webhooks: the core and the secrets to check signatures with.
pub struct Webhooks<D, B, K, S, C> {
    pub ingest: Ingest<D, B, K, C>,
    pub secrets: S,
}

impl<D, B, K, C> Ingest<D, B, K, C> {
    /// The core with the default [`ClaimTimes`] and [`ActivityRetention`].
    pub fn new(store: D, bus: B, catalog: K, clock: C) -> Self {
        Self { store, bus, catalog, clock, claims: ClaimTimes::default(), retention: ActivityRetention::default() }
    }

    pub fn with_claims(self, claims: ClaimTimes) -> Self {
        Self { claims, ..self }
    }

    pub fn with_retention(self, retention: ActivityRetention) -> Self {
        Self { retention, ..self }
    }
}

impl<D, B, K, S, C> Webhooks<D, B, K, S, C>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    /// The secrets `tenant` configured for `origin`; refused (401) when there
    /// are none, so a delivery nobody could verify is refused before its body is read.
    ///
    /// When the secrets must first be fetched (the first delivery after a
    /// cold start, or a refresh), the tenant's catalog is read meanwhile, so
    /// a verified delivery does not wait for a second round trip after the
    /// first. It is only cached, never used before the signature is checked,
    /// and read at most once per fetch of the secrets, so an unsigned
    /// request cannot make the hub read more.
    pub async fn secrets(&self, tenant: &TenantId, origin: Origin) -> Result<Vec<String>, IngestError> {
        let secrets = if self.secrets.is_cached() {
            self.secrets.secrets(tenant, origin).await?
        } else {
            let (secrets, _prefetched) =
                tokio::join!(self.secrets.secrets(tenant, origin), self.ingest.catalog.catalog(tenant));
            secrets?
        };
        if secrets.iter().all(|s| s.trim().is_empty()) {
            return Err(signature::AuthError::NoSecret { origin }.into());
        }
        Ok(secrets)
    }

    /// A webhook, checked against `secrets` (from [`Self::secrets`]) before
    /// anything is parsed or stored; then normalized, resolved, and
    /// published once per delivery.
    #[tracing::instrument(skip(self, secrets, headers, body), fields(tenant = %tenant, origin = origin.as_str(), delivery))]
    pub async fn webhook(
        &self,
        tenant: &TenantId,
        origin: Origin,
        secrets: &[String],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<DeliveryOutcome, IngestError> {
        signature::verify(origin, secrets, headers, body, self.ingest.clock.now())?;
        let delivery = ingest::delivery_id(origin, headers, body)?;
        tracing::Span::current().record("delivery", delivery.as_str());
        let normalized = ingest::normalize(origin, headers, body)?;
        let body_hash = hex::encode(Sha256::digest(body));
        let keys = replay_keys(tenant, origin, &delivery, &body_hash, headers, body);
        // Event ids come from the signed body, not the unsigned delivery id:
        // a redelivery under a new id republishes the same ids, which
        // consumers drop.
        let ids = Ids { delivery: &delivery, base: &body_hash[..32] };
        self.ingest.publish_once(tenant, ids, &keys, normalized).await
    }
}

/// How a delivery's events are named: the sender's delivery id (kept in
/// each detail), and the base of the hub event ids, which only the signed
/// content decides (a webhook's body hash, an AWS event's id).
#[derive(Clone, Copy)]
struct Ids<'a> {
    delivery: &'a str,
    base: &'a str,
}

/// The dedupe keys of a verified webhook. The delivery id header is not
/// signed (nor, for GitHub and PagerDuty, is any timestamp), so a captured
/// delivery replayed under a fresh id must still be a duplicate: it is
/// also keyed by a hash of the signed body, and by the signed ids a
/// vendor has (PagerDuty's `event.id`, Standard Webhooks' `webhook-id`).
fn replay_keys(
    tenant: &TenantId,
    origin: Origin,
    delivery: &str,
    body_hash: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let o = origin.as_str();
    let mut keys = vec![format!("delivery:{tenant}:{o}:{delivery}"), format!("body:{tenant}:{o}:{body_hash}")];
    if let Some(id) = ingest::signed_id(origin, headers, body) {
        keys.push(format!("signed:{tenant}:{o}:{id}"));
    }
    keys
}

impl<D, B, K, C> Ingest<D, B, K, C>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    C: Clock,
{
    /// An AWS event as an EventBridge rule delivers it (an envelope).
    #[tracing::instrument(skip(self, body), fields(tenant = %tenant, delivery))]
    pub async fn aws_event(&self, tenant: &TenantId, body: &[u8]) -> Result<DeliveryOutcome, IngestError> {
        let delivery = ingest::aws::delivery_id(body)?;
        tracing::Span::current().record("delivery", delivery.as_str());
        let normalized = ingest::aws::normalize(body)?;
        let keys = [format!("delivery:{tenant}:{}:{delivery}", Origin::Aws.as_str())];
        self.publish_once(tenant, Ids { delivery: &delivery, base: &delivery }, &keys, normalized).await
    }

    async fn publish_once(
        &self,
        tenant: &TenantId,
        ids: Ids<'_>,
        keys: &[String],
        normalized: Normalized,
    ) -> Result<DeliveryOutcome, IngestError> {
        let canonical = match normalized {
            Normalized::Ignored(kind) => {
                tracing::info!(kind, "delivery ignored");
                return Ok(DeliveryOutcome::Ignored(kind));
            }
            Normalized::Events(events) => events,
        };
        let received_at = self.clock.now();
        let (mut events, mut rows) = (Vec::with_capacity(canonical.len()), Vec::with_capacity(canonical.len()));
        for (i, c) in canonical.into_iter().enumerate() {
            let (event, row) = self.hub_event(tenant, ids, i, c, received_at).await?;
            events.push(event);
            rows.push(row);
        }
        match self.accept(tenant, keys, &events, &rows).await? {
            Claim::Duplicate => {
                tracing::info!("duplicate delivery: nothing emitted");
                Ok(DeliveryOutcome::Duplicate)
            }
            Claim::InProgress => {
                tracing::info!("delivery in progress elsewhere: answered retry");
                Err(IngestError::InProgress)
            }
            Claim::New => {
                for e in &events {
                    // The service each event was matched to, or why none was.
                    let service = e.detail["service"].as_str();
                    let reason = e.detail["service_resolution"]["reason"].as_str();
                    tracing::info!(event_id = %e.id, detail_type = %e.detail_type, service, reason, "event published");
                }
                tracing::info!(events = events.len(), "delivery published");
                Ok(DeliveryOutcome::Published(events.into_iter().map(|e| e.id).collect()))
            }
        }
    }

    /// The hub event of one canonical event, and its activity row.
    async fn hub_event(
        &self,
        tenant: &TenantId,
        ids: Ids<'_>,
        index: usize,
        c: Canonical,
        received_at: DateTime<Utc>,
    ) -> Result<(HubEvent, Activity), IngestError> {
        let (service, resolution) = self.resolve(tenant, c.service_key).await?;
        let (detail_type, data) = c.fact.split();
        let id = format!("{}-{}-{index}", c.origin.as_str(), ids.base);
        let row = Activity {
            event_id: id.clone(),
            detail_type: detail_type.clone(),
            source: c.origin.source(),
            external_id: c.external_id.clone(),
            service: service.as_ref().map(|s| s.as_str().to_owned()),
            service_reason: resolution.reason.clone(),
            change_ids: c.fact.change_ids().to_vec(),
            occurred_at: c.occurred_at,
            received_at,
            delivery_id: ids.delivery.to_owned(),
            expires_at: self.retention.expiry(received_at),
            decision: None,
        };
        let detail = Detail {
            event_id: id.clone(),
            tenant: tenant.to_string(),
            origin: c.origin,
            service: service.map(|s| s.to_string()),
            service_resolution: resolution,
            environment: c.environment,
            occurred_at: c.occurred_at,
            actor: c.actor,
            external_id: c.external_id,
            url: c.url,
            delivery_id: ids.delivery.to_owned(),
            data,
        };
        let event = HubEvent {
            id,
            source: c.origin.source(),
            detail_type,
            time: c.occurred_at,
            resources: vec![],
            detail: serde_json::to_value(&detail).map_err(|e| StoreError::backend(false, e))?,
        };
        Ok((event, row))
    }

    /// The service a key names: directly (an alert's `service` label, a
    /// resource's `changehub:service` tag) or through a catalog mapping.
    /// Unknown services are not an error: the event carries the reason.
    async fn resolve(
        &self,
        tenant: &TenantId,
        key: Option<ServiceKey>,
    ) -> Result<(Option<ServiceName>, ServiceResolution), StoreError> {
        let Some(key) = key else {
            return Ok((None, ServiceResolution { key: None, reason: Some("the event names no service".into()) }));
        };
        let catalog = self.catalog.catalog(tenant).await?;
        let direct = |value: &str, what: &str| match ServiceName::parse(value) {
            Ok(s) => (Some(s), None),
            Err(_) => (None, Some(format!("{what} {value:?} is not a valid service name"))),
        };
        let (service, reason) = match &key {
            ServiceKey::AlertLabel(v) => match catalog.resolve(MappingKind::AlertLabel, v) {
                Some(s) => (Some(s.clone()), None),
                None => direct(v, "alert label service"),
            },
            ServiceKey::AwsResource { tags, .. } if tags.contains_key(SERVICE_TAG) => {
                direct(&tags[SERVICE_TAG], &format!("resource tag {SERVICE_TAG}"))
            }
            ServiceKey::AwsResource { arn, resource_id, .. } => match arn.as_deref().or(resource_id.as_deref()) {
                Some(id) => mapped(&catalog, MappingKind::AwsResource, id, "AWS resource"),
                None => (None, Some("the AWS resource has neither ARN nor id".into())),
            },
            ServiceKey::Repository(r) => mapped(&catalog, MappingKind::Repository, r, "repository"),
            ServiceKey::PagerdutyService(p) => mapped(&catalog, MappingKind::PagerdutyService, p, "PagerDuty service"),
            ServiceKey::IncidentioService(i) => {
                mapped(&catalog, MappingKind::IncidentioService, i, "incident.io service")
            }
        };
        Ok((service, ServiceResolution { key: Some(key), reason }))
    }
}

fn mapped(catalog: &CatalogView, kind: MappingKind, key: &str, what: &str) -> (Option<ServiceName>, Option<String>) {
    match catalog.resolve(kind, key) {
        Some(s) => (Some(s.clone()), None),
        None => (None, Some(format!("no catalog mapping for {what} {key}"))),
    }
}

impl<D, B, K, C> Ingest<D, B, K, C>
where
    D: IngestStore,
    B: EventBus,
    C: Clock,
{
    /// Publishes `events` once per delivery, in two phases: every key is
    /// leased for the claim's lease, the events are published and their
    /// activity `rows` kept, then the keys are marked done for the claim's
    /// TTL. A redelivery during the lease is [`Claim::InProgress`] (to be
    /// retried), after it [`Claim::Duplicate`]. If publishing or keeping the
    /// rows fails the lease is given back so the sender's retry is processed;
    /// if the process dies mid-way the lease runs out, with the same effect.
    /// The retry publishes the same event ids (consumers drop the copies)
    /// and rewrites the same rows (one per event id), so nothing is lost or
    /// listed twice.
    ///
    /// An event over the bus's size limit is refused before anything is
    /// claimed or sent: the whole delivery fails alike on every retry.
    async fn accept(
        &self,
        tenant: &TenantId,
        keys: &[String],
        events: &[HubEvent],
        rows: &[Activity],
    ) -> Result<Claim, IngestError> {
        if let Some(e) = events.iter().find(|e| e.entry_size() > MAX_EVENT_BYTES) {
            return Err(IngestError::TooLarge {
                detail_type: e.detail_type.clone(),
                size: e.entry_size(),
                max: MAX_EVENT_BYTES,
            });
        }
        let work = async {
            self.bus.publish(events).await?;
            self.store.record(tenant, rows).await?;
            Ok::<_, IngestError>(())
        };
        match once(&self.store, &self.clock, self.claims, keys, work).await {
            Ok(Once::Done(())) => Ok(Claim::New),
            Ok(Once::Duplicate) => Ok(Claim::Duplicate),
            Ok(Once::InProgress) => Ok(Claim::InProgress),
            Err(OnceError::Store(e)) => Err(e.into()),
            Err(OnceError::Work(e)) => Err(e),
        }
    }
}
