//! The deployed flow on the AWS emulator, wired as template.yaml wires it and
//! run by the functions' own handlers (`deployments`, `publish`,
//! `correlate`), each with its dependencies built as its `main.rs` builds
//! them: a sealed table (the audit key in Secrets Manager), the hub bus with
//! the Deployments and Correlate rules (the patterns the template test holds
//! equal to the code) each sending to a queue, the table's stream read as
//! Lambda reads it and filtered by the publish function's `FilterCriteria`,
//! and the notification topic with a queue subscribed (raw delivery off, so
//! the message attributes arrive). Signed samples from events/ go in through
//! the ingest use case; every message a function receives is handed to it
//! twice, as at-least-once delivery may.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use changehub::adapters::dynamodb::DynamoStore;
use changehub::adapters::eventbridge::EventBridgeBus;
use changehub::adapters::http_writeback::{HttpWriteBack, Retries, Timeouts};
use changehub::adapters::secretsmanager::{self, SecretsManagerSecrets};
use changehub::adapters::sns::SnsNotifier;
use changehub::app::Changes;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::deployments::Deployments;
use changehub::app::ingest::{DeliveryOutcome, Ingest, Webhooks};
use changehub::app::publish::Outbox;
use changehub::app::recheck;
use changehub::app::tagging::Consumer;
use changehub::domain::correlation::Reason;
use changehub::domain::event::SOURCE_CHANGE;
use changehub::domain::incident::{Incident, IncidentId, Source};
use changehub::domain::{Change, ChangeId, ChangeState, EventPattern, HubEvent, ServiceName, TenantId};
use changehub::ingest::{Origin, sign};
use changehub::ports::{ChangeReader, CounterKey, Counters, IncidentStore, SystemClock};
use changehub_tests::aws::{self, SqsInbox};
use changehub_tests::samples::{ROOT, SECRET};
use changehub_tests::{fixtures, unique};
use serde_json::{Value, json};

type Catalog = CachedCatalog<DynamoStore>;
type CorrelateDeps = Consumer<DynamoStore, SystemClock, SnsNotifier, HttpWriteBack<Option<SecretsManagerSecrets>>>;

/// How long the publish handler waits for a lease a dead attempt left (none here).
const LEASE: Duration = Duration::from_secs(1);

/// The stack on the emulator: what each function is given, and the queues
/// that stand for the functions' event sources and the topic's subscribers.
struct Stack {
    tenant: TenantId,
    store: DynamoStore,
    webhooks: Webhooks<DynamoStore, EventBridgeBus, Catalog, SecretsManagerSecrets, SystemClock>,
    deployments: Deployments<DynamoStore, Catalog, SystemClock>,
    outbox: Outbox<DynamoStore, EventBridgeBus, SnsNotifier, SystemClock, Catalog>,
    correlate: CorrelateDeps,
    /// The Deployments rule's target.
    deployments_rule: SqsInbox,
    /// The Correlate rule's target.
    correlate_rule: SqsInbox,
    /// Every change event on the hub bus.
    change_events: SqsInbox,
    /// A subscriber of the notification topic.
    notifications: SqsInbox,
    stream: TableStream,
}

impl Stack {
    async fn new() -> Self {
        let config = aws::config().await;
        let tenant = TenantId::parse(&unique("flow")).expect("tenant");
        let secrets = secretsmanager::Client::new(&config);
        let audit_key = unique("audit-key");
        secrets.create_secret().name(&audit_key).secret_string("k".repeat(64)).send().await.expect("audit key");
        let store = aws::dynamo_store().await.with_sealer(Arc::new(secretsmanager::audit_sealer(secrets, audit_key)));
        fixtures::seed(&Changes::new(store.clone(), SystemClock), tenant.as_str()).await;
        let webhook_secrets =
            super::ingest_aws::secrets_manager(&json!({tenant.as_str(): {"github": [SECRET], "pagerduty": [SECRET]}}))
                .await;

        let correlate = changehub::app::tagging::rule_pattern().expect("the correlate rule's pattern");
        let (bus, [deployments_rule, correlate_rule, change_events]) = aws::bus_to_queues([
            &changehub::app::deployments::event_pattern(),
            correlate.as_json(),
            &json!({"source": [SOURCE_CHANGE]}),
        ])
        .await;
        let (notifier, notifications) = aws::topic_to_queue().await;

        let catalog = || CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
        let ingest = Ingest::new(store.clone(), bus.clone(), catalog(), SystemClock);
        let no_tokens: Option<SecretsManagerSecrets> = None;
        let writeback = HttpWriteBack::new(no_tokens, Timeouts::default(), Retries::default()).expect("client");
        Self {
            webhooks: Webhooks { ingest, secrets: webhook_secrets },
            deployments: Deployments { store: store.clone(), catalog: catalog(), clock: SystemClock },
            outbox: Outbox::new(store.clone(), bus, notifier.clone(), SystemClock, catalog()),
            correlate: Consumer::new(Arc::new(Changes::new(store.clone(), SystemClock)), notifier, writeback),
            deployments_rule,
            correlate_rule,
            change_events,
            notifications,
            stream: TableStream::of_template(),
            tenant,
            store,
        }
    }

    /// A signed sample handed to the ingest use case as the ingest function
    /// does; the ids of the events it published on the hub bus.
    async fn webhook(&self, origin: Origin, file: &str) -> Vec<String> {
        let body = std::fs::read(Path::new(ROOT).join("events").join(origin.as_str()).join(file)).expect("sample");
        let stem = file.trim_end_matches(".json");
        let headers = sign::delivery(origin, SECRET, stem, &unique("delivery"), &body, chrono::Utc::now());
        let secrets = self.webhooks.secrets(&self.tenant, origin).await.expect("the tenant's secrets");
        match self.webhooks.webhook(&self.tenant, origin, &secrets, &headers, &body).await {
            Ok(DeliveryOutcome::Published(ids)) => ids,
            other => panic!("{file}: {other:?}"),
        }
    }

    /// The table's new change records as one batch, handed to the publish
    /// handler twice: what each delivery sent and found sent before.
    async fn publish(&mut self) -> [(usize, usize); 2] {
        let batch = self.stream.next_batch(&self.store).await;
        assert!(!batch.records.is_empty(), "the write is on the stream and passes the publish filter");
        let mut tallies = [(0, 0); 2];
        for tally in &mut tallies {
            let (response, t) = ::publish::handle(&self.outbox, &self.store, batch.clone(), LEASE).await;
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            *tally = (t.sent, t.duplicates);
        }
        tallies
    }

    async fn change(&self, id: &ChangeId) -> Change {
        self.store.get_change(&self.tenant, id).await.expect("read").expect("the change")
    }

    async fn incident(&self, id: &IncidentId) -> Incident {
        self.store.get_incident(&self.tenant, id).await.expect("read").expect("the incident")
    }

    /// The change's (changes, failures) counted on payments in its month.
    async fn counts(&self, change: &Change) -> (u64, u64) {
        let key = CounterKey {
            tenant: self.tenant.clone(),
            service: ServiceName::parse("payments").expect("service"),
            month: "2026-09".into(),
            category: change.category.clone(),
            change_type: change.change_type,
        };
        let counts = self.store.counts(&[key]).await.expect("counts");
        (counts[0].changes, counts[0].failures)
    }
}

/// The table's stream as the publish function's event source mapping reads
/// it: only the records its `FilterCriteria` lets through, each once.
struct TableStream {
    filter: EventPattern,
    read: BTreeSet<String>,
}

impl TableStream {
    fn of_template() -> Self {
        let template = super::template::template();
        let source = &super::template::function(&template, "PublishFunction")["Properties"]["Events"]["ChangeWrites"];
        assert_eq!(source["Type"], "DynamoDB");
        let filters = source["Properties"]["FilterCriteria"]["Filters"].as_array().expect("filters");
        let [filter] = filters.as_slice() else { panic!("one filter: {filters:?}") };
        let pattern: Value = serde_json::from_str(filter["Pattern"].as_str().expect("a JSON pattern")).expect("JSON");
        Self { filter: EventPattern::parse(pattern).expect("an event pattern"), read: BTreeSet::new() }
    }

    /// The records written since the last batch that the filter lets through, as one Lambda event.
    async fn next_batch(&mut self, store: &DynamoStore) -> Event {
        let mut records = Vec::new();
        for record in super::publish::stream_records(store).await {
            let sequence = record["dynamodb"]["SequenceNumber"].as_str().expect("a sequence number").to_owned();
            if self.read.insert(sequence) && self.filter.matches(&record) {
                records.push(record);
            }
        }
        serde_json::from_value(json!({"Records": records})).expect("a DynamoDB stream event")
    }
}

/// The events on a rule's queue, as its Lambda target receives them.
async fn received(queue: &mut SqsInbox, expected: usize) -> Vec<Value> {
    let bodies = queue.bodies(expected).await;
    assert_eq!(bodies.len(), expected, "{bodies:?}");
    bodies.iter().map(|b| serde_json::from_str(b).expect("an EventBridge event")).collect()
}

/// The notifications on the topic's queue: at least `expected`, all that
/// arrived, each its attributes and message. [`feed`] keeps the feed's (one per event).
async fn notified(queue: &mut SqsInbox, expected: usize) -> Vec<(BTreeMap<String, String>, Value)> {
    queue.notifications(expected).await.into_iter().map(|n| (n.attributes, n.message)).collect()
}

/// The feed's notifications among `told`, exactly `expected`; every other
/// one is addressed to someone, once.
fn feed(told: Vec<(BTreeMap<String, String>, Value)>, expected: usize) -> Vec<(BTreeMap<String, String>, Value)> {
    let (feed, routed): (Vec<_>, Vec<_>) = told.into_iter().partition(|(a, _)| a["audience"] == "feed");
    assert_eq!(feed.len(), expected, "{feed:?}");
    let mut addressed: Vec<(&str, &str, &str, String)> = routed
        .iter()
        .map(|(a, m)| (a["kind"].as_str(), a["audience"].as_str(), a["notify"].as_str(), m["actor"].to_string()))
        .collect();
    let all = addressed.len();
    addressed.sort();
    addressed.dedup();
    assert_eq!(addressed.len(), all, "one notification per event and recipient: {routed:?}");
    feed
}

/// A GitHub deployment of payments succeeds; seven minutes later PagerDuty
/// opens an incident on payments. Through the functions on the emulator:
/// the deployment becomes a completed change, its writes reach the bus and
/// the topic once, the incident is tagged change-related both ways, counted
/// once and told once with its filter attributes; every second delivery
/// changes nothing and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_then_an_incident_go_through_the_deployed_functions_once() {
    let mut stack = Stack::new().await;
    let change = the_deployment_becomes_a_change(&mut stack).await;
    let counted = stack.counts(&change).await;
    its_writes_reach_the_bus_and_the_topic_once(&mut stack, &change).await;

    let (incident, tagged) = the_incident_is_tagged_both_ways(&mut stack, &change).await;
    assert_eq!(stack.counts(&tagged).await, (counted.0, counted.1 + 1), "one failure counted, once");
    let told = notified(&mut stack.notifications, 1).await;
    let owners = told.iter().find(|(a, _)| a["audience"] == "owners").expect("the owners are told");
    assert_eq!((owners.0["notify"].as_str(), owners.0["service"].as_str()), ("payments-team", "payments"));
    let [(attributes, message)] = feed(told, 1).try_into().expect("one notification to the feed");
    let filter: BTreeMap<&str, &str> = ["tenant", "service", "severity", "type"]
        .into_iter()
        .map(|k| (k, attributes.get(k).map_or("", String::as_str)))
        .collect();
    let expected = [
        ("tenant", stack.tenant.as_str()),
        ("service", "payments"),
        ("severity", "P2"), // the sample's priority: PagerDuty sends no severity
        ("type", "change_related_incident"),
    ];
    assert_eq!(filter, BTreeMap::from(expected), "the notification's filter attributes");
    assert_eq!(
        (message["change"]["id"].as_str(), message["incident"]["id"].as_str()),
        (Some(change.id.to_string().as_str()), Some(incident.id.as_str()))
    );

    // The tag's write on the change goes out through the outbox too, once.
    assert_eq!(stack.publish().await, [(1, 0), (0, 1)]);
    let [event] = received(&mut stack.change_events, 1).await.try_into().expect("one event");
    assert_eq!(event["detail-type"], "Change Incident Related");
    let told = feed(notified(&mut stack.notifications, 1).await, 1);
    let [(attributes, _)] = told.try_into().expect("one notification");
    assert_eq!(attributes["kind"], "Change Incident Related");

    // Nothing else arrived anywhere, and the counts stand.
    assert!(notified(&mut stack.notifications, 0).await.is_empty(), "no second notification");
    assert!(received(&mut stack.change_events, 0).await.is_empty());
    assert!(received(&mut stack.deployments_rule, 0).await.is_empty());
    assert!(received(&mut stack.correlate_rule, 0).await.is_empty(), "a tag's own write re-checks nothing");
    assert_eq!(stack.counts(&tagged).await, (counted.0, counted.1 + 1));
}

/// The deployment: ingest → hub bus → the Deployments rule → the deployments
/// handler, twice. The change it made, as the first delivery left it.
async fn the_deployment_becomes_a_change(stack: &mut Stack) -> Change {
    let ids = stack.webhook(Origin::Github, "deployment_status.success.json").await;
    let [event] = received(&mut stack.deployments_rule, 1).await.try_into().expect("one event");
    assert_eq!(
        (event["detail-type"].as_str(), event["detail"]["event_id"].as_str()),
        (Some("Deployment Status Changed"), ids.first().map(String::as_str))
    );
    let first = ::deployments::handle(&stack.deployments, &event).await.expect("handled");
    assert_eq!(first["state"], "completed", "{first}");
    let id = ChangeId::parse(first["created"].as_str().expect("a change made from the deployment")).expect("id");
    let change = stack.change(&id).await;
    let again = ::deployments::handle(&stack.deployments, &event).await.expect("handled again");
    assert_eq!(again, json!({"unchanged": id}));
    assert_eq!(stack.change(&id).await, change, "a second delivery writes nothing");
    assert_eq!(change.state, ChangeState::Completed);
    assert!(change.origin.as_ref().is_some_and(|o| o.repository == "acme-corp/checkout-service"), "{change:?}");
    change
}

/// The change's writes: the table's stream → the publish handler (twice) →
/// one hub event per audit entry on the bus and one notification each.
async fn its_writes_reach_the_bus_and_the_topic_once(stack: &mut Stack, change: &Change) {
    let trail = stack.store.audit_trail(&stack.tenant, &change.id).await.expect("trail");
    assert_eq!(stack.publish().await, [(trail.len(), 0), (0, trail.len())]);
    let hub_event = |e: &Value| {
        let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (field(&e["detail"]["event_id"]), field(&e["detail-type"]))
    };
    let mut published: Vec<_> = received(&mut stack.change_events, trail.len()).await.iter().map(hub_event).collect();
    let mut expected: Vec<_> =
        trail.iter().map(|entry| HubEvent::change_mutated(change, entry)).map(|e| (e.id, e.detail_type)).collect();
    published.sort();
    expected.sort();
    assert_eq!(published, expected, "one event per audit entry of the change");
    let told = feed(notified(&mut stack.notifications, trail.len()).await, trail.len());
    let kinds: BTreeSet<&str> = told.iter().map(|(a, _)| a["kind"].as_str()).collect();
    assert_eq!(kinds, expected.iter().map(|(_, kind)| kind.as_str()).collect(), "{told:?}");
    assert!(told.iter().all(|(a, _)| a["tenant"] == stack.tenant.as_str()), "{told:?}");
    assert!(received(&mut stack.deployments_rule, 0).await.is_empty(), "change events are not deployments");
    // The Correlate rule takes those that move the change's implementation:
    // each re-checks the incidents the change may explain (none yet), twice.
    let rechecked: Vec<&(String, String)> =
        expected.iter().filter(|(_, kind)| recheck::DETAIL_TYPES.contains(&kind.as_str())).collect();
    assert!(!rechecked.is_empty(), "a completed deployment moved its change's implementation: {expected:?}");
    let mut taken = Vec::new();
    for event in received(&mut stack.correlate_rule, rechecked.len()).await {
        taken.push(hub_event(&event));
        for _ in 0..2 {
            let answer = ::correlate::handle(&stack.correlate, &event).await.expect("handled");
            assert_eq!(answer["incidents"], json!([]), "no incident to re-check yet: {answer}");
        }
    }
    taken.sort();
    assert_eq!(taken.iter().collect::<Vec<_>>(), rechecked, "the Correlate rule takes exactly the re-checking events");
}

/// The incident: ingest → hub bus → the Correlate rule → the correlate
/// handler, twice. The incident record and the change as the first delivery
/// left them: each lists the other.
async fn the_incident_is_tagged_both_ways(stack: &mut Stack, change: &Change) -> (Incident, Change) {
    let ids = stack.webhook(Origin::Pagerduty, "incident.triggered.json").await;
    assert!(received(&mut stack.deployments_rule, 0).await.is_empty());
    let [event] = received(&mut stack.correlate_rule, 1).await.try_into().expect("one event");
    assert_eq!(
        (event["detail-type"].as_str(), event["detail"]["event_id"].as_str()),
        (Some("Incident Triggered"), ids.first().map(String::as_str))
    );
    let first = ::correlate::handle(&stack.correlate, &event).await.expect("handled");
    assert_eq!(first["newly_related"], json!([change.id]), "{first}");
    let incident_id = IncidentId::of(&stack.tenant, Source::Pagerduty, "Q2LKX3U8ZP7WNM");
    let (incident, tagged) = (stack.incident(&incident_id).await, stack.change(&change.id).await);
    let again = ::correlate::handle(&stack.correlate, &event).await.expect("handled again");
    assert_eq!(again["newly_related"], json!([]), "{again}");
    let after = (stack.incident(&incident_id).await, stack.change(&change.id).await);
    assert_eq!(after, (incident.clone(), tagged.clone()), "a second delivery writes nothing");

    assert!(incident.change_related, "{incident:?}");
    let [related] = incident.related_changes.as_slice() else { panic!("one related change: {incident:?}") };
    assert_eq!(related.change_id, change.id);
    assert!(related.reasons.contains(&Reason::SameService), "{related:?}");
    let [listed] = tagged.related_incidents.as_slice() else { panic!("one related incident: {tagged:?}") };
    assert_eq!(listed.incident_id, incident.id.as_str());
    assert!(tagged.review.as_ref().is_some_and(|r| r.done.is_none()), "a post-implementation review is required");
    (incident, tagged)
}
