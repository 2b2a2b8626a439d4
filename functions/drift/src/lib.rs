//! The drift Lambda's handling of one hub event from its EventBridge rule,
//! and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::drift::{Drift, DriftError, DriftStore, Judged};
use changehub::ports::{CatalogReader, Clock, Notifier};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

/// Judges one event: evidence a change authorizes is logged, evidence none
/// does becomes (or joins) an unauthorized-change finding and is told.
/// Every failure is an error, so the event is never lost: store and
/// notifier failures are retried by Lambda, and an event whose detail
/// cannot be read fails its retries alike and lands, with the reason, in
/// the function's on-failure queue (see [`diagnostic`]).
#[tracing::instrument(skip_all, fields(event_id = ?event.get("id"), detail_type = ?event.get("detail-type")))]
pub async fn handle<S, K, C, N>(drift: &Drift<S, K, C, N>, event: &Value) -> Result<Value, DriftError>
where
    S: DriftStore,
    K: CatalogReader,
    C: Clock,
    N: Notifier,
{
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    let detail = event.get("detail").unwrap_or(&Value::Null);
    match drift.handle(detail_type, detail).await {
        Ok(judged) => Ok(answer(&judged)),
        Err(e) => {
            tracing::error!(error = %e, retryable = e.retryable(), "event failed");
            Err(e)
        }
    }
}

/// What one event did.
fn answer(judged: &Judged) -> Value {
    match judged {
        Judged::Ignored(why) => json!({"ignored": why}),
        Judged::Duplicate => json!({"duplicate": true}),
        Judged::Authorized { change_id, by, changes_read } => {
            json!({"authorized_by": change_id, "by": by, "changes_read": changes_read})
        }
        Judged::Unauthorized { finding, opened, changes_read } => json!({
            "finding": finding.id, "opened": opened, "count": finding.count, "changes_read": changes_read,
        }),
    }
}

/// The invocation's error as Lambda reports it, and as the on-failure
/// queue's message keeps it: `errorType` is `Rejected` when no retry can
/// help, else `Retryable`; `errorMessage` says why.
pub fn diagnostic(e: &DriftError) -> Diagnostic {
    let error_type = if e.retryable() { "Retryable" } else { "Rejected" };
    Diagnostic { error_type: error_type.to_owned(), error_message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::adapters::local_notifier::FileNotifier;
    use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
    use changehub::ports::SystemClock;

    fn drift(dir: &std::path::Path) -> Drift<EmbeddedStore, CachedCatalog<EmbeddedStore>, SystemClock, FileNotifier> {
        let store = EmbeddedStore::open(dir.join("hub.db")).expect("open");
        let catalog = CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
        Drift::new(store, catalog, SystemClock, FileNotifier::new(dir.join("n.jsonl")))
    }

    #[tokio::test]
    async fn an_unreadable_detail_fails_as_rejected_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let event = json!({"id": "1", "detail-type": "API Call Recorded", "detail": {"tenant": "acme"}});
        let error = handle(&drift(dir.path()), &event).await.expect_err("an unreadable event fails the invocation");
        let failure = diagnostic(&error);
        assert_eq!(failure.error_type, "Rejected");
        assert!(failure.error_message.contains("API Call Recorded"), "{failure:?}");
    }

    #[tokio::test]
    async fn other_events_are_answered_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let event = json!({"id": "1", "detail-type": "Incident Triggered", "detail": {}});
        let answer = handle(&drift(dir.path()), &event).await.expect("ignored");
        assert!(answer["ignored"].is_string(), "{answer}");
    }
}
