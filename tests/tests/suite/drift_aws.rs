//! The drift function wired as template.yaml wires it, on the AWS emulator:
//! every AWS sample goes through the aws-events handler onto a hub bus whose
//! one rule is the template's `DriftEvents` pattern (its target a queue, as
//! the function is); what arrives is exactly the evidence the drift
//! consumer judges. Each delivered event is then handed to the drift
//! function's own handler, twice (EventBridge delivers at least once), on
//! DynamoDB, telling an SNS topic with a queue subscribed.

use changehub::app::Changes;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::drift::Drift;
use changehub::app::ingest::Ingest;
use changehub::domain::TenantId;
use changehub::domain::finding::observation::DETAIL_TYPES;
use changehub::ingest::{Normalized, Origin, aws as normalize};
use changehub::ports::{FindingQuery, FindingStore, SystemClock};
use changehub_tests::aws;
use changehub_tests::samples::samples;
use changehub_tests::{fixtures, unique};
use serde_json::{Value, json};

use super::template::{function, template};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_rule_delivers_the_evidence_and_the_drift_function_tells_sns_once() {
    let t = template();
    let pattern = &function(&t, "DriftFunction")["Properties"]["Events"]["DriftEvents"]["Properties"]["Pattern"];
    let (bus, mut rule_target) = aws::bus_to_queue(pattern).await;
    let store = aws::dynamo_store().await;
    let tenant = TenantId::parse(&unique("drift")).expect("tenant");
    fixtures::seed(&Changes::new(store.clone(), SystemClock), tenant.as_str()).await;
    let catalog = || CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL);
    let ingest = Ingest::new(store.clone(), bus, catalog(), SystemClock);

    // Every AWS sample through aws-events; the evidence the consumer reads is
    // what the rule must deliver, and nothing else.
    let mut expected = Vec::new();
    let mut published = 0;
    for file in samples(Origin::Aws) {
        let bytes = std::fs::read(&file).expect("sample");
        let answer = aws_events::handle(&ingest, &tenant, &serde_json::from_slice(&bytes).expect("json"))
            .await
            .expect("handled");
        published += answer["published"].as_array().map_or(0, Vec::len);
        if let Ok(Normalized::Events(events)) = normalize::normalize(&bytes) {
            for c in events {
                let (detail_type, _) = c.fact.split();
                if DETAIL_TYPES.contains(&detail_type.as_str()) {
                    expected.push((detail_type, c.external_id));
                }
            }
        }
    }
    assert!(published > expected.len(), "some samples are other evidence ({published} published)");
    let mut delivered: Vec<Value> = rule_target
        .bodies(expected.len())
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("an EventBridge event"))
        .collect();
    let mut arrived: Vec<(String, String)> = delivered
        .iter()
        .map(|e| {
            let external = e["detail"]["external_id"].as_str().unwrap_or_default().to_owned();
            (e["detail-type"].as_str().unwrap_or_default().to_owned(), external)
        })
        .collect();
    arrived.sort();
    expected.sort();
    assert_eq!(arrived, expected, "the rule delivers exactly the configuration-change evidence");
    for detail_type in ["Configuration Changed", "API Call Recorded", "Stack Status Changed"] {
        assert!(expected.iter().any(|(t, _)| t == detail_type), "a sample of {detail_type}");
    }

    // The drift function, as its main builds it, on each delivered event
    // (by the events' own times, so every Config item follows its call), twice.
    let (notifier, mut topic) = aws::topic_to_queue().await;
    let drift = Drift::new(store.clone(), catalog(), SystemClock, notifier);
    delivered.sort_by(|a, b| a["detail"]["occurred_at"].as_str().cmp(&b["detail"]["occurred_at"].as_str()));
    let mut answers = Vec::new();
    for event in &delivered {
        let first = drift::handle(&drift, event).await.expect("judged");
        let again = drift::handle(&drift, event).await.expect("judged again");
        if first["ignored"].is_string() {
            assert_eq!(again, first, "{event}");
        } else {
            assert_eq!(again, json!({"duplicate": true}), "{event}: {first}");
        }
        answers.push(first);
    }
    let opened = answers.iter().filter(|a| a["opened"] == true).count();
    assert!(opened >= 3, "{answers:#?}");

    // One notification per finding, each with the attributes SNS filters on.
    let findings = store.list_findings(&FindingQuery::new(tenant.clone(), 100)).await.expect("findings").items;
    assert_eq!(findings.len(), opened, "{answers:#?}");
    // Every copy of one telling carries the finding; the feed's is one per finding.
    let told: Vec<_> = topic
        .notifications(findings.len())
        .await
        .into_iter()
        .filter(|n| n.attributes.get("audience").map(String::as_str) == Some("feed"))
        .map(|n| (n.attributes, n.subject, n.message))
        .collect();
    assert_eq!(told.len(), findings.len(), "told once each: {told:#?}");
    let mut ids: Vec<&str> = told.iter().filter_map(|(_, _, m)| m["finding"]["id"].as_str()).collect();
    ids.sort();
    let mut stored: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
    stored.sort();
    assert_eq!(ids, stored);
    for (attributes, _, m) in &told {
        assert_eq!(attributes["type"], "unauthorized_change", "{m}");
        assert_eq!(attributes["tenant"], tenant.as_str());
        assert!(attributes.contains_key("service") && attributes.contains_key("severity"), "{attributes:?}");
    }
    let break_glass = told
        .iter()
        .find(|(_, _, m)| m["finding"]["actor"]["name"] == "maria.rossi@acme.example")
        .expect("the break-glass session's finding, naming the person");
    assert_eq!((break_glass.0["service"].as_str(), break_glass.0["severity"].as_str()), ("payments", "critical"));
    assert!(break_glass.1.starts_with("[Unauthorized Change] maria.rossi@acme.example"), "{}", break_glass.1);
    assert!(break_glass.2["message"]["facts"].to_string().contains("ops-break-glass"), "{}", break_glass.2);
}
