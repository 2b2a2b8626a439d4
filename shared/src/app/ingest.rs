//! Accepting events from outside: dedupe by the sender's id, then publish.

use std::time::Duration;

use crate::domain::HubEvent;
use crate::ports::{BusError, Claim, Clock, Dedupe, EventBus, StoreError};

/// How long a delivery id is remembered. Vendors retry for up to a day or so;
/// AWS keeps EventBridge retries within 24 hours.
pub const DEDUPE_TTL: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Published,
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed; the dedupe claim was released so the sender's retry is processed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Publishes `events` once per `delivery_key`: a redelivery publishes nothing.
/// If publishing fails the claim is given back, so that the sender's retry
/// is not mistaken for a duplicate.
pub async fn accept<D: Dedupe, B: EventBus, C: Clock>(
    dedupe: &D,
    bus: &B,
    clock: &C,
    delivery_key: &str,
    events: &[HubEvent],
) -> Result<Accepted, IngestError> {
    if dedupe.claim(delivery_key, clock.now(), DEDUPE_TTL).await? == Claim::Duplicate {
        tracing::info!(delivery_key, "duplicate delivery ignored");
        return Ok(Accepted::Duplicate);
    }
    if let Err(e) = bus.publish(events).await {
        if let Err(release) = dedupe.release(delivery_key).await {
            tracing::error!(delivery_key, error = %release, "could not release dedupe claim after a failed publish");
        }
        return Err(e.into());
    }
    Ok(Accepted::Published)
}
