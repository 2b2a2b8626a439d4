//! The in-process event bus: rules with EventBridge patterns, each delivering
//! matching events to a channel, as an EventBridge rule delivers to its target.

use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

use crate::domain::{EventPattern, HubEvent};
use crate::ports::{BusError, EventBus};

struct Rule {
    name: String,
    pattern: EventPattern,
    target: mpsc::UnboundedSender<HubEvent>,
}

#[derive(Clone, Default)]
pub struct LocalBus {
    rules: Arc<RwLock<Vec<Rule>>>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule; matching events arrive on the returned receiver.
    pub fn add_rule(&self, name: &str, pattern: EventPattern) -> mpsc::UnboundedReceiver<HubEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        rules.push(Rule { name: name.to_owned(), pattern, target: tx });
        rx
    }
}

impl EventBus for LocalBus {
    async fn publish(&self, events: &[HubEvent]) -> Result<(), BusError> {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
        for event in events {
            let json = event.to_json();
            for rule in rules.iter().filter(|r| r.pattern.matches(&json)) {
                // A rule whose consumer has gone away is like a deleted target: skip it.
                if rule.target.send(event.clone()).is_err() {
                    tracing::warn!(rule = %rule.name, event_id = %event.id, "rule target closed; event not delivered");
                }
            }
            tracing::debug!(event_id = %event.id, detail_type = %event.detail_type, "event published");
        }
        Ok(())
    }
}
