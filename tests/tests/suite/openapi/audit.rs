//! The scenario's part on `/audit`: the governance trail and security events.

use super::*;

/// Run last: by now the scenario has imported the catalog, declared and
/// lifted freezes, declared and resolved incidents (all on the governance
/// trail), and been refused writes (each a security event).
pub(super) async fn audit_scenario(api: &Api) {
    let trail = key(&Method::GET, "/audit/governance");
    let security = key(&Method::GET, "/audit/security");
    let (ava, carol, alice, pat) = (api.token(&AVA), api.token(&CAROL), api.token(&ALICE), api.token(&PAT));

    let a = api.call(&trail, Req::get("/audit/governance").bearer(&ava)).await;
    a.expect("the governance trail", StatusCode::OK, None);
    let entries = a.body["entries"].as_array().cloned().unwrap_or_default();
    let first = entries.first().cloned().unwrap_or_default();
    assert_eq!(
        (&first["action"], &first["actor"], &first["seq"]),
        (&json!("catalog_imported"), &json!(ROOT.user), &json!(1))
    );
    let actions: BTreeSet<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["catalog_imported", "freeze_declared", "freeze_lifted", "incident_declared", "incident_resolved"] {
        assert!(actions.contains(action), "{action} is on the trail: {actions:?}");
    }
    let lifted = entries.iter().find(|e| e["action"] == json!("freeze_lifted")).cloned().unwrap_or_default();
    assert_eq!(lifted["reason"], json!("cut-over done"));
    let page = api.call(&trail, Req::get("/audit/governance?limit=1").bearer(&carol)).await;
    page.expect("the trail, a page, as the cab", StatusCode::OK, None);
    let cursor = percent_encode(page.body["next_cursor"].as_str().expect("a next page"));
    let next = api.call(&trail, Req::get(format!("/audit/governance?limit=1&cursor={cursor}")).bearer(&carol)).await;
    next.expect("the trail's second page", StatusCode::OK, None);
    assert_eq!(next.body["entries"][0]["seq"], json!(2));
    api.call(&trail, Req::get("/audit/governance").bearer(&alice))
        .await
        .expect_forbidden("a requester reading the trail", "reading the governance trail needs");
    let what = "a trail cursor of another kind";
    api.call(&trail, Req::get("/audit/governance?cursor=CHG%23x").bearer(&ava))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "cursor");

    let a = api.call(&security, Req::get("/audit/security?limit=100").bearer(&ava)).await;
    a.expect("security events", StatusCode::OK, None);
    let events = a.body["events"].as_array().cloned().unwrap_or_default();
    let refused = |user: &str, action: &str| {
        events.iter().any(|e| {
            e["user"] == json!(user)
                && e["action"] == json!(action)
                && e["reason"].as_str().is_some_and(|r| !r.is_empty())
        })
    };
    assert!(refused(ALICE.user, "POST /freezes"), "a requester declaring a freeze: {events:?}");
    assert!(refused(ALICE.user, "DELETE /freezes/{id}"), "a requester lifting a freeze: {events:?}");
    assert!(refused(CAROL.user, "POST /changes/{id}/decisions"), "the cab deciding level 1: {events:?}");
    for (who, says) in [(&pat, "reading security events needs"), (&carol, "reading security events needs")] {
        api.call(&security, Req::get("/audit/security").bearer(who))
            .await
            .expect_forbidden("reading security events", says);
    }
    let what = "until before since";
    api.call(&security, Req::get("/audit/security?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z").bearer(&ava))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "until");
}
