//! The AWS emulator (moto server) that `make test` starts. A test that needs
//! it fails with a clear message when it is not there; it never skips.

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use changehub::adapters::dynamodb::DynamoStore;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use tokio::sync::OnceCell;

pub const ENDPOINT_VAR: &str = "CHANGEHUB_TEST_AWS_ENDPOINT";

/// The emulator's URL; panics with instructions when it is not set or not reachable.
pub fn endpoint() -> String {
    let url = std::env::var(ENDPOINT_VAR).unwrap_or_default();
    assert!(
        !url.is_empty(),
        "{ENDPOINT_VAR} is not set: this test needs the AWS emulator (moto server). \
         Run the suite with `make test`, which starts it, or start `moto_server` yourself and set {ENDPOINT_VAR}=http://127.0.0.1:PORT"
    );
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let reachable = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(reachable, "the AWS emulator at {url} ({ENDPOINT_VAR}) is not reachable: is moto server running?");
    url
}

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// SDK configuration pointing the real aws-sdk clients at the emulator.
pub async fn config() -> SdkConfig {
    CONFIG
        .get_or_init(|| async {
            // The loader the Lambdas use (one shared HTTPS client), pointed at the emulator.
            changehub::adapters::aws::config_loader()
                .expect("SDK configuration")
                .endpoint_url(endpoint())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("testing", "testing", None, None, "changehub-tests"))
                .load()
                .await
        })
        .await
        .clone()
}

/// A new, empty table created from the code's table definition.
pub async fn dynamo_store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&config().await);
    let name = crate::unique("changehub-test");
    DynamoStore::create_table(&client, &name).await.expect("create table on the emulator");
    DynamoStore::new(client, name)
}

/// An SQS queue on the emulator, used as a rule or subscription target.
pub struct SqsInbox {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl SqsInbox {
    pub async fn create(prefix: &str) -> (Self, String) {
        let client = aws_sdk_sqs::Client::new(&config().await);
        let url = client
            .create_queue()
            .queue_name(crate::unique(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("url");
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let arn = attrs.attributes.and_then(|mut a| a.remove(&QueueAttributeName::QueueArn)).expect("queue arn");
        (Self { client, url }, arn)
    }

    pub async fn bodies(&mut self, expected: usize) -> Vec<String> {
        let mut got = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < if got.len() >= expected { 1 } else { 5 } {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(if got.len() >= expected { 0 } else { 1 })
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_polls += 1;
            }
            got.extend(messages.into_iter().filter_map(|m| m.body));
        }
        assert!(got.len() >= expected, "expected {expected} messages on the queue, got {}", got.len());
        got
    }

    /// The notifications on a topic subscriber's queue: at least
    /// `expected`, all that arrived, each read from its SNS envelope.
    pub async fn notifications(&mut self, expected: usize) -> Vec<SnsMessage> {
        self.bodies(expected).await.iter().map(|body| SnsMessage::of(body)).collect()
    }
}

/// One notification as an SQS subscription receives it from SNS.
#[derive(Debug, Clone)]
pub struct SnsMessage {
    /// Its message attributes (all strings).
    pub attributes: std::collections::BTreeMap<String, String>,
    pub subject: String,
    /// The message, parsed as JSON.
    pub message: serde_json::Value,
}

impl SnsMessage {
    /// Reads the SNS envelope `body`.
    pub fn of(body: &str) -> Self {
        let envelope: serde_json::Value = serde_json::from_str(body).expect("the SNS envelope");
        let attributes = envelope["MessageAttributes"]
            .as_object()
            .expect("message attributes")
            .iter()
            .map(|(k, v)| (k.clone(), v["Value"].as_str().expect("a string attribute").to_owned()))
            .collect();
        let subject = envelope["Subject"].as_str().unwrap_or_default().to_owned();
        let message = serde_json::from_str(envelope["Message"].as_str().expect("message")).expect("JSON");
        Self { attributes, subject, message }
    }
}

impl crate::bus_contract::Inbox for SqsInbox {
    async fn drain(&mut self, expected: usize) -> Vec<serde_json::Value> {
        self.bodies(expected).await.iter().map(|b| serde_json::from_str(b).expect("event JSON")).collect()
    }
}

/// A hub bus on the emulator with one rule, matching `pattern`, that sends
/// what it matches to a new queue.
pub async fn bus_to_queue(pattern: &serde_json::Value) -> (changehub::adapters::eventbridge::EventBridgeBus, SqsInbox) {
    let (bus, [inbox]) = bus_to_queues([pattern]).await;
    (bus, inbox)
}

/// A hub bus on the emulator with one rule per pattern, each sending what it
/// matches to a queue of its own (in the patterns' order).
pub async fn bus_to_queues<const N: usize>(
    patterns: [&serde_json::Value; N],
) -> (changehub::adapters::eventbridge::EventBridgeBus, [SqsInbox; N]) {
    let events = aws_sdk_eventbridge::Client::new(&config().await);
    let bus_name = crate::unique("hub");
    events.create_event_bus().name(&bus_name).send().await.expect("create bus");
    let mut inboxes = Vec::with_capacity(N);
    for pattern in patterns {
        let (inbox, queue_arn) = SqsInbox::create("bus-target").await;
        let rule = crate::unique("rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus_name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("put rule");
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(queue_arn).build().expect("target");
        let out =
            events.put_targets().rule(&rule).event_bus_name(&bus_name).targets(target).send().await.expect("targets");
        assert_eq!(out.failed_entry_count, 0);
        inboxes.push(inbox);
    }
    let Ok(inboxes) = inboxes.try_into() else { unreachable!("one inbox per pattern") };
    (changehub::adapters::eventbridge::EventBridgeBus::new(events, bus_name), inboxes)
}

/// A new SNS topic on the emulator with a queue subscribed to it.
pub async fn topic_to_queue() -> (changehub::adapters::sns::SnsNotifier, SqsInbox) {
    let sns = aws_sdk_sns::Client::new(&config().await);
    let topic = sns.create_topic().name(crate::unique("notifications")).send().await.expect("topic").topic_arn;
    let topic = topic.expect("topic arn");
    let (inbox, queue_arn) = SqsInbox::create("sns-target").await;
    sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");
    (changehub::adapters::sns::SnsNotifier::new(sns, topic), inbox)
}
