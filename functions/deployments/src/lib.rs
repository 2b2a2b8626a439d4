//! The deployments Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::deployments::{Applied, DeploymentError, Deployments};
use changehub::ports::{CatalogReader, ChangeReader, ChangeWriter, Clock};
use serde_json::{Value, json};

/// Handles one event (an EventBridge envelope: `detail-type`, `detail`). An
/// event that cannot be read is logged and answered (a retry cannot fix it);
/// store failures and a change other writers keep moving are errors, so
/// EventBridge retries and, in the end, sends the event to the failed-events queue.
pub async fn handle<S, K, C>(deployments: &Deployments<S, K, C>, event: &Value) -> Result<Value, DeploymentError>
where
    S: ChangeReader + ChangeWriter,
    K: CatalogReader,
    C: Clock,
{
    let detail_type = event["detail-type"].as_str().unwrap_or_default();
    match deployments.handle(detail_type, &event["detail"]).await {
        Ok(applied) => Ok(answer(&applied)),
        Err(e) if !e.retryable() => {
            tracing::error!(error = %e, event_id = ?event.get("id"), "event rejected; not retried");
            Ok(json!({"rejected": e.to_string()}))
        }
        Err(e) => Err(e),
    }
}

fn answer(applied: &Applied) -> Value {
    match applied {
        Applied::Created { change, state } => json!({"created": change, "state": state}),
        Applied::Recorded { change, state } => json!({"recorded": change, "state": state}),
        Applied::Observed { change, state } => json!({"observed": change, "state": state}),
        Applied::Unchanged { change } => json!({"unchanged": change}),
        Applied::Skipped(why) => json!({"skipped": why}),
    }
}
