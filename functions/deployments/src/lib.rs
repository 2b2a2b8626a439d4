//! The deployments Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::deployments::{Applied, DeploymentError, Deployments};
use changehub::ports::{CatalogReader, ChangeReader, ChangeWriter, Clock, InProductionStore};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

/// Handles one event (an EventBridge envelope: `detail-type`, `detail`).
/// Every failure is an error, so the event is never lost: store failures and
/// a change other writers keep moving are retried by Lambda, and an event
/// that cannot be read (which no retry fixes) fails its retries alike and
/// lands, with the reason, in the failed-events queue (see [`diagnostic`]).
pub async fn handle<S, K, C>(deployments: &Deployments<S, K, C>, event: &Value) -> Result<Value, DeploymentError>
where
    S: ChangeReader + ChangeWriter + InProductionStore,
    K: CatalogReader,
    C: Clock,
{
    let detail_type = event["detail-type"].as_str().unwrap_or_default();
    match deployments.handle(detail_type, &event["detail"]).await {
        Ok(applied) => Ok(answer(&applied)),
        Err(e) => {
            tracing::error!(error = %e, retryable = e.retryable(), event_id = ?event.get("id"), "event failed");
            Err(e)
        }
    }
}

/// The invocation's error as Lambda reports it, and as the failed-events
/// queue's message keeps it (`responsePayload`): `errorType` is `Rejected`
/// when no retry can help, else `Retryable`; `errorMessage` says why.
pub fn diagnostic(e: &DeploymentError) -> Diagnostic {
    let error_type = if e.retryable() { "Retryable" } else { "Rejected" };
    Diagnostic { error_type: error_type.to_owned(), error_message: e.to_string() }
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

#[cfg(test)]
mod tests {
    use super::*;
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
    use changehub::ports::SystemClock;

    #[tokio::test]
    async fn an_unreadable_deployment_event_fails_as_rejected_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let deployments =
            Deployments { catalog: CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL), store, clock: SystemClock };
        let event = json!({"id": "1", "detail-type": "Deployment Status Changed", "detail": {"tenant": "acme"}});
        let error = handle(&deployments, &event).await.expect_err("an unreadable event fails the invocation");
        let failure = diagnostic(&error);
        assert_eq!(failure.error_type, "Rejected");
        assert!(failure.error_message.contains("Deployment Status Changed"), "{failure:?}");
    }
}
