//! Ingest use cases: a signed webhook or an AWS event in, canonical hub
//! events out, each delivery published exactly once.

use http::HeaderMap;
use std::time::Duration;

use crate::domain::catalog::{CatalogView, MappingKind};
use crate::domain::{HubEvent, ServiceName, TenantId};
use crate::ingest::canonical::{Detail, SERVICE_TAG, ServiceResolution};
use crate::ingest::{self, Canonical, NormalizeError, Normalized, Origin, ServiceKey, auth};
use crate::ports::{BusError, CatalogReader, Claim, Clock, Dedupe, EventBus, SecretSource, SecretsError, StoreError};

/// How long a delivery id is remembered. Vendors retry for up to two days
/// (PagerDuty 48 h, incident.io 24 h, EventBridge 24 h).
pub const DEDUPE_TTL: Duration = Duration::from_secs(72 * 3600);

/// The largest webhook body read (GitHub caps its payloads at 25 MB).
pub const MAX_WEBHOOK_BYTES: usize = 25 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
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
    Unauthorized(#[from] auth::AuthError),
    #[error(transparent)]
    Invalid(#[from] NormalizeError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed; the dedupe claim was released so the sender's retry is processed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Everything ingest needs.
pub struct Ingest<D, B, K, S, C> {
    pub dedupe: D,
    pub bus: B,
    pub catalog: K,
    pub secrets: S,
    pub clock: C,
}

impl<D, B, K, S, C> Ingest<D, B, K, S, C>
where
    D: Dedupe,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    /// A webhook: authenticate first (nothing is parsed or stored before),
    /// then normalize, resolve services, and publish once per delivery id.
    #[tracing::instrument(skip(self, headers, body), fields(tenant = %tenant, origin = origin.as_str(), delivery))]
    pub async fn webhook(
        &self,
        tenant: &TenantId,
        origin: Origin,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let secrets = self.secrets.secrets(tenant, origin).await?;
        auth::verify(origin, &secrets, headers, body, self.clock.now())?;
        let delivery = ingest::delivery_id(origin, headers, body)?;
        tracing::Span::current().record("delivery", delivery.as_str());
        let normalized = ingest::normalize(origin, headers, body)?;
        self.publish_once(tenant, origin, &delivery, normalized).await
    }

    /// An AWS event as an EventBridge rule delivers it (an envelope).
    #[tracing::instrument(skip(self, body), fields(tenant = %tenant, delivery))]
    pub async fn aws_event(&self, tenant: &TenantId, body: &[u8]) -> Result<Outcome, IngestError> {
        let delivery = ingest::aws::delivery_id(body)?;
        tracing::Span::current().record("delivery", delivery.as_str());
        let normalized = ingest::aws::normalize(body)?;
        self.publish_once(tenant, Origin::Aws, &delivery, normalized).await
    }

    /// The aws-events Lambda's handling of one event from an EventBridge rule.
    /// An event that cannot be normalized is logged and answered (a retry
    /// cannot fix it); store, secrets and bus failures are errors, so
    /// EventBridge retries and, in the end, dead-letters the event.
    pub async fn eventbridge_target(
        &self,
        tenant: &TenantId,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, IngestError> {
        let body = serde_json::to_vec(event).map_err(|e| StoreError::backend(false, e))?;
        match self.aws_event(tenant, &body).await {
            Ok(Outcome::Published(ids)) => Ok(serde_json::json!({"published": ids})),
            Ok(Outcome::Duplicate) => Ok(serde_json::json!({"duplicate": true})),
            Ok(Outcome::Ignored(kind)) => Ok(serde_json::json!({"ignored": kind})),
            Err(IngestError::Invalid(e)) => {
                tracing::error!(error = %e, field = ?e.field, event_id = ?event.get("id"), "event rejected; not retried");
                Ok(serde_json::json!({"rejected": e.message}))
            }
            Err(e) => Err(e),
        }
    }

    async fn publish_once(
        &self,
        tenant: &TenantId,
        origin: Origin,
        delivery: &str,
        normalized: Normalized,
    ) -> Result<Outcome, IngestError> {
        let canonical = match normalized {
            Normalized::Ignored(kind) => {
                tracing::info!(kind, "delivery ignored");
                return Ok(Outcome::Ignored(kind));
            }
            Normalized::Events(events) => events,
        };
        let mut events = Vec::with_capacity(canonical.len());
        for (i, c) in canonical.into_iter().enumerate() {
            events.push(self.hub_event(tenant, delivery, i, c).await?);
        }
        let key = format!("delivery:{tenant}:{}:{delivery}", origin.as_str());
        match accept(&self.dedupe, &self.bus, &self.clock, &key, &events).await? {
            Claim::Duplicate => {
                tracing::info!("duplicate delivery: nothing emitted");
                Ok(Outcome::Duplicate)
            }
            Claim::New => {
                tracing::info!(events = events.len(), "delivery published");
                Ok(Outcome::Published(events.into_iter().map(|e| e.id).collect()))
            }
        }
    }

    async fn hub_event(
        &self,
        tenant: &TenantId,
        delivery: &str,
        index: usize,
        c: Canonical,
    ) -> Result<HubEvent, IngestError> {
        let (service, resolution) = self.resolve(tenant, c.service_key).await?;
        let (detail_type, data) = c.fact.split();
        let detail = Detail {
            tenant: tenant.to_string(),
            origin: c.origin,
            service: service.map(|s| s.to_string()),
            service_resolution: resolution,
            environment: c.environment,
            occurred_at: c.occurred_at,
            actor: c.actor,
            external_id: c.external_id,
            url: c.url,
            delivery_id: delivery.to_owned(),
            data,
        };
        Ok(HubEvent {
            id: format!("{}-{delivery}-{index}", c.origin.as_str()),
            source: c.origin.source(),
            detail_type,
            time: c.occurred_at,
            resources: vec![],
            detail: serde_json::to_value(&detail).map_err(|e| StoreError::backend(false, e))?,
        })
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

/// Publishes `events` once per delivery key: a redelivery publishes nothing.
/// If publishing fails the claim is given back, so that the sender's retry
/// is not mistaken for a duplicate.
pub async fn accept<D: Dedupe, B: EventBus, C: Clock>(
    dedupe: &D,
    bus: &B,
    clock: &C,
    delivery_key: &str,
    events: &[HubEvent],
) -> Result<Claim, IngestError> {
    if dedupe.claim(delivery_key, clock.now(), DEDUPE_TTL).await? == Claim::Duplicate {
        return Ok(Claim::Duplicate);
    }
    if let Err(e) = bus.publish(events).await {
        if let Err(release) = dedupe.release(delivery_key).await {
            tracing::error!(delivery_key, error = %release, "could not release dedupe claim after a failed publish");
        }
        return Err(e.into());
    }
    Ok(Claim::New)
}
