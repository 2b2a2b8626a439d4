//! The correlate Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::changes::ChangeStore;
use changehub::app::tagging::{ConsumeError, Consumed, Consumer, Tagged};
use changehub::ports::{Clock, Dedupe, ImplementationReader, Notifier, ProblemStore, WriteBack};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

/// Handles one event: an incident, alert or alarm event updates its incident
/// record, tags it change-related both ways, tells people and records it for
/// problems; a change event that sets or moves an implementation does the
/// same for each incident the change may explain. Every failure is an error,
/// so the event is never lost: store failures are retried by Lambda, and an
/// event whose detail cannot be read (which no retry fixes) fails its
/// retries alike and lands, with the reason, in the function's on-failure
/// queue (see [`diagnostic`]).
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
        Err(e) => {
            tracing::error!(error = %e, retryable = e.retryable(), "event failed");
            Err(e)
        }
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

/// The invocation's error as Lambda reports it, and as the on-failure
/// queue's message keeps it (`responsePayload`): `errorType` is `Rejected`
/// when no retry can help (redriving the event is pointless until the
/// event or the hub is fixed), else `Retryable`; `errorMessage` says why.
pub fn diagnostic(e: &ConsumeError) -> Diagnostic {
    let error_type = if e.retryable() { "Retryable" } else { "Rejected" };
    Diagnostic { error_type: error_type.to_owned(), error_message: e.to_string() }
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
    async fn a_detail_that_is_not_an_incident_event_fails_as_rejected_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let changes = std::sync::Arc::new(Changes::new(store, SystemClock));
        let none: Option<changehub::adapters::env_secrets::StaticSecrets> = None;
        let writeback = HttpWriteBack::new(none, Timeouts::default(), Retries::default()).expect("client");
        let tagging = Consumer::new(changes, FileNotifier::new(dir.path().join("n.jsonl")), writeback);
        let event = json!({"id": "1", "detail-type": "Incident Triggered", "detail": {"tenant": "acme"}});
        let error = handle(&tagging, &event).await.expect_err("an unreadable event fails the invocation");
        let failure = diagnostic(&error);
        assert_eq!(failure.error_type, "Rejected");
        assert!(failure.error_message.contains("Incident Triggered"), "{failure:?}");
    }
}
