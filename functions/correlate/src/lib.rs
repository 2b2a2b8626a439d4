//! The correlate Lambda's handling of one hub event from its EventBridge
//! rule, and the shape of its answer (the Lambda's concern, not the use case's).

use changehub::app::incidents::{Applied, IncidentEventError, Incidents};
use changehub::ports::{Clock, IncidentStore, TenantDocs};
use serde_json::{Value, json};

/// Handles one event: applies it to its incident record. An event whose
/// detail cannot be read is logged and answered (a retry cannot fix it);
/// store failures are errors, so Lambda and EventBridge retry and, in the
/// end, dead-letter the event.
#[tracing::instrument(skip_all, fields(event_id = ?event.get("id"), detail_type = ?event.get("detail-type")))]
pub async fn handle<S, C>(incidents: &Incidents<'_, S, C>, event: &Value) -> Result<Value, IncidentEventError>
where
    S: IncidentStore + TenantDocs,
    C: Clock,
{
    let detail_type = event.get("detail-type").and_then(Value::as_str).unwrap_or_default();
    let detail = event.get("detail").unwrap_or(&Value::Null);
    match incidents.apply_event(detail_type, detail).await {
        Ok(Applied::Written(i)) => Ok(json!({"written": i.id, "version": i.version})),
        Ok(Applied::Unchanged(i)) => Ok(json!({"unchanged": i.id, "version": i.version})),
        Ok(Applied::Ignored(why)) => Ok(json!({"ignored": why})),
        Err(e @ (IncidentEventError::Malformed { .. } | IncidentEventError::Tenant(_))) => {
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
    use changehub::ports::SystemClock;

    #[tokio::test]
    async fn a_detail_that_is_not_an_incident_event_is_rejected_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let incidents = Incidents::new(&store, &SystemClock);
        let event = json!({"id": "1", "detail-type": "Incident Triggered", "detail": {"tenant": "acme"}});
        let answer = handle(&incidents, &event).await.expect("answered");
        assert!(answer["rejected"].as_str().is_some_and(|m| m.contains("Incident Triggered")), "{answer}");
    }
}
