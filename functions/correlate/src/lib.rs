//! The correlate Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::changes::ChangeStore;
use changehub::app::tagging::{ConsumeError, Consumed, Consumer, Tagged};
use changehub::ports::{Clock, Dedupe, ImplementationReader, Notifier, ProblemStore, WriteBack};
use serde_json::{Value, json};

/// Handles one event: an incident, alert or alarm event updates its incident
/// record, tags it change-related both ways, tells people and records it for
/// problems; a change event that sets or moves an implementation does the
/// same for each incident the change may explain. An event whose detail
/// cannot be read is logged and answered (a retry cannot fix it); store
/// failures are errors, so Lambda and EventBridge retry and, in the end,
/// dead-letter the event.
#[tracing::instrument(skip_all, fields(event_id = ?event.get("id"), detail_type = ?event.get("detail-type")))]
pub async fn handle<S, C, N, W>(consumer: &Consumer<S, C, N, W>, event: &Value) -> Result<Value, ConsumeError>
where
    S: ChangeStore + ProblemStore + ImplementationReader + Dedupe,
    C: Clock + Clone,
    N: Notifier,
    W: WriteBack,
{
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    let detail = event.get("detail").unwrap_or(&Value::Null);
    match consumer.handle(detail_type, detail).await {
        Ok(Consumed::Incident(tagged)) => Ok(answer(&tagged)),
        Ok(Consumed::Skipped(why)) => Ok(json!({"ignored": why})),
        Ok(Consumed::Rechecked { change, incidents }) => {
            Ok(json!({"change": change, "incidents": incidents.iter().map(answer).collect::<Vec<_>>()}))
        }
        Err(e) if !e.retryable() => {
            tracing::error!(error = %e, "event rejected; not retried");
            Ok(json!({"rejected": e.to_string()}))
        }
        Err(e) => Err(e),
    }
}

/// What one incident's tag did.
fn answer(tagged: &Tagged) -> Value {
    match tagged {
        Tagged::Recorded { incident, newly_related, .. } => {
            json!({"incident": incident.id, "version": incident.version, "newly_related": newly_related})
        }
        Tagged::Ignored(why) => json!({"ignored": why}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
    use changehub::adapters::local_notifier::FileNotifier;
    use changehub::app::Changes;
    use changehub::ports::SystemClock;

    #[tokio::test]
    async fn a_detail_that_is_not_an_incident_event_is_rejected_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let changes = std::sync::Arc::new(Changes::new(store, SystemClock));
        let none: Option<changehub::adapters::env_secrets::StaticSecrets> = None;
        let writeback = HttpWriteBack::new(none, Timeouts::default(), Retries::default()).expect("client");
        let tagging = Consumer::new(changes, FileNotifier::new(dir.path().join("n.jsonl")), writeback);
        let event = json!({"id": "1", "detail-type": "Incident Triggered", "detail": {"tenant": "acme"}});
        let answer = handle(&tagging, &event).await.expect("answered");
        assert!(answer["rejected"].as_str().is_some_and(|m| m.contains("Incident Triggered")), "{answer}");
    }
}
