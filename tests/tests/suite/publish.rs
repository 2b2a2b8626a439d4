//! The outbox publisher. On the emulator: changes written to DynamoDB, the
//! table's stream read as Lambda reads it (GetRecords, the records' JSON as
//! the service sends it), handed to the publish function's handler; each
//! committed mutation arrives once on EventBridge (rule → SQS) and once on
//! SNS (→ SQS), however often the batch is handed over. In process: the
//! same handler's answers to records it cannot use.

use aws_lambda_events::event::dynamodb::Event;
use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::local_bus::LocalBus;
use changehub::adapters::local_notifier::FileNotifier;
use changehub::app::Changes;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::publish::Outbox;
use changehub::domain::ChangeState;
use changehub::ports::{FixedClock, SystemClock};
use changehub_tests::aws;
use changehub_tests::fixtures::{alice, seed, submit_and_approve, to};
use changehub_tests::{new_change, t0, unique};
use serde_json::{Value, json};
use std::time::Duration;

/// One call to the emulator's DynamoDB Streams API, answered as raw JSON
/// (the wire format the Lambda service hands to functions).
async fn streams(action: &str, body: Value) -> Value {
    let auth =
        "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0";
    let response = reqwest::Client::new()
        .post(aws::endpoint())
        .header("x-amz-target", format!("DynamoDBStreams_20120810.{action}"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("authorization", auth)
        .body(body.to_string())
        .send()
        .await
        .expect("streams call");
    assert!(response.status().is_success(), "{action}: {}", response.status());
    response.json().await.expect("streams JSON")
}

/// Every record of the table's stream so far, as the Lambda service hands
/// them to a function (the wire JSON, with the stream's ARN).
pub(crate) async fn stream_records(store: &DynamoStore) -> Vec<Value> {
    let client = aws_sdk_dynamodb::Client::new(&aws::config().await);
    let table = client.describe_table().table_name(store.table_name()).send().await.expect("describe table");
    let arn = table.table.and_then(|t| t.latest_stream_arn).expect("the table has a stream");
    let stream = streams("DescribeStream", json!({"StreamArn": arn})).await;
    let mut records = Vec::new();
    for shard in stream["StreamDescription"]["Shards"].as_array().expect("shards") {
        let iterator = streams(
            "GetShardIterator",
            json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await;
        let got = streams("GetRecords", json!({"ShardIterator": iterator["ShardIterator"]})).await;
        for mut record in got["Records"].as_array().cloned().unwrap_or_default() {
            record["eventSourceARN"] = json!(arn);
            records.push(record);
        }
    }
    records
}

/// Every record of the table's stream so far, as the Lambda event it makes.
async fn stream_event(store: &DynamoStore) -> Event {
    let records = stream_records(store).await;
    serde_json::from_value(json!({"Records": records})).expect("a DynamoDB stream event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_stream_publishes_each_mutation_once_on_eventbridge_and_sns() {
    let store = aws::dynamo_store().await;
    let app = Changes::new(store.clone(), FixedClock::new(t0()));
    let tenant = unique("acme");
    seed(&app, &tenant).await;
    let created = app
        .create(
            &alice(&tenant),
            new_change("Rotate the payments keys", &["payments"], t0() + chrono::Duration::hours(1), 1),
        )
        .await
        .expect("create");
    let approved = submit_and_approve(&app, &tenant, &created.id).await;
    app.transition(&alice(&tenant), &created.id, to(ChangeState::Scheduled, approved.version)).await.expect("schedule");
    let trail = app.audit(&alice(&tenant), &created.id).await.expect("trail");

    let (bus, mut events) = aws::bus_to_queue(&json!({"source": ["changehub.change"]})).await;
    let (notifier, mut notifications) = aws::topic_to_queue().await;
    let outbox = Outbox::new(store.clone(), bus, notifier, SystemClock, app.catalog.clone());
    let batch = stream_event(&store).await;
    assert!(batch.records.len() > trail.len(), "the stream carries the change item and more: {}", batch.records.len());

    let (response, tally) = publish::handle(&outbox, &store, batch.clone(), Duration::from_secs(1)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(tally.sent, trail.len(), "one event per audit entry: {tally:?}");

    let got = events.bodies(trail.len()).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).expect("event")["detail"]["event_id"].as_str().expect("id").to_owned()
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = trail.iter().map(|e| format!("{}-{}", created.id, e.seq)).collect();
    expected.sort();
    assert_eq!(ids, expected);
    let types: Vec<String> = got
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).expect("event")["detail-type"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    for t in ["Change Created", "Change Submitted", "Approval Recorded", "Change Approved", "Change Scheduled"] {
        assert!(types.iter().any(|x| x == t), "{t} published: {types:?}");
    }
    // One notification per mutation to the feed, and one per recipient the
    // catalog routes it to (the owners, the approvers, the requester), each once.
    let told: Vec<Value> = notifications
        .bodies(trail.len())
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("SNS envelope"))
        .collect();
    let attribute = |n: &Value, name: &str| n["MessageAttributes"][name]["Value"].as_str().unwrap_or("").to_owned();
    let message = |n: &Value| serde_json::from_str::<Value>(n["Message"].as_str().unwrap_or("{}")).unwrap_or_default();
    let feed = told.iter().filter(|n| attribute(n, "audience") == "feed").count();
    assert_eq!(feed, trail.len(), "one per mutation to the feed");
    let mut routed: Vec<(String, String, String, String)> = told
        .iter()
        .filter(|n| attribute(n, "audience") != "feed")
        .map(|n| {
            (attribute(n, "type"), attribute(n, "audience"), attribute(n, "notify"), message(n)["actor"].to_string())
        })
        .collect();
    routed.sort();
    let expected = [
        // Pat's approval opened level 2: the CAB is asked.
        ("approval_requested", "approvers", "cab"),
        ("change_approved", "owners", "payments-team"),
        ("change_approved", "requester", "alice@example.com"),
        ("change_scheduled", "cab", "cab"),
        ("change_scheduled", "owners", "payments-team"),
        ("change_scheduled", "requester", "alice@example.com"),
        ("change_submitted", "approvers", "payments-leads"),
        ("change_submitted", "owners", "payments-team"),
    ];
    let addressed: Vec<(&str, &str, &str)> = routed
        .iter()
        .map(|(t, a, n, _)| (t.as_str(), a.as_str(), n.as_str()))
        .filter(|(_, a, _)| *a != "stakeholders")
        .collect();
    assert_eq!(addressed, expected, "{routed:?}");

    // The same batch again (a retry, or a second copy): nothing is sent.
    let (response, again) = publish::handle(&outbox, &store, batch, Duration::from_secs(1)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!((again.sent, again.duplicates), (0, trail.len()));
    assert!(events.bodies(0).await.is_empty(), "no event twice");
    assert!(notifications.bodies(0).await.is_empty(), "no notification twice");
}

fn catalog(store: &EmbeddedStore) -> CachedCatalog<EmbeddedStore> {
    CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL)
}

fn record(sequence: &str, new_image: Value, old_image: Option<Value>) -> Value {
    let mut dynamodb = json!({"Keys": {"PK": {"S": "T#acme#CHG#x"}, "SK": {"S": "META"}}, "NewImage": new_image,
        "SequenceNumber": sequence, "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES"});
    if let Some(old) = old_image {
        dynamodb["OldImage"] = old;
    }
    json!({"eventID": sequence, "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1", "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/changehub/stream/2026-11-30T00:00:00.000"})
}

#[tokio::test]
async fn a_record_that_cannot_be_read_fails_it_and_the_rest_of_the_batch_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("outbox.db")).expect("open");
    let notifier = FileNotifier::new(dir.path().join("notifications.jsonl"));
    let outbox = Outbox::new(store.clone(), LocalBus::new(), notifier, SystemClock, catalog(&store));
    let other_item = json!({"entity": {"S": "change_list"}, "PK": {"S": "T#acme#CHANGES"}});
    let garbled = json!({"entity": {"S": "change"}, "version": {"N": "2"}, "doc": {"S": "{not json"}});
    let event: Event = serde_json::from_value(json!({"Records": [
        record("100", other_item, None),
        record("200", garbled, Some(json!({"entity": {"S": "change"}, "version": {"N": "1"}, "doc": {"S": "{}"}}))),
        record("300", json!({"entity": {"S": "change_list"}}), None),
    ]}))
    .expect("event");
    let (response, tally) = publish::handle(&outbox, &store, event, Duration::from_millis(10)).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, [Some("200".to_owned()), Some("300".to_owned())], "from the bad record on, in order");
    assert_eq!((tally.sent, tally.skipped), (0, 1), "the item that is not a change is skipped");
}

#[tokio::test]
async fn the_sample_batch_of_another_item_is_skipped_without_an_aws_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("outbox.db")).expect("open");
    let notifier = FileNotifier::new(dir.path().join("n.jsonl"));
    let outbox = Outbox::new(store.clone(), LocalBus::new(), notifier, SystemClock, catalog(&store));
    let event: Event =
        serde_json::from_str(include_str!("../../../events/dynamodb/stream.other_item.json")).expect("sample");
    let (response, tally) = publish::handle(&outbox, &store, event, Duration::from_millis(10)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((tally.sent, tally.skipped), (0, 1));
}
