//! Turns committed mutations (stream records) into bus events and notifications.
//! The local hub feeds it from the embedded store's stream; on AWS the
//! table's DynamoDB stream feeds the same code.

use std::collections::BTreeMap;

use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use crate::domain::{AuditEntry, Change, HubEvent};
use crate::ports::{
    BusError, ChangeReader, Clock, Dedupe, EventBus, Message, Notification, Notifier, NotifyError, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another attempt holds this event's lease: retry once it ran out.
    #[error("event {0} is being published by another attempt; retry")]
    InProgress(String),
    /// A write's entries are not all stored: the table was changed by hand.
    #[error("change {change}: audit entries {seqs:?} expected, {found} found")]
    MissingEntries { change: String, seqs: std::ops::RangeInclusive<u64>, found: usize },
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
    let mut subject = format!("[{}] {}: {}", change.state, change.id, change.title);
    let mut body = serde_json::json!({
        "event": event.detail_type,
        "change": change,
        "actor": entry.actor,
        "reason": entry.reason,
        "changes": entry.changes,
    });
    // A reminder or an escalation is addressed: its audience is on the step it was taken on.
    if let Some(nudge) = change.approval.as_ref().and_then(|p| p.nudge_recorded_by(entry.seq)) {
        attributes.insert("audience".to_owned(), nudge.audience.as_str().to_owned());
        attributes.insert("notify".to_owned(), nudge.to.clone());
        subject = format!("[{}] {}: {} (to {})", event.detail_type, change.id, change.title, nudge.to);
        body["notify"] = serde_json::json!({"audience": nudge.audience, "to": nudge.to, "delegates": nudge.delegates});
    }
    let message = Message::headline(subject.clone());
    Notification { subject, body, attributes, message }
}

/// The outbox publisher: each committed mutation (an audit entry and the
/// change as that write left it) becomes one hub event and one notification,
/// once, however often the stream hands it over.
pub struct Outbox<D, B, N, C> {
    pub dedupe: D,
    pub bus: B,
    pub notifier: N,
    pub clock: C,
    pub claims: ClaimTimes,
}

/// What [`Outbox::publish`] did with one mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Its event and notification went out now.
    Sent,
    /// They went out before: nothing was sent again.
    Duplicate,
}

impl<D: Dedupe, B: EventBus, N: Notifier, C: Clock> Outbox<D, B, N, C> {
    pub fn new(dedupe: D, bus: B, notifier: N, clock: C) -> Self {
        Self { dedupe, bus, notifier, clock, claims: ClaimTimes::default() }
    }

    pub fn with_claims(self, claims: ClaimTimes) -> Self {
        Self { claims, ..self }
    }

    /// Publishes one committed mutation: its event on the bus, then its
    /// notification, once per event id. If either fails, nothing is marked
    /// done and a retry sends both (consumers drop a second copy of the event
    /// by its id; the notification was not sent).
    pub async fn publish(&self, change: &Change, entry: &AuditEntry) -> Result<Published, PublishError> {
        let event = HubEvent::change_mutated(change, entry);
        let keys = [format!("outbox:{}:{}", change.tenant, event.id)];
        let work = async {
            self.bus.publish(std::slice::from_ref(&event)).await?;
            self.notifier.notify(&notification_for(change, entry, &event)).await?;
            Ok::<_, PublishError>(())
        };
        match once(&self.dedupe, &self.clock, self.claims, &keys, work).await {
            Ok(Once::Done(())) => Ok(Published::Sent),
            Ok(Once::Duplicate) => Ok(Published::Duplicate),
            Ok(Once::InProgress) => Err(PublishError::InProgress(event.id)),
            Err(OnceError::Store(e)) => Err(e.into()),
            Err(OnceError::Work(e)) => Err(e),
        }
    }

    /// Publishes every entry one write of `change` added: those after
    /// `previous_version` (0 for its creation) up to its version, oldest
    /// first, read with one query. What a stream record of the change's
    /// item tells the publisher on AWS.
    pub async fn publish_write<R: ChangeReader>(
        &self,
        reader: &R,
        change: &Change,
        previous_version: u64,
    ) -> Result<Vec<Published>, PublishError> {
        if change.version <= previous_version {
            return Ok(Vec::new());
        }
        let seqs = previous_version + 1..=change.version;
        let entries = reader.audit_entries(&change.tenant, &change.id, seqs.clone()).await?;
        if entries.len() as u64 != change.version - previous_version {
            return Err(PublishError::MissingEntries { change: change.id.to_string(), seqs, found: entries.len() });
        }
        let mut published = Vec::with_capacity(entries.len());
        for entry in &entries {
            published.push(self.publish(change, entry).await?);
        }
        Ok(published)
    }
}
