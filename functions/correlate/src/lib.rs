//! The correlate Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::tagging::{TagError, TagStore, Tagged, Tagging};
use changehub::ports::{CatalogReader, Clock};
use serde_json::{Value, json};

/// Handles one event: applies it to its incident record and tags the record
/// change-related, both ways. An event whose detail cannot be read is logged
/// and answered (a retry cannot fix it); store failures are errors, so
/// Lambda and EventBridge retry and, in the end, dead-letter the event.
#[tracing::instrument(skip_all, fields(event_id = ?event.get("id"), detail_type = ?event.get("detail-type")))]
pub async fn handle<S: TagStore, K: CatalogReader, C: Clock>(
    tagging: &Tagging<S, K, C>,
    event: &Value,
) -> Result<Value, TagError> {
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    let detail = event.get("detail").unwrap_or(&Value::Null);
    match tagging.handle(detail_type, detail).await {
        Ok(Tagged::Recorded { incident, newly_related, .. }) => {
            Ok(json!({"incident": incident.id, "version": incident.version, "newly_related": newly_related}))
        }
        Ok(Tagged::Ignored(why)) => Ok(json!({"ignored": why})),
        Err(e) if !e.retryable() => {
            tracing::error!(error = %e, "event rejected; not retried");
            Ok(json!({"rejected": e.to_string()}))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changehub::adapters::embedded::EmbeddedStore;
    use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
    use changehub::ports::SystemClock;

    #[tokio::test]
    async fn a_detail_that_is_not_an_incident_event_is_rejected_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let tagging = Tagging::new(store.clone(), CachedCatalog::new(store, DEFAULT_CACHE_TTL), SystemClock);
        let event = json!({"id": "1", "detail-type": "Incident Triggered", "detail": {"tenant": "acme"}});
        let answer = handle(&tagging, &event).await.expect("answered");
        assert!(answer["rejected"].as_str().is_some_and(|m| m.contains("Incident Triggered")), "{answer}");
    }
}
