//! The scenario's part on problems: incidents recorded on the hub's store
//! (as the incident consumer does), then `/problems` read, fixed and closed.

use super::*;
use changehub::domain::ServiceName;
use changehub::domain::problem::IncidentSeen;

/// Three change-related incidents on search (a service the scenario's
/// webhook incidents, which the hub's consumer records too, are not on)
/// open a problem; its owners or the cab link a fix and close it.
pub(super) async fn problem_scenario(api: &Api) {
    let list = key(&Method::GET, "/problems");
    let get = key(&Method::GET, "/problems/{id}");
    let fix = key(&Method::POST, "/problems/{id}/fix");
    let close = key(&Method::POST, "/problems/{id}/close");
    let hub = api._hub.as_ref().expect("the local hub");
    let app = changehub::app::Changes::new(hub.store.clone(), SystemClock);
    let now = chrono::Utc::now();
    for i in 0..3 {
        let seen = IncidentSeen {
            tenant: TenantId::parse(ALICE.tenant).expect("tenant"),
            incident_id: format!("pagerduty:P{i}"),
            service: ServiceName::parse("search").expect("service"),
            fingerprint: None,
            change_related: true,
            related_changes: vec![],
            started_at: now - chrono::Duration::hours(i),
        };
        app.record_incident(&seen).await.expect("record an incident");
    }
    let (alice, carol) = (api.token(&ALICE), api.token(&CAROL));
    let a = api.call(&list, Req::get("/problems?service=search&status=open&limit=10").bearer(&alice)).await;
    a.expect("the open problems on search", StatusCode::OK, None);
    let id = a.body["problems"][0]["id"].as_str().unwrap_or_else(|| panic!("a problem: {}", a.brief())).to_owned();
    for (query, field) in [("status=solved", "status"), ("service=Not%23Ok", "service"), ("colour=red", "colour")] {
        let what = format!("problems ?{query}");
        api.call(&list, Req::get(format!("/problems?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&list, Req::get("/problems").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("a token without a role", "reading problems");
    let a = api.call(&get, Req::get(format!("/problems/{id}")).bearer(&alice)).await;
    a.expect("a problem", StatusCode::OK, None);
    assert_eq!(a.body["incident_count"], json!(3), "{}", a.brief());
    api.call(&get, Req::get(format!("/problems/{}", uuid::Uuid::now_v7())).bearer(&alice)).await.expect(
        "an unknown problem",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&get, Req::get("/problems/nope").bearer(&alice))
        .await
        .expect("a malformed problem id", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a malformed problem id", "id");

    let change = api.open(&alice, &new_change(&["payments"], "2031-01-07T22:00:00Z", "2031-01-07T23:00:00Z")).await;
    let change_id = change.body["id"].as_str().expect("change id").to_owned();
    let body = json!({"version": 1, "change_id": change_id});
    api.call(&fix, Req::post_json(format!("/problems/{id}/fix"), &body).bearer(&alice))
        .await
        .expect_forbidden("a requester linking a fix", "linking a problem's fix");
    let a = api.call(&fix, Req::post_json(format!("/problems/{id}/fix"), &body).bearer(&carol)).await;
    a.expect("the cab links the fix", StatusCode::OK, None);
    assert_eq!(a.body["status"], json!("fixed"), "{}", a.brief());
    api.call(&fix, Req::post_json(format!("/problems/{id}/fix"), &body).bearer(&carol))
        .await
        .expect("a stale version", StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field("a stale version", "version");
    let a = api
        .call(
            &close,
            Req::post_json(format!("/problems/{id}/close"), &json!({"version": 2, "reason": "fixed"})).bearer(&carol),
        )
        .await;
    a.expect("the cab closes it", StatusCode::OK, None);
    api.call(&close, Req::post_json(format!("/problems/{id}/close"), &json!({"version": 3})).bearer(&carol))
        .await
        .expect("closing it again", StatusCode::CONFLICT, Some("problem_closed"));
}
