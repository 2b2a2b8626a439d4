//! The scenario's part on `POST /events`: AWS samples as EventBridge delivers them.

use super::*;

/// The part of the scenario on `POST /events`: AWS samples as EventBridge
/// delivers them, for the tenant of the bearer token (any valid token).
pub(super) async fn events_scenario(api: &Api) {
    let events = key(&Method::POST, "/events");
    let default_token = api.token(&DEFAULT_REPLAY);
    let post =
        |body: &Value| Req::new(Method::POST, "/events").body(body.to_string().into_bytes()).bearer(&default_token);
    let acme_token = api.token(&REPLAY);
    let acme = |r: Req| r.bearer(&acme_token);

    // A real sample, byte for byte, without a content type: published once
    // per tenant.
    let alarm_bytes = sample("aws/cloudwatch.alarm_state_change.json");
    let alarm = Req::new(Method::POST, "/events").body(alarm_bytes.clone());
    api.call(&events, acme(alarm)).await.expect_published("the alarm sample", "aws");
    let again = api.call(&events, acme(Req::new(Method::POST, "/events").body(alarm_bytes.clone()))).await;
    again.expect("the alarm sample again", StatusCode::OK, None);
    assert_eq!(again.body, json!({"duplicate": true}), "the alarm sample again");
    api.call(&events, Req::new(Method::POST, "/events").body(alarm_bytes).bearer(&default_token))
        .await
        .expect_published("the alarm sample for the default tenant", "aws");
    let stack = Req::new(Method::POST, "/events")
        .raw("text/plain", sample("aws/cloudformation.stack_status_change.json"))
        .bearer(&default_token);
    api.call(&events, stack).await.expect_published("a sample sent as text/plain", "aws");

    // Events the hub does not use.
    let pipeline = json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "source": "aws.codepipeline",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "time": "2030-12-01T22:05:00Z",
        "detail": {"pipeline": "payments", "state": "STARTED"},
    });
    let a = api.call(&events, post(&pipeline)).await;
    a.expect("a CodePipeline event", StatusCode::OK, None);
    assert_eq!(a.body, json!({"ignored": "aws.codepipeline CodePipeline Pipeline Execution State Change"}));
    let mut read_only = sample_json("aws/cloudtrail.iam_put_role_policy.json");
    read_only["id"] = json!("read-only-call");
    read_only["detail"]["eventName"] = json!("GetRolePolicy");
    read_only["detail"]["readOnly"] = json!(true);
    let a = api.call(&events, post(&read_only)).await;
    a.expect("a read-only CloudTrail call", StatusCode::OK, None);
    assert_eq!(a.body, json!({"ignored": "read-only API call"}));

    // Envelopes the hub cannot read.
    api.call(&events, Req::new(Method::POST, "/events").body(b"{not json".to_vec()).bearer(&default_token))
        .await
        .expect("an event that is not JSON", StatusCode::BAD_REQUEST, Some("malformed_json"));
    let alarm = sample_json("aws/cloudwatch.alarm_state_change.json");
    let config = sample_json("aws/config.configuration_item_change.json");
    for (what, body, field) in [
        ("an array", json!([alarm.clone()]), "body"),
        ("no id", remove_at(&alarm, "/id"), "id"),
        ("a blank id", set_at(&alarm, "/id", json!("  ")), "id"),
        ("an alarm at no time", set_at(&alarm, "/time", json!("yesterday")), "time"),
        ("an alarm with a text detail", set_at(&alarm, "/detail", json!("a string")), "detail"),
        ("an alarm without a name", remove_at(&alarm, "/detail/alarmName"), "detail.alarmName"),
        (
            "a configuration change without an item",
            remove_at(&config, "/detail/configurationItem"),
            "detail.configurationItem",
        ),
    ] {
        let what = format!("an event with {what}");
        api.call(&events, post(&body))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&events, post(&pipeline).without("authorization"))
        .await
        .expect_unauthenticated("an event without a token", "needs a bearer token");
    let oversized = vec![b' '; MAX_WEBHOOK_BYTES + 1];
    api.call(&events, Req::new(Method::POST, "/events").body(oversized).bearer(&default_token)).await.expect(
        "an event over 25 MiB",
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
    );
}
