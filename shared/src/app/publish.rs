//! Turns committed mutations (stream records) into bus events and notifications.
//! The local hub feeds it from the embedded store's stream; on AWS the
//! table's DynamoDB stream feeds the same code.

use std::collections::BTreeMap;

use crate::domain::{AuditEntry, Change, HubEvent};
use crate::ports::{BusError, EventBus, Notification, Notifier, NotifyError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// The notification people get for a mutation.
pub fn notification_for(change: &Change, entry: &AuditEntry, event: &HubEvent) -> Notification {
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_owned(), event.detail_type.clone());
    attributes.insert("tenant".to_owned(), change.tenant.to_string());
    attributes.insert("state".to_owned(), change.state.as_str().to_owned());
    attributes.insert("type".to_owned(), change.change_type.as_str().to_owned());
    attributes.insert("environment".to_owned(), change.environment.clone());
    // SNS filter policies match any element of a String.Array-like list; the
    // services are joined so a prefix or exact filter can select one.
    attributes.insert("services".to_owned(), change.services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    Notification {
        subject: format!("[{}] {}: {}", change.state, change.id, change.title),
        body: serde_json::json!({
            "event": event.detail_type,
            "change": change,
            "actor": entry.actor,
            "reason": entry.reason,
            "changes": entry.changes,
        }),
        attributes,
    }
}

/// Publishes one committed mutation: its event on the bus, then its notification.
/// Consumers are idempotent (the event id is derived from the audit entry), so
/// a retry after a partial failure is harmless.
pub async fn publish_mutation<B: EventBus, N: Notifier>(
    bus: &B,
    notifier: &N,
    change: &Change,
    entry: &AuditEntry,
) -> Result<(), PublishError> {
    let event = HubEvent::change_mutated(change, entry);
    bus.publish(std::slice::from_ref(&event)).await?;
    notifier.notify(&notification_for(change, entry, &event)).await?;
    Ok(())
}
