//! `changehub serve`'s local consumers never drop an event they cannot
//! apply: it goes to the dead-letter file beside the notifications file,
//! with the reason, as the functions' events go to their on-failure queues.

use changehub::adapters::env_secrets::StaticSecrets;
use changehub::domain::HubEvent;
use changehub::ingest::Origin;
use changehub::local::{Hub, HubConfig};
use changehub::ports::EventBus;
use chrono::Utc;
use serde_json::{Value, json};

fn event(id: &str, origin: Origin, detail_type: &str) -> HubEvent {
    HubEvent {
        id: id.into(),
        source: origin.source(),
        detail_type: detail_type.into(),
        time: Utc::now(),
        resources: Vec::new(),
        detail: json!({"tenant": "default"}),
    }
}

#[tokio::test]
async fn events_the_local_consumers_cannot_read_land_in_the_dead_letter_file_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HubConfig {
        db: dir.path().join("hub.db"),
        notifications: dir.path().join("notifications.jsonl"),
        secrets: StaticSecrets::default(),
        bootstrap_admin_group: None,
        limits: Default::default(),
        activity_retention: Default::default(),
        public_url: None,
    };
    assert_eq!(config.dead_letters(), dir.path().join("dead-letters.jsonl"));
    let hub = Hub::open(&config).expect("open the local hub");
    let events = [
        event("bad-incident", Origin::Pagerduty, "Incident Triggered"),
        event("bad-deployment", Origin::Github, "Deployment Status Changed"),
    ];
    hub.bus.publish(&events).await.expect("published");

    let mut letters: Vec<Value> = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(config.dead_letters()).unwrap_or_default();
        letters = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        if letters.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    letters.sort_by_key(|l| l["consumer"].as_str().map(str::to_owned));
    assert_eq!(letters.len(), 2, "{letters:?}");
    for (letter, (consumer, id, detail_type)) in letters.iter().zip([
        ("correlate", "bad-incident", "Incident Triggered"),
        ("deployments", "bad-deployment", "Deployment Status Changed"),
    ]) {
        assert_eq!(letter["consumer"], consumer, "{letter}");
        assert_eq!(letter["event"]["id"], id, "the whole event is kept: {letter}");
        assert_eq!(letter["event"]["detail"], json!({"tenant": "default"}), "{letter}");
        assert_eq!(letter["retryable"], false, "{letter}");
        assert_eq!(letter["attempts"], 1, "not retried: {letter}");
        assert!(letter["error"].as_str().is_some_and(|e| e.contains(detail_type)), "{letter}");
    }
}
