//! The scenario's part on major incidents.

use super::*;

/// A major incident on payments: while it is open, only its commander may
/// schedule a critical change there, with a reason.
pub(super) async fn incident_scenario(api: &Api) {
    let list = key(&Method::GET, "/incidents");
    let declare = key(&Method::POST, "/incidents");
    let resolve = key(&Method::POST, "/incidents/{id}/resolve");
    let (alice, pat, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let incident = json!({"id": "PD-Q2ZX9K", "title": "Card payments failing", "services": ["payments"],
                          "commander": CAROL.user});

    let one = key(&Method::GET, "/incidents/{id}");
    let a = api.call(&list, Req::get("/incidents").bearer(&alice)).await;
    a.expect("no incidents", StatusCode::OK, None);
    assert_eq!(a.body, json!({"incidents": [], "next_cursor": null}));
    api.call(&declare, Req::post_json("/incidents", &incident).bearer(&alice))
        .await
        .expect_forbidden("a requester declaring an incident", "needs the admin or cab or approver role");
    let what = "an incident without services";
    api.call(&declare, Req::post_json("/incidents", &merged(&incident, json!({"services": []}))).bearer(&pat))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "services");
    let declared = api.call(&declare, Req::post_json("/incidents", &incident).bearer(&pat)).await;
    declared.expect("declare an incident", StatusCode::CREATED, None);
    assert_eq!(declared.body["declared_by"], json!(PAT.user));
    // The declaration is an incident record of source `hub`, major, found by its declared id.
    let a = api.call(&list, Req::get("/incidents?source=hub&external_id=PD-Q2ZX9K&major=true").bearer(&alice)).await;
    a.expect("the open incident", StatusCode::OK, None);
    let record = &a.body["incidents"][0];
    assert_eq!((&record["status"], &record["major"]), (&json!("triggered"), &json!(true)), "{}", a.body);
    assert_eq!(record["declared"]["commander"], json!(CAROL.user));
    let uri = format!("/incidents/{}", record["id"].as_str().unwrap_or_default());
    let got = api.call(&one, Req::get(uri).bearer(&alice)).await;
    got.expect("one incident record", StatusCode::OK, None);
    assert_eq!(&got.body, record);
    api.call(&one, Req::get("/incidents/inc_00000000000000000000000000000000").bearer(&alice)).await.expect(
        "an unknown record",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let what = "an unknown filter";
    api.call(&list, Req::get("/incidents?severity=high").bearer(&alice))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "severity");
    // Declaring the same id again would take it over (its commander): refused.
    let what = "declaring an open incident's id again";
    api.call(
        &declare,
        Req::post_json("/incidents", &merged(&incident, json!({"commander": SAM.user}))).bearer(&api.token(&SAM)),
    )
    .await
    .expect(what, StatusCode::CONFLICT, Some("incident_exists"))
    .expect_field(what, "id")
    .expect_message(what, "commander carol@example.com");

    // A critical emergency change on payments, approved by the cab.
    let critical = merged(
        &new_change(&["payments"], "2030-12-05T10:00:00Z", "2030-12-05T11:00:00Z"),
        json!({"type": "emergency", "complexity": "high", "impact": {"data": "destructive", "availability": "outage"}}),
    );
    let id = api.open(&alice, &critical).await.id();
    let submitted = api.move_to(&alice, &id, "submitted", 1).await;
    assert_eq!(submitted.body["risk"]["level"], json!("critical"), "{}", submitted.brief());
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let uri = format!("/changes/{id}/decisions");
    let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
    a.expect("the cab approving an emergency", StatusCode::OK, None);
    let schedule = json!({"to": "scheduled", "version": 3});
    for (what, token) in [("the requester scheduling", &alice), ("the commander without a reason", &carol)] {
        api.transition(token, &id, &schedule)
            .await
            .expect(what, StatusCode::CONFLICT, Some("major_incident"))
            .expect_field(what, "override_reason")
            .expect_message(what, "PD-Q2ZX9K");
    }
    let authorized = merged(&schedule, json!({"override_reason": "the fix for the incident itself"}));
    let scheduled = api.transition(&carol, &id, &authorized).await;
    scheduled.expect("the commander scheduling with a reason", StatusCode::OK, None);
    assert_eq!(scheduled.body["state"], json!("scheduled"));

    let uri = "/incidents/PD-Q2ZX9K/resolve";
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&alice)).await.expect_forbidden(
        "a requester resolving an incident",
        "needs its commander (carol@example.com) or the cab or admin role",
    );
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&pat))
        .await
        .expect_forbidden("an approver resolving another's incident", "needs its commander (carol@example.com)");
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&carol)).await.expect(
        "the commander resolves the incident",
        StatusCode::NO_CONTENT,
        None,
    );
    api.call(&resolve, Req::new(Method::POST, uri).bearer(&carol)).await.expect(
        "resolve it again",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let a = api.call(&list, Req::get("/incidents?status=resolved").bearer(&alice)).await;
    a.expect("the resolved incident", StatusCode::OK, None);
    let record = &a.body["incidents"][0];
    assert_eq!((&record["external_id"], &record["source"]), (&json!("PD-Q2ZX9K"), &json!("hub")), "{}", a.body);
    assert!(record["time_to_restore_seconds"].is_i64(), "{}", a.body);
}

/// An incident on payments tagged with the change that ran there just
/// before: the change lists it; a cab member removes the wrong tag with a
/// reason (a requester may not, a reason is required); both records drop
/// it, and correlating the incident again does not bring it back.
pub(super) async fn unrelate_scenario(api: &Api) {
    use changehub::app::catalog::{CachedCatalog, DEFAULT_CACHE_TTL};
    use changehub::app::tagging::Tagging;
    use changehub_tests::correlate_contract::{Ran, m, record};
    use changehub_tests::tagging_contract::pagerduty;

    let store = api._hub.as_ref().map(|h| h.store.clone()).expect("the local hub");
    let tenant = changehub::domain::TenantId::parse(CAROL.tenant).expect("tenant");
    let t = changehub_tests::t0();
    let change = record(&store, &tenant, Ran::on(&["payments"], t - m(50)).done(t - m(40))).await;
    let tagging = Tagging::new(
        store.clone(),
        CachedCatalog::new(store.clone(), DEFAULT_CACHE_TTL),
        changehub::ports::FixedClock::new(t),
    );
    let detail = pagerduty(&tenant, "payments");
    tagging.handle("Incident Triggered", &detail).await.expect("tagged");
    let incident_id =
        changehub::domain::incident::IncidentId::of(&tenant, changehub::domain::incident::Source::Pagerduty, "Q1AB2C3");

    let (alice, carol) = (api.token(&ALICE), api.token(&CAROL));
    let get = key(&Method::GET, "/changes/{id}");
    let got = api.call(&get, Req::get(format!("/changes/{}", change.id)).bearer(&alice)).await;
    got.expect("the tagged change", StatusCode::OK, None);
    assert_eq!(got.body["related_incidents"][0]["incident_id"], json!(incident_id.as_str()), "{}", got.body);
    assert_eq!(got.body["related_incidents"][0]["reasons"], json!(["same_service", "time_proximity"]));

    let unrelate = key(&Method::POST, "/incidents/{id}/unrelate");
    let uri = format!("/incidents/{incident_id}/unrelate");
    let body = json!({"change_id": change.id, "reason": "the change only touched the docs"});
    api.call(&unrelate, Req::post_json(uri.clone(), &body).bearer(&alice))
        .await
        .expect_forbidden("a requester removing a tag", "needs the cab or admin role");
    let what = "a removal without a reason";
    api.call(&unrelate, Req::post_json(uri.clone(), &json!({"change_id": change.id, "reason": " "})).bearer(&carol))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "reason");
    let removed = api.call(&unrelate, Req::post_json(uri.clone(), &body).bearer(&carol)).await;
    removed.expect("the cab removing the tag", StatusCode::OK, None);
    assert_eq!((&removed.body["change_related"], &removed.body["related_changes"]), (&json!(false), &json!([])));
    assert_eq!(removed.body["removed_changes"][0]["removed_by"], json!(CAROL.user), "{}", removed.body);
    let got = api.call(&get, Req::get(format!("/changes/{}", change.id)).bearer(&alice)).await;
    assert!(got.body.get("related_incidents").is_none(), "{}", got.body);

    tagging.handle("Incident Triggered", &detail).await.expect("correlated again");
    let one = key(&Method::GET, "/incidents/{id}");
    let again = api.call(&one, Req::get(format!("/incidents/{incident_id}")).bearer(&alice)).await;
    assert_eq!(again.body["related_changes"], json!([]), "a removed tag stays removed: {}", again.body);
    let what = "a change the incident never related";
    let other = json!({"change_id": changehub::domain::ChangeId::new(), "reason": "x"});
    api.call(&unrelate, Req::post_json(uri, &other).bearer(&carol)).await.expect(
        what,
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
}
