//! The notifier contract: what is sent arrives with its subject, body and attributes.

use changehub::ports::{Fact, Link, Message, Notification, Notifier};
use std::collections::BTreeMap;
use std::future::Future;

/// Where notifications end up (an SQS queue subscribed to the topic, a file).
pub trait NotificationInbox {
    fn received(&mut self, expected: usize) -> impl Future<Output = Vec<Notification>>;
}

pub fn sample(kind: &str) -> Notification {
    Notification {
        subject: format!("[approved] Upgrade payments DB ({kind})"),
        body: serde_json::json!({"event": kind, "change": {"id": "c-1", "services": ["payments"]}, "note": "ünïcode ✓"}),
        attributes: BTreeMap::from([
            ("kind".to_owned(), kind.to_owned()),
            ("tenant".to_owned(), "acme".to_owned()),
            ("services".to_owned(), "payments,ledger".to_owned()),
        ]),
        message: Message {
            headline: format!("Upgrade payments DB: {kind}"),
            lines: vec!["Tuesday 22:00 CET, for 1 h.".to_owned()],
            facts: vec![Fact { name: "Service".to_owned(), value: "payments".to_owned() }],
            links: vec![Link { label: "Change".to_owned(), url: "https://hub.example.com/changes/c-1".to_owned() }],
        },
    }
}

/// The notifications of a notifications file's text (one JSON object a line, as `FileNotifier` writes them).
pub fn file_lines(text: &str) -> Vec<Notification> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
            Notification {
                subject: v["subject"].as_str().expect("subject").to_owned(),
                body: v["body"].clone(),
                attributes: serde_json::from_value(v["attributes"].clone()).expect("attributes"),
                message: serde_json::from_value(v["message"].clone()).expect("message"),
            }
        })
        .collect()
}

pub async fn notifications_arrive_whole<N: Notifier, I: NotificationInbox>(notifier: N, mut inbox: I) {
    let first = sample("Change Approved");
    let second = sample("Change Scheduled");
    notifier.notify(&first).await.expect("notify");
    notifier.notify(&second).await.expect("notify");
    let got = inbox.received(2).await;
    assert_eq!(got, vec![first, second]);
}
