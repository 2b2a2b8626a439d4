//! The scenario's part on delegations (out-of-office).

use super::*;

/// An approver delegates a level, a bad period and someone without a
/// deciding role are refused; listed, revoked, and revoked again.
pub(super) async fn delegation_scenario(api: &Api) {
    let list = key(&Method::GET, "/delegations");
    let create = key(&Method::POST, "/delegations");
    let revoke = key(&Method::DELETE, "/delegations/{id}");
    let (alice, pat, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let now = chrono::Utc::now();
    let body = json!({"delegate": CAROL.user, "levels": ["team-lead"], "from": now,
                      "until": now + chrono::Duration::days(7), "reason": "on leave"});
    api.call(&create, Req::post_json("/delegations", &body).bearer(&alice))
        .await
        .expect_forbidden("a requester delegating", "delegating approval levels needs");
    let what = "a delegation ending before it starts";
    let backwards = set_at(&body, "/until", json!(now - chrono::Duration::days(1)));
    api.call(&create, Req::post_json("/delegations", &backwards).bearer(&pat))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "until");
    let a = api.call(&create, Req::post_json("/delegations", &body).bearer(&pat)).await;
    a.expect("a delegation", StatusCode::CREATED, None);
    assert_eq!((&a.body["delegator"], &a.body["groups"]), (&json!(PAT.user), &json!(["payments-leads"])));
    let id = a.body["id"].as_str().unwrap_or_default().to_owned();
    let a = api.call(&list, Req::get("/delegations").bearer(&carol)).await;
    a.expect("the delegations", StatusCode::OK, None);
    assert_eq!(a.body["delegations"][0]["active"], json!(true), "{}", a.brief());
    let uri = format!("/delegations/{id}");
    api.call(&revoke, Req::new(Method::DELETE, &uri).bearer(&alice))
        .await
        .expect_forbidden("someone else revoking", "needs its delegator");
    let a = api.call(&revoke, Req::new(Method::DELETE, format!("{uri}?reason=back%20early")).bearer(&pat)).await;
    a.expect("revoke", StatusCode::OK, None);
    assert_eq!((&a.body["revoked"]["by"], &a.body["revoked"]["reason"]), (&json!(PAT.user), &json!("back early")));
    api.call(&revoke, Req::new(Method::DELETE, &uri).bearer(&pat)).await.expect(
        "revoke again",
        StatusCode::CONFLICT,
        Some("delegation_revoked"),
    );
    api.call(&revoke, Req::new(Method::DELETE, "/delegations/dlg-nope").bearer(&pat)).await.expect(
        "an unknown delegation",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
}
