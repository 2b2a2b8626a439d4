//! The in-process event bus: rules with EventBridge patterns, each delivering
//! matching events to a channel, as an EventBridge rule delivers to its target.

use std::sync::atomic::{AtomicUsize, Ordering};
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
    work: Work,
}

/// The hub's work under way: every event delivered to a rule's consumer and
/// every committed mutation not yet published counts from when it is
/// handed on until its handler says [`Work::finished`]. Work a handler
/// causes (a commit, an event) is counted before its own ends, so the count
/// is zero only when nothing is under way or queued: what `serve`'s test
/// route waits for before a test checks that something did not happen.
#[derive(Clone, Debug, Default)]
pub struct Work(Arc<AtomicUsize>);

impl Work {
    pub fn started(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// `n` pieces of work ended (handled, dead-lettered or missed).
    pub fn finished(&self, n: usize) {
        // Never below zero, whatever a caller miscounts.
        let _ = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| Some(c.saturating_sub(n)));
    }

    pub fn under_way(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tally of the events delivered to its rules, which their consumers end.
    pub fn work(&self) -> Work {
        self.work.clone()
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
                self.work.started();
                if rule.target.send(event.clone()).is_err() {
                    self.work.finished(1);
                    tracing::warn!(rule = %rule.name, event_id = %event.id, "rule target closed; event not delivered");
                }
            }
            tracing::debug!(event_id = %event.id, detail_type = %event.detail_type, "event published");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail_type: &str) -> HubEvent {
        HubEvent {
            id: "e-1".into(),
            source: "changehub.test".into(),
            detail_type: detail_type.into(),
            time: chrono::Utc::now(),
            resources: vec![],
            detail: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn each_delivery_is_work_until_its_consumer_ends_it_and_an_unmatched_event_is_none() {
        let bus = LocalBus::new();
        let pattern = EventPattern::parse(serde_json::json!({"detail-type": ["Taken"]})).expect("pattern");
        let mut taken = bus.add_rule("a", pattern.clone());
        let closed = bus.add_rule("b", pattern);
        drop(closed);
        bus.publish(&[event("Taken"), event("Left")]).await.expect("publish");
        assert_eq!(bus.work().under_way(), 1, "one delivery; the closed target's and the unmatched event's are none");
        assert!(taken.try_recv().is_ok());
        bus.work().finished(1);
        assert_eq!(bus.work().under_way(), 0);
        bus.work().finished(3);
        assert_eq!(bus.work().under_way(), 0, "never below zero");
    }
}
