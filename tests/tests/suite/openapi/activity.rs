//! The scenario's part on `GET /activity`, once the webhook and AWS parts
//! have had events accepted.

use super::*;

/// The activity log of tenant `acme`: a page, a filtered page and the next
/// one, refusals naming the parameter, and the roles it needs.
pub(super) async fn activity_scenario(api: &Api) {
    let list = key(&Method::GET, "/activity");
    let alice = api.token(&ALICE);
    let a = api.call(&list, Req::get("/activity").bearer(&alice)).await;
    a.expect("the activity log", StatusCode::OK, None);
    let rows = a.body["activity"].as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty(), "the scenario's deliveries are listed: {}", a.brief());

    let a = api.call(&list, Req::get("/activity?source=github&limit=1").bearer(&alice)).await;
    a.expect("a page of GitHub events", StatusCode::OK, None);
    assert_eq!(a.body["activity"][0]["source"], json!("changehub.github"), "{}", a.brief());
    let cursor = a.body["next_cursor"].as_str().unwrap_or_else(|| panic!("a next page: {}", a.brief())).to_owned();
    let next = format!("/activity?source=github&limit=1&cursor={}", percent_encode(&cursor));
    api.call(&list, Req::get(next).bearer(&alice)).await.expect("the next page", StatusCode::OK, None);
    let a =
        api.call(&list, Req::get("/activity?type=alarm-state-changed&since=2000-01-01T00:00:00Z").bearer(&alice)).await;
    a.expect("alarms since 2000", StatusCode::OK, None);
    assert_eq!(a.body["activity"][0]["detail_type"], json!("Alarm State Changed"), "{}", a.brief());

    for (query, field) in [("type=Deploy", "type"), ("source=jenkins", "source"), ("colour=red", "colour")] {
        let what = format!("activity ?{query}");
        api.call(&list, Req::get(format!("/activity?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&list, Req::get("/activity").bearer(&api.token(&REPLAY)))
        .await
        .expect_forbidden("an ingest token reading the activity log", "reading the activity log");
    api.call(&list, Req::get("/activity").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("a token without a role", "reading the activity log");
}
