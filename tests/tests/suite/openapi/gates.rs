//! The scenario's part on the deployment gate (`POST /gates/deployments`).

use super::*;

/// A pipeline (the ingest role) and a person ask; the answers validate, bad
/// requests name the field, a token without a role is refused, and the
/// activity log lists the answers with the documented shape.
pub(super) async fn gate_scenario(api: &Api) {
    let gate = key(&Method::POST, "/gates/deployments");
    let (alice, pipeline) = (api.token(&ALICE), api.token(&REPLAY));
    let body = json!({"service": "payments", "environment": "staging", "version": "1.4.2", "sha": "3f2a9c1d0b7e"});
    let a = api.call(&gate, Req::post_json("/gates/deployments", &body).bearer(&alice)).await;
    a.expect("a deployment to staging", StatusCode::OK, None);
    assert_eq!((&a.body["allowed"], &a.body["code"]), (&json!(true), &json!("recorded")), "{}", a.brief());
    let production = set_at(&body, "/environment", json!("production"));
    let a = api.call(&gate, Req::post_json("/gates/deployments?wait=1s", &production).bearer(&pipeline)).await;
    a.expect("a promotion to production", StatusCode::OK, None);
    assert_eq!(a.body["gated"], json!(true), "{}", a.brief());
    for (what, body, field) in [
        ("a gate without a version or sha", remove_at(&remove_at(&body, "/version"), "/sha"), "version"),
        ("a gate for an unknown service", set_at(&body, "/service", json!("paymnets")), "service"),
    ] {
        api.call(&gate, Req::post_json("/gates/deployments", &body).bearer(&pipeline))
            .await
            .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(what, field);
    }
    let what = "a gate with a wait that is not a duration";
    api.call(&gate, Req::post_json("/gates/deployments?wait=soon", &body).bearer(&pipeline))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "wait");
    api.call(&gate, Req::post_json("/gates/deployments", &body).bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("a token without a role asking the gate", "asking the deployment gate");
    let list = key(&Method::GET, "/activity");
    let a = api.call(&list, Req::get("/activity?service=payments").bearer(&alice)).await;
    a.expect("the activity log with the gate's answers", StatusCode::OK, None);
    let rows = a.body["activity"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().any(|r| r["decision"]["asked_by"] == json!(REPLAY.user)), "{}", a.brief());
}
