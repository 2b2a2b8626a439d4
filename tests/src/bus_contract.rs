//! The event bus contract: a rule on the bus delivers matching events, whole,
//! to its target. Run against EventBridge (rule → SQS queue on the emulator)
//! and the in-process bus (rule → channel).

use changehub::domain::{EventPattern, HubEvent};
use changehub::ports::EventBus;
use serde_json::{Value, json};
use std::future::Future;

/// Where a rule's target delivered events, as EventBridge-shaped JSON.
pub trait Inbox {
    /// Waits for `expected` events and returns them, plus any extra that arrive shortly after.
    fn drain(&mut self, expected: usize) -> impl Future<Output = Vec<Value>>;
}

/// The rule pattern every contract case uses.
pub fn pattern() -> EventPattern {
    EventPattern::parse(json!({"source": ["changehub.test"], "detail": {"service": ["payments"]}})).expect("pattern")
}

fn event(n: usize, service: &str) -> HubEvent {
    HubEvent {
        id: crate::unique("evt"),
        source: "changehub.test".into(),
        detail_type: "Test Event Happened".into(),
        time: crate::t0(),
        resources: vec![],
        detail: json!({"service": service, "n": n, "nested": {"list": [1, 2, 3], "text": "ünïcode ✓"}}),
    }
}

pub async fn rule_delivers_matching_events_whole<B: EventBus, I: Inbox>(bus: B, mut inbox: I) {
    let matching = event(1, "payments");
    bus.publish(&[event(0, "search"), matching.clone()]).await.expect("publish");
    let got = inbox.drain(1).await;
    assert_eq!(got.len(), 1, "exactly the matching event is delivered: {got:?}");
    assert_eq!(got[0]["source"], "changehub.test");
    assert_eq!(got[0]["detail-type"], "Test Event Happened");
    assert_eq!(got[0]["detail"], matching.detail);
}

pub async fn events_beyond_one_batch_are_all_delivered<B: EventBus, I: Inbox>(bus: B, mut inbox: I) {
    let events: Vec<_> = (0..23).map(|n| event(n, "payments")).collect();
    bus.publish(&events).await.expect("publish");
    let got = inbox.drain(23).await;
    let mut ns: Vec<u64> = got.iter().filter_map(|e| e["detail"]["n"].as_u64()).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..23).collect::<Vec<u64>>());
}
