//! The notifier contract against SNS (topic → SQS on the emulator) and the
//! local JSON-lines file notifier.

use changehub::adapters::local_notifier::FileNotifier;
use changehub::ports::Notification;
use changehub_tests::aws::{self, SqsInbox};
use changehub_tests::notifier_contract::{self as contract, NotificationInbox};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The notifications file, and the directory that holds it (kept alive).
struct FileInbox(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl NotificationInbox for FileInbox {
    async fn received(&mut self, _expected: usize) -> Vec<Notification> {
        contract::file_lines(&tokio::fs::read_to_string(&self.0).await.expect("notifications file"))
    }
}

struct SnsInbox(SqsInbox);

impl NotificationInbox for SnsInbox {
    async fn received(&mut self, expected: usize) -> Vec<Notification> {
        let mut out = Vec::new();
        for body in self.0.bodies(expected).await {
            // The SNS envelope that an SQS subscription receives.
            let env: serde_json::Value = serde_json::from_str(&body).expect("SNS envelope");
            let attributes: BTreeMap<String, String> = env["MessageAttributes"]
                .as_object()
                .expect("message attributes")
                .iter()
                .map(|(k, v)| {
                    assert_eq!(v["Type"], "String");
                    (k.clone(), v["Value"].as_str().expect("value").to_owned())
                })
                .collect();
            let mut body: serde_json::Value =
                serde_json::from_str(env["Message"].as_str().expect("message")).expect("message JSON");
            let message = body.as_object_mut().and_then(|b| b.remove("message")).expect("the text for people");
            out.push(Notification {
                subject: env["Subject"].as_str().expect("subject").to_owned(),
                body,
                attributes,
                message: serde_json::from_value(message).expect("message"),
            });
        }
        out
    }
}

#[tokio::test]
async fn file_notifier_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notifications.jsonl");
    contract::notifications_arrive_whole(FileNotifier::new(&path), FileInbox(path, dir)).await;
}

#[tokio::test]
async fn sns_notifier_delivers_to_a_subscribed_queue_with_attributes() {
    let (notifier, inbox) = aws::topic_to_queue().await;
    contract::notifications_arrive_whole(notifier, SnsInbox(inbox)).await;
}
