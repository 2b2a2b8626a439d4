//! The aws-events Lambda's handling of one event from an EventBridge rule,
//! and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::ingest::{DeliveryOutcome, Ingest, IngestError, IngestStore};
use changehub::domain::TenantId;
use changehub::ports::{CatalogReader, Clock, EventBus, StoreError};
use serde_json::{Value, json};

/// Handles one event. An event that cannot be normalized, or whose hub event
/// is too large to publish, is logged and answered (a retry cannot fix it);
/// store and bus failures, and a redelivery racing the first, are errors, so
/// EventBridge retries and, in the end, dead-letters the event.
pub async fn handle<D, B, K, C>(
    ingest: &Ingest<D, B, K, C>,
    tenant: &TenantId,
    event: &Value,
) -> Result<Value, IngestError>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    C: Clock,
{
    let body = serde_json::to_vec(event).map_err(|e| StoreError::backend(false, e))?;
    match ingest.aws_event(tenant, &body).await {
        Ok(DeliveryOutcome::Published(ids)) => Ok(json!({"published": ids})),
        Ok(DeliveryOutcome::Duplicate) => Ok(json!({"duplicate": true})),
        Ok(DeliveryOutcome::Ignored(kind)) => Ok(json!({"ignored": kind})),
        Err(IngestError::Invalid(e)) => {
            tracing::error!(error = %e, field = ?e.field, event_id = ?event.get("id"), "event rejected; not retried");
            Ok(json!({"rejected": e.message}))
        }
        Err(e @ IngestError::TooLarge { .. }) => {
            tracing::error!(error = %e, event_id = ?event.get("id"), "event too large to publish; not retried");
            Ok(json!({"rejected": e.to_string()}))
        }
        Err(e) => Err(e),
    }
}
