//! The scenario's part on tokens: 401s and 403s as documented.

use super::*;

/// Tokens: every way of not authenticating is a 401 with `WWW-Authenticate:
/// Bearer` and a message saying what is wrong; a valid token whose groups
/// grant no role is a 403 naming the role needed. (Before the catalog is
/// imported, only `changehub-admins` members hold a role.)
pub(super) async fn authentication_scenario(api: &Api) {
    let me = key(&Method::GET, "/me");
    let create = key(&Method::POST, "/changes");
    let events = key(&Method::POST, "/events");
    let now = chrono::Utc::now();
    let forged = mint(&LocalKey::from_secret(vec![7; 32]), &ALICE, now);
    let expired = mint(&api.key, &ALICE, now - chrono::Duration::hours(2));
    let body = new_change(&["payments"], "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z");
    let alarm = || Req::new(Method::POST, "/events").body(sample("aws/cloudwatch.alarm_state_change.json"));
    for (what, op, req, says) in [
        ("no Authorization header", &me, Req::get("/me"), "needs a bearer token"),
        ("a Basic credential", &me, Req::get("/me").header("authorization", "Basic YWxpY2U6cw=="), "`Bearer <token>`"),
        ("a bearer that is not a JWT", &me, Req::get("/me").bearer("not-a-jwt"), "the token is not a JWT"),
        ("a token signed with another key", &me, Req::get("/me").bearer(&forged), "signature does not verify"),
        ("an expired token", &me, Req::get("/me").bearer(&expired), "expired"),
        ("no token on a write", &create, Req::post_json("/changes", &body), "needs a bearer token"),
        ("no token on an event", &events, alarm(), "needs a bearer token"),
        ("an expired token on an event", &events, alarm().bearer(&expired), "expired"),
    ] {
        api.call(op, req).await.expect_unauthenticated(what, says);
    }

    for (who, roles) in [(&ALICE, json!([])), (&ROOT, json!(["admin"]))] {
        let a = api.call(&me, Req::get("/me").bearer(&api.token(who))).await;
        a.expect(who.user, StatusCode::OK, None);
        let expected = json!({"user": who.user, "tenant": who.tenant, "groups": who.groups, "roles": roles});
        assert_eq!(a.body, expected, "GET /me as {} before the catalog", who.user);
    }
    api.call(&create, Req::post_json("/changes", &body).bearer(&api.token(&ALICE)))
        .await
        .expect_forbidden("opening a change without a role", "needs the requester or cab or admin role")
        .expect_message("opening a change without a role", "your groups (engineers) grant no role");
    // Any valid token is not enough for /events: it needs the admin or ingest role.
    api.call(&events, alarm().bearer(&api.token(&ALICE))).await.expect_forbidden(
        "an AWS event without the admin or ingest role",
        "sending AWS events needs the admin or ingest role",
    );
    let replay = api.call(&me, Req::get("/me").bearer(&api.token(&REPLAY))).await;
    assert_eq!(replay.body["roles"], json!(["ingest"]), "changehub replay's token grants the ingest role only");
    api.call(&key(&Method::GET, "/changes"), Req::get("/changes?service=payments").bearer(&api.token(&REPLAY)))
        .await
        .expect_forbidden(
            "listing changes with an ingest token",
            "needs the requester or approver or cab or admin or auditor role",
        );
}
