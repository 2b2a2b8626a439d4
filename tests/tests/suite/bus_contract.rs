//! The event bus contract against EventBridge (rule → SQS on the emulator)
//! and the in-process bus (rule → channel).

use changehub::adapters::eventbridge::EventBridgeBus;
use changehub::adapters::local_bus::LocalBus;
use changehub::domain::HubEvent;
use changehub_tests::aws::{self, SqsInbox};
use changehub_tests::bus_contract::{self as contract, Inbox};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

struct ChannelInbox(UnboundedReceiver<HubEvent>);

impl Inbox for ChannelInbox {
    async fn drain(&mut self, expected: usize) -> Vec<Value> {
        let mut got = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), self.0.recv()).await {
            got.push(e.to_json());
        }
        assert!(got.len() >= expected, "expected {expected} events, got {}", got.len());
        got
    }
}

fn local() -> (LocalBus, ChannelInbox) {
    let bus = LocalBus::new();
    let rx = bus.add_rule("contract", contract::pattern());
    (bus, ChannelInbox(rx))
}

async fn eventbridge() -> (EventBridgeBus, SqsInbox) {
    aws::bus_to_queue(contract::pattern().as_json()).await
}

#[tokio::test]
async fn local_bus_rule_delivers_matching_events_whole() {
    let (bus, inbox) = local();
    contract::rule_delivers_matching_events_whole(bus, inbox).await;
}

#[tokio::test]
async fn local_bus_events_beyond_one_batch_are_all_delivered() {
    let (bus, inbox) = local();
    contract::events_beyond_one_batch_are_all_delivered(bus, inbox).await;
}

#[tokio::test]
async fn eventbridge_rule_delivers_matching_events_whole_to_sqs() {
    let (bus, inbox) = eventbridge().await;
    contract::rule_delivers_matching_events_whole(bus, inbox).await;
}

#[tokio::test]
async fn eventbridge_events_beyond_one_batch_are_all_delivered_to_sqs() {
    let (bus, inbox) = eventbridge().await;
    contract::events_beyond_one_batch_are_all_delivered(bus, inbox).await;
}

#[tokio::test]
async fn eventbridge_refuses_an_oversized_event_before_sending() {
    let (bus, _inbox) = eventbridge().await;
    let big = HubEvent {
        id: "big".into(),
        source: "changehub.test".into(),
        detail_type: "Too Big".into(),
        time: changehub_tests::t0(),
        resources: vec![],
        detail: serde_json::json!({"blob": "x".repeat(300 * 1024)}),
    };
    use changehub::ports::EventBus;
    match bus.publish(&[big]).await {
        Err(changehub::ports::BusError::TooLarge { id, .. }) => assert_eq!(id, "big"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
