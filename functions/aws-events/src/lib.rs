//! The aws-events Lambda's handling of one event from an EventBridge rule,
//! and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::ingest::{DeliveryOutcome, Ingest, IngestError, IngestStore};
use changehub::domain::TenantId;
use changehub::ports::{CatalogReader, Clock, EventBus, StoreError};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

/// Handles one event. Every failure is an error, so the event is never
/// lost: store and bus failures, and a redelivery racing the first, are
/// retried by Lambda; an event that cannot be normalized, or whose hub event
/// is too large to publish (which no retry fixes), fails its retries alike
/// and lands, with the reason, in the function's on-failure queue (see
/// [`diagnostic`]). An event of a kind the hub does not use is answered.
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
        Err(e) => {
            let rejected = rejected(&e);
            tracing::error!(error = %e, rejected, event_id = ?event.get("id"), "event failed");
            Err(e)
        }
    }
}

/// Whether no retry can make the event go through: it cannot be normalized,
/// or what it becomes is over the bus's entry limit.
fn rejected(e: &IngestError) -> bool {
    matches!(e, IngestError::Invalid(_) | IngestError::TooLarge { .. })
}

/// The invocation's error as Lambda reports it, and as the on-failure
/// queue's message keeps it (`responsePayload`): `errorType` is `Rejected`
/// when no retry can help, else `Retryable`; `errorMessage` says why.
pub fn diagnostic(e: &IngestError) -> Diagnostic {
    let error_type = if rejected(e) { "Rejected" } else { "Retryable" };
    Diagnostic { error_type: error_type.to_owned(), error_message: e.to_string() }
}
