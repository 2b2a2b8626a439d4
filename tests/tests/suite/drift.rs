//! Unauthorized-change findings: the drift consumer's contract on both
//! stores, and `/findings` over HTTP on both stores.

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::http::StatusCode;
use changehub::domain::ChangeType;
use changehub::domain::finding::authorize::AuthorizedBy;
use changehub::domain::finding::change_evidence::{ChangeEvidence, MAX_CHANGE_EVIDENCE, Recorded};
use changehub::domain::finding::observation::Evidence;
use changehub::ports::FindingStore;
use changehub_tests::drift_contract::{self as contract, DriftHubStore, TRAIL_BREAK_GLASS, evidence, hub};
use changehub_tests::fixtures::{alice, carol, who};
use changehub_tests::http::{Answer, Tokens, call_as};
use changehub_tests::{aws, new_change, t0};
use serde_json::json;

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    findings_are_replaced_at_their_version_and_listed_newest_first,
    a_burst_is_one_finding_with_a_count_however_concurrent_and_duplicated,
    a_config_item_and_its_api_call_make_one_finding_in_either_order,
    an_approved_window_authorizes_and_a_pipeline_needs_an_implementation,
    a_change_naming_the_resource_authorizes_it,
    drift_findings_are_routed_by_the_catalogs_rules,
    authorized_observations_are_recorded_on_their_change_once,
    findings_of_the_same_instant_are_both_kept,
    a_suppression_window_records_without_telling,
    a_config_item_and_its_call_at_the_same_instant_make_one_finding,
    one_cloudtrail_record_in_two_envelopes_counts_once,
    a_change_approved_before_the_plannable_index_authorizes_once_migrated,
);

/// `/findings` on one store: the break-glass session's unauthorized change
/// on payments, read, acknowledged by an owner, linked by the cab.
async fn findings_over_http<S: DriftHubStore + changehub::ports::ActivityLog + changehub::ports::ProblemStore>(
    store: S,
) {
    let h = hub(store).await;
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "e1", t0());
    h.drift.handle(&dt, &d).await.expect("judged");
    let tokens = Tokens::new();
    let router: Router = changehub::http::router(h.app.clone(), tokens.authenticator());
    let call = |who: changehub::app::Caller, method: &'static str, path: String, body: Option<serde_json::Value>| {
        let (router, token) = (router.clone(), tokens.of(&who));
        async move { call_as(&router, &token, method, &path, body).await }
    };
    let ok = |a: &Answer| assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let tenant = h.tenant.clone();

    let list =
        call(alice(&tenant), "GET", "/findings?service=payments&status=open&kind=unauthorized_change".into(), None)
            .await;
    ok(&list);
    let findings = list.body["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{:?}", list.body);
    let id = findings[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(findings[0]["actor"]["name"], "maria.rossi@acme.example");
    assert_eq!(findings[0]["severity"], "critical");
    let bad = call(alice(&tenant), "GET", "/findings?status=gone".into(), None).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    let bad = call(alice(&tenant), "GET", "/findings?actor=x".into(), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let got = call(alice(&tenant), "GET", format!("/findings/{id}"), None).await;
    ok(&got);
    assert_eq!(got.body["version"], 1);
    let missing = call(alice(&tenant), "GET", "/findings/fnd_20261201T2200_0123456789abcdef".into(), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let malformed = call(alice(&tenant), "GET", "/findings/nope".into(), None).await;
    assert_eq!((malformed.status, malformed.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));

    // Alice neither owns payments nor sits on the cab.
    let ack = json!({"version": 1, "note": "looking"});
    let refused = call(alice(&tenant), "POST", format!("/findings/{id}/acknowledge"), Some(ack.clone())).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let owner = who(&tenant, "olga@example.com", &["payments-team", "engineers"]);
    let acked = call(owner.clone(), "POST", format!("/findings/{id}/acknowledge"), Some(ack.clone())).await;
    ok(&acked);
    assert_eq!((acked.body["status"].as_str(), acked.body["version"].as_u64()), (Some("acknowledged"), Some(2)));
    assert_eq!(acked.body["history"][0]["by"], "olga@example.com");
    let stale = call(owner.clone(), "POST", format!("/findings/{id}/acknowledge"), Some(ack)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    // Only the cab or an admin dismisses, and with a reason.
    let no_reason =
        call(carol(&tenant), "POST", format!("/findings/{id}/dismiss"), Some(json!({"version": 2, "reason": " "})))
            .await;
    assert_eq!(
        (no_reason.status, no_reason.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reason"))
    );
    let by_owner =
        call(owner, "POST", format!("/findings/{id}/dismiss"), Some(json!({"version": 2, "reason": "test account"})))
            .await;
    assert_eq!(by_owner.status, StatusCode::FORBIDDEN);
    // Linked to a retroactive emergency change on payments.
    let normal = h
        .app
        .create(&alice(&tenant), new_change("x", &["payments"], t0() + chrono::Duration::days(1), 1))
        .await
        .expect("create");
    let mut emergency = new_change("open ssh for debugging", &["payments"], t0() - chrono::Duration::hours(1), 2);
    emergency.change_type = ChangeType::Emergency;
    let emergency = h.app.create(&alice(&tenant), emergency).await.expect("create emergency");
    let link = |change: String| Some(json!({"version": 2, "change_id": change}));
    let not_emergency = call(carol(&tenant), "POST", format!("/findings/{id}/link"), link(normal.id.to_string())).await;
    assert_eq!(
        (not_emergency.status, not_emergency.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("change_id"))
    );
    let linked = call(carol(&tenant), "POST", format!("/findings/{id}/link"), link(emergency.id.to_string())).await;
    ok(&linked);
    assert_eq!(linked.body["status"], "resolved");
    assert_eq!(linked.body["linked_change"], json!(emergency.id.to_string()));
    let closed =
        call(carol(&tenant), "POST", format!("/findings/{id}/dismiss"), Some(json!({"version": 3, "reason": "x"})))
            .await;
    assert_eq!((closed.status, closed.body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("finding_closed")));
}

#[tokio::test]
async fn findings_over_http_on_the_embedded_store() {
    let (store, _dir) = embedded().await;
    findings_over_http(store).await;
}

#[tokio::test]
async fn findings_over_http_on_dynamodb() {
    findings_over_http(aws::dynamo_store().await).await;
}

/// A piece of evidence for a change that holds as many as it keeps.
fn one_more(tenant: &str, change: changehub::domain::ChangeId) -> ChangeEvidence {
    ChangeEvidence {
        tenant: changehub::domain::TenantId::parse(tenant).expect("tenant"),
        change_id: change,
        event_id: "one-too-many".into(),
        evidence: Evidence::ApiCall,
        account: "123456789012".into(),
        region: "us-east-1".into(),
        at: t0(),
        service: None,
        resources: vec![],
        what: "ec2:AuthorizeSecurityGroupIngress".into(),
        actor: None,
        authorized_by: AuthorizedBy::Implementation,
        recorded_at: t0(),
    }
}

/// A change keeps at most MAX_CHANGE_EVIDENCE pieces: the next is not stored (one write, whatever it holds).
#[tokio::test]
async fn a_change_full_of_evidence_stores_no_more_on_the_embedded_store() {
    let (store, _dir) = embedded().await;
    let (tenant, change) = ("acme", changehub::domain::ChangeId::new());
    let t = changehub::domain::TenantId::parse(tenant).expect("tenant");
    let pk = changehub::adapters::keys::change_evidence_pk(&t, &change);
    let count = changehub::adapters::keys::CHANGE_EVIDENCE_COUNT.to_owned();
    store.put_raw(pk, count, json!(MAX_CHANGE_EVIDENCE)).await.expect("count");
    assert_eq!(store.record_evidence(&one_more(tenant, change)).await.expect("record"), Recorded::Full);
    assert!(store.change_evidence(&t, &change, 10, None).await.expect("read").items.is_empty());
}

#[tokio::test]
async fn a_change_full_of_evidence_stores_no_more_on_dynamodb() {
    let store = aws::dynamo_store().await;
    let (tenant, change) = ("acme", changehub::domain::ChangeId::new());
    let t = changehub::domain::TenantId::parse(tenant).expect("tenant");
    let pk = changehub::adapters::keys::change_evidence_pk(&t, &change);
    let mut full = one_more(tenant, change);
    full.event_id = "first".into();
    assert_eq!(store.record_evidence(&full).await.expect("record"), Recorded::New);
    store
        .client()
        .update_item()
        .table_name(store.table_name())
        .key("PK", AttributeValue::S(pk))
        .key("SK", AttributeValue::S(changehub::adapters::keys::CHANGE_EVIDENCE_COUNT.into()))
        .update_expression("SET n = :max")
        .expression_attribute_values(":max", AttributeValue::N(MAX_CHANGE_EVIDENCE.to_string()))
        .send()
        .await
        .expect("count");
    assert_eq!(store.record_evidence(&one_more(tenant, change)).await.expect("record"), Recorded::Full);
    assert_eq!(store.record_evidence(&full).await.expect("again"), Recorded::Duplicate);
    assert_eq!(store.change_evidence(&t, &change, 10, None).await.expect("read").items.len(), 1);
}

/// The consumer's own time for one unauthorized observation (catalog cached,
/// claim, candidates, finding, notification): the handler's part of the
/// AWS path's latency, printed for ARCHITECTURE.md ("Latency").
async fn judging_time<S: DriftHubStore>(store: S, name: &str) -> std::time::Duration {
    let h = hub(store).await;
    let mut took = Vec::new();
    for i in 0..21 {
        let at = t0() + chrono::Duration::hours(i);
        let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, &format!("timed-{i}"), at);
        let start = std::time::Instant::now();
        h.drift.handle(&dt, &d).await.expect("judged");
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "drift: one unauthorized change judged, recorded and told on {name}: p50 {:?}, max {:?}",
        took[10], took[20]
    );
    took[10]
}

#[tokio::test]
async fn judging_takes_milliseconds_on_both_stores() {
    let (store, _dir) = embedded().await;
    let embedded = judging_time(store, "the embedded store").await;
    assert!(embedded < std::time::Duration::from_secs(1), "{embedded:?}");
    // The emulator's figure is the emulator's (a Python server per call): printed, not held.
    judging_time(aws::dynamo_store().await, "DynamoDB (moto)").await;
}

/// With the hub's public address known, an unauthorized change's
/// technical texts link the finding's page under it.
#[tokio::test]
async fn unauthorized_change_texts_link_the_finding_under_the_public_url() {
    let (store, _dir) = embedded().await;
    let h = hub(store).await;
    let drift = changehub::app::drift::Drift::new(
        h.app.store.clone(),
        h.app.catalog.clone(),
        changehub::ports::FixedClock::new(t0()),
        h.told.clone(),
    )
    .with_public_url(Some("https://changes.example.com".into()));
    let (dt, d) = evidence(TRAIL_BREAK_GLASS, &h.tenant, "e1", t0());
    let judged = drift.handle(&dt, &d).await.expect("judged");
    let changehub::app::drift::Judged::Unauthorized { finding, .. } = judged else { panic!("{judged:?}") };
    let url = format!("https://changes.example.com/findings/{}", finding.id);
    let told = h.told.all();
    assert_eq!(told.len(), 3, "{told:?}");
    // The technical copies (the feed's, the owners'); the cab's is its catalog template's own text.
    let technical: Vec<_> = told
        .iter()
        .filter(|n| matches!(n.attributes.get("audience").map(String::as_str), Some("feed" | "owners")))
        .collect();
    assert_eq!(technical.len(), 2);
    for n in technical {
        assert!(n.message.links.iter().any(|l| l.url == url), "{:?}", n.message);
    }
    assert!(h.drift.public_url.is_none(), "without an address, no link");
}
