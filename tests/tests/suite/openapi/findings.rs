//! The scenario's part on findings: two unauthorized security-group changes
//! judged on the hub's store (as the drift consumer does), then `/findings`
//! read, acknowledged, linked to an emergency change and dismissed.

use super::*;
use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
use changehub::app::drift::{Drift, Judged};
use changehub_tests::drift_contract::{TRAIL_BREAK_GLASS, Told, evidence};

pub(super) async fn finding_scenario(api: &Api) {
    let list = key(&Method::GET, "/findings");
    let get = key(&Method::GET, "/findings/{id}");
    let acknowledge = key(&Method::POST, "/findings/{id}/acknowledge");
    let link = key(&Method::POST, "/findings/{id}/link");
    let dismiss = key(&Method::POST, "/findings/{id}/dismiss");
    let hub = api._hub.as_ref().expect("the local hub");
    let store = hub.store.clone();
    let drift = Drift::new(store.clone(), CachedCatalog::new(store, DEFAULT_CACHE_TTL), SystemClock, Told::default());
    // Two sessions' changes, a day apart: two findings.
    let mut ids = Vec::new();
    for (i, days) in [(0, 3), (1, 2)] {
        let at = chrono::Utc::now() - chrono::Duration::days(days);
        let (detail_type, detail) = evidence(TRAIL_BREAK_GLASS, ALICE.tenant, &format!("openapi-finding-{i}"), at);
        match drift.handle(&detail_type, &detail).await.expect("judged") {
            Judged::Unauthorized { finding, .. } => ids.push(finding.id.to_string()),
            other => panic!("expected a finding, got {other:?}"),
        }
    }
    let (alice, carol) = (api.token(&ALICE), api.token(&CAROL));
    let a = api.call(&list, Req::get("/findings?status=open&kind=unauthorized_change&limit=10").bearer(&alice)).await;
    a.expect("the open findings", StatusCode::OK, None);
    for (query, field) in [("status=gone", "status"), ("kind=drift", "kind"), ("colour=red", "colour")] {
        let what = format!("findings ?{query}");
        api.call(&list, Req::get(format!("/findings?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&list, Req::get("/findings").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("a token without a role", "reading findings");
    let a = api.call(&get, Req::get(format!("/findings/{}", ids[0])).bearer(&alice)).await;
    a.expect("a finding", StatusCode::OK, None);
    assert_eq!(a.body["actor"]["name"], json!("maria.rossi@acme.example"), "{}", a.brief());
    api.call(&get, Req::get("/findings/fnd_20000101T0000_0123456789abcdef").bearer(&alice)).await.expect(
        "an unknown finding",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&get, Req::get("/findings/nope").bearer(&alice))
        .await
        .expect("a malformed finding id", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a malformed finding id", "id");

    let ack = json!({"version": 1, "note": "on it"});
    api.call(&acknowledge, Req::post_json(format!("/findings/{}/acknowledge", ids[0]), &ack).bearer(&alice))
        .await
        .expect_forbidden("a requester acknowledging", "acknowledging a finding");
    let a =
        api.call(&acknowledge, Req::post_json(format!("/findings/{}/acknowledge", ids[0]), &ack).bearer(&carol)).await;
    a.expect("the cab acknowledges it", StatusCode::OK, None);
    api.call(&acknowledge, Req::post_json(format!("/findings/{}/acknowledge", ids[0]), &ack).bearer(&carol))
        .await
        .expect("a stale version", StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field("a stale version", "version");

    let emergency = merged(
        &new_change(&["payments"], "2031-01-07T22:00:00Z", "2031-01-07T23:00:00Z"),
        json!({"type": "emergency", "title": "Open SSH for debugging"}),
    );
    let change = api.open(&alice, &emergency).await;
    let change_id = change.body["id"].as_str().expect("change id").to_owned();
    let evidence = key(&Method::GET, "/changes/{id}/evidence");
    let a = api.call(&evidence, Req::get(format!("/changes/{change_id}/evidence?limit=5")).bearer(&alice)).await;
    a.expect("a change's evidence", StatusCode::OK, None);
    assert_eq!(a.body["evidence"], json!([]), "{}", a.brief());
    api.call(&evidence, Req::get(format!("/changes/{change_id}/evidence?cursor=FND%23x")).bearer(&alice)).await.expect(
        "a cursor of another listing",
        StatusCode::BAD_REQUEST,
        Some("invalid_request"),
    );
    api.call(&evidence, Req::get(format!("/changes/{}/evidence", uuid::Uuid::now_v7())).bearer(&alice)).await.expect(
        "an unknown change's evidence",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let body = json!({"version": 2, "change_id": change_id});
    let a = api.call(&link, Req::post_json(format!("/findings/{}/link", ids[0]), &body).bearer(&carol)).await;
    a.expect("the cab links an emergency change", StatusCode::OK, None);
    assert_eq!(a.body["status"], json!("resolved"), "{}", a.brief());
    api.call(
        &link,
        Req::post_json(format!("/findings/{}/link", ids[0]), &json!({"version": 3, "change_id": change_id}))
            .bearer(&carol),
    )
    .await
    .expect("linking a resolved finding", StatusCode::CONFLICT, Some("finding_closed"));

    let no_reason = json!({"version": 1, "reason": ""});
    api.call(&dismiss, Req::post_json(format!("/findings/{}/dismiss", ids[1]), &no_reason).bearer(&carol))
        .await
        .expect("a dismissal without a reason", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a dismissal without a reason", "reason");
    let body = json!({"version": 1, "reason": "a sandbox account's test group"});
    let a = api.call(&dismiss, Req::post_json(format!("/findings/{}/dismiss", ids[1]), &body).bearer(&carol)).await;
    a.expect("the cab dismisses it", StatusCode::OK, None);
    assert_eq!(a.body["status"], json!("false_positive"), "{}", a.brief());

    suppression_scenario(api).await;
}

/// `/suppressions`: the cab declares a bulk-change window, anyone reads it,
/// the cab lifts it with a reason.
async fn suppression_scenario(api: &Api) {
    let list = key(&Method::GET, "/suppressions");
    let declare = key(&Method::POST, "/suppressions");
    let lift = key(&Method::DELETE, "/suppressions/{id}");
    let (alice, carol) = (api.token(&ALICE), api.token(&CAROL));
    let window = json!({
        "id": "sg-cleanup-2026-09", "services": ["payments"], "start": "2026-09-20T22:00:00Z",
        "end": "2026-09-21T02:00:00Z", "reason": "security-group clean-up (CHG-1042)",
        "principals": ["arn:aws:iam::123456789012:role/netops-*"],
    });
    api.call(&declare, Req::post_json("/suppressions", &window).bearer(&alice))
        .await
        .expect_forbidden("a requester declaring a window", "declaring a suppression window");
    let mut bad = window.clone();
    bad["end"] = json!("2026-09-20T21:00:00Z");
    api.call(&declare, Req::post_json("/suppressions", &bad).bearer(&carol))
        .await
        .expect("a window ending before it starts", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a window ending before it starts", "end");
    let mut unknown = window.clone();
    unknown["services"] = json!(["nope"]);
    api.call(&declare, Req::post_json("/suppressions", &unknown).bearer(&carol))
        .await
        .expect("a service the catalog lacks", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a service the catalog lacks", "services[0]");
    let a = api.call(&declare, Req::post_json("/suppressions", &window).bearer(&carol)).await;
    a.expect("the cab declares a window", StatusCode::CREATED, None);
    let a = api.call(&list, Req::get("/suppressions").bearer(&alice)).await;
    a.expect("the windows", StatusCode::OK, None);
    assert_eq!(a.body["log"][0]["by"], json!(CAROL.user), "{}", a.brief());
    api.call(&lift, Req::new(Method::DELETE, "/suppressions/none?reason=x").bearer(&carol)).await.expect(
        "an unknown window",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let a =
        api.call(&lift, Req::new(Method::DELETE, "/suppressions/sg-cleanup-2026-09?reason=done").bearer(&carol)).await;
    a.expect("the cab lifts it", StatusCode::NO_CONTENT, None);
}
