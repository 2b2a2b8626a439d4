//! The scenario's part on freeze windows.

use super::*;

/// Freeze windows of each kind; a normal change planned into one is refused,
/// an emergency overrides it with a reason; lifted, it refuses nothing.
pub(super) async fn freeze_scenario(api: &Api) {
    let list = key(&Method::GET, "/freezes");
    let put = key(&Method::POST, "/freezes");
    let delete = key(&Method::DELETE, "/freezes/{id}");
    let (alice, ada, carol, pat) = (api.token(&ALICE), api.token(&ADA), api.token(&CAROL), api.token(&PAT));
    let migration = json!({
        "id": "payments-migration",
        "name": "Payments migration",
        "services": ["payments"],
        "schedule": {"kind": "one_off", "start": "2030-12-10T00:00:00Z", "end": "2030-12-11T00:00:00Z"},
        "reason": "ledger cut-over",
    });
    let a = api.call(&list, Req::get("/freezes").bearer(&alice)).await;
    a.expect("no freezes", StatusCode::OK, None);
    assert_eq!(a.body, json!({"freezes": [], "log": []}));
    api.call(&put, Req::post_json("/freezes", &migration).bearer(&alice))
        .await
        .expect_forbidden("a requester declaring a freeze", "needs the admin or cab role");
    let backwards = set_at(&migration, "/schedule/end", json!("2030-12-09T00:00:00Z"));
    let what = "a freeze ending before it starts";
    api.call(&put, Req::post_json("/freezes", &backwards).bearer(&ada))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "schedule.end");
    let stored = api.call(&put, Req::post_json("/freezes", &migration).bearer(&ada)).await;
    stored.expect("a one-off freeze", StatusCode::CREATED, None);
    assert_eq!(stored.body, migration);
    for (window, stored_schedule) in [
        (
            json!({"id": "month-end", "name": "Month-end close", "services": ["reporting"],
                   "schedule": {"kind": "month_end", "business_days": 2}}),
            json!({"kind": "month_end", "business_days": 2}),
        ),
        (
            json!({"id": "weekends", "name": "Weekends", "services": ["reporting"],
                   "schedule": {"kind": "weekly", "days": ["sat", "sun"]}}),
            json!({"kind": "weekly", "days": ["sat", "sun"], "start": "00:00", "end": "24:00"}),
        ),
    ] {
        let a = api.call(&put, Req::post_json("/freezes", &window).bearer(&carol)).await;
        a.expect(&format!("the freeze {}", window["id"]), StatusCode::CREATED, None);
        assert_eq!((&a.body["schedule"], &a.body["reason"]), (&stored_schedule, &json!("")), "{}", a.brief());
    }
    let a = api.call(&list, Req::get("/freezes").bearer(&alice)).await;
    a.expect("the freezes", StatusCode::OK, None);
    let freezes = a.body["freezes"].as_array().cloned().unwrap_or_default();
    assert_eq!(freezes.len(), 3, "{}", a.brief());
    assert_eq!((&freezes[0]["declared_by"], &freezes[1]["declared_by"]), (&json!(ADA.user), &json!(CAROL.user)));
    for f in &freezes[1..] {
        assert!(f["next_occurrence"]["start"].is_string(), "a recurring freeze has a next occurrence: {f}");
    }

    // Planned into the freeze: a normal change is refused, an emergency passes with a reason.
    let frozen = new_change(&["payments"], "2030-12-10T10:00:00Z", "2030-12-10T11:00:00Z");
    let normal = api.open(&alice, &frozen).await.id();
    let submit = json!({"to": "submitted", "version": 1});
    let what = "submitting into a freeze";
    api.transition(&alice, &normal, &submit)
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "planned_start")
        .expect_message(what, "payments-migration");
    let emergency = api.open(&alice, &merged(&frozen, json!({"type": "emergency"}))).await.id();
    let what = "an emergency into a freeze without a reason";
    api.transition(&alice, &emergency, &submit)
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "override_reason");
    let overridden = merged(&submit, json!({"override_reason": "card payments are failing"}));
    let a = api.transition(&alice, &emergency, &overridden).await;
    a.expect("an emergency into a freeze with a reason", StatusCode::OK, None);
    assert_eq!(a.body["state"], json!("submitted"), "the override holds once another person approves");
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let uri = format!("/changes/{emergency}/decisions");
    let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
    a.expect("the cab approving an emergency", StatusCode::OK, None);
    assert_eq!((&a.body["state"], a.version()), (&json!("approved"), 3));

    // Rescheduled within the freeze: the gate applies again, and the approved emergency's override holds.
    let reschedule = key(&Method::POST, "/changes/{id}/reschedule");
    let uri = format!("/changes/{emergency}/reschedule");
    let later = json!({"version": 3, "planned_start": "2030-12-10T14:00:00Z", "planned_end": "2030-12-10T15:00:00Z",
                       "reason": "the vendor asked for the afternoon"});
    api.call(&reschedule, Req::post_json(&uri, &later).bearer(&alice))
        .await
        .expect_forbidden("its requester moving it outside its approved window", "outside its approved window");
    let what = "rescheduling into a freeze without a reason";
    api.call(&reschedule, Req::post_json(&uri, &later).bearer(&carol))
        .await
        .expect(what, StatusCode::CONFLICT, Some("freeze_window"))
        .expect_field(what, "override_reason");
    let what = "rescheduling with the window backwards";
    let backwards = merged(&later, json!({"planned_end": "2030-12-10T13:00:00Z"}));
    api.call(&reschedule, Req::post_json(&uri, &backwards).bearer(&alice))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "planned_end");
    api.call(&reschedule, Req::post_json(&uri, &later).bearer(&pat))
        .await
        .expect_forbidden("an approver rescheduling someone else's change", "rescheduling a change needs");
    let with_reason = merged(&later, json!({"override_reason": "card payments are still failing"}));
    let a = api.call(&reschedule, Req::post_json(&uri, &with_reason).bearer(&carol)).await;
    a.expect("an approved emergency rescheduled into a freeze with a reason", StatusCode::OK, None);
    assert_eq!((&a.body["planned_start"], a.version()), (&json!("2030-12-10T14:00:00Z"), 4));
    let what = "a stale reschedule";
    api.call(&reschedule, Req::post_json(&uri, &with_reason).bearer(&alice))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    assert!(api.actions(&alice, &emergency).await.contains(&json!("rescheduled")));

    // Lifted, saying why.
    let uri = "/freezes/payments-migration?reason=cut-over%20done";
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&alice))
        .await
        .expect_forbidden("a requester lifting a freeze", "lifting a freeze window needs");
    for (what, no_reason) in [
        ("a lift without a reason", "/freezes/payments-migration"),
        ("a blank reason", "/freezes/payments-migration?reason=%20"),
    ] {
        api.call(&delete, Req::new(Method::DELETE, no_reason).bearer(&ada))
            .await
            .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(what, "reason");
    }
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&ada)).await.expect("lift", StatusCode::NO_CONTENT, None);
    api.call(&delete, Req::new(Method::DELETE, uri).bearer(&ada)).await.expect(
        "lift again",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    let a = api.call(&list, Req::get("/freezes").bearer(&alice)).await;
    a.expect("the freezes after a lift", StatusCode::OK, None);
    let last = a.body["log"].as_array().and_then(|l| l.last().cloned()).unwrap_or_default();
    assert_eq!(
        (&last["action"], &last["by"], &last["reason"], &last["window"]["id"]),
        (&json!("lifted"), &json!(ADA.user), &json!("cut-over done"), &json!("payments-migration")),
        "{}",
        a.brief()
    );
    api.move_to(&alice, &normal, "submitted", 1).await;
}
