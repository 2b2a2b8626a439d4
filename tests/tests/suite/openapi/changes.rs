//! The scenario's part on changes: opening, reading, listing and moving them,
//! approvals, checklists and reviews, templates and approval chains.

use super::*;

/// Opening, reading, listing and moving changes; their audit trail; bad input.
pub(super) async fn change_scenario(api: &Api) {
    let create = key(&Method::POST, "/changes");
    let list = key(&Method::GET, "/changes");
    let get = key(&Method::GET, "/changes/{id}");
    let transition = key(&Method::POST, "/changes/{id}/transitions");
    let audit = key(&Method::GET, "/changes/{id}/audit");
    let (alice, pat, vic) = (api.token(&ALICE), api.token(&PAT), api.token(&VIC));

    // Create two changes on payments.
    let body = new_change(&["payments", "ledger"], "2030-12-01T22:00:00Z", "2030-12-01T23:30:00Z");
    let created = api.open(&alice, &body).await;
    let id = created.id();
    let location = created.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
    assert_eq!(location, Some(format!("/changes/{id}").as_str()), "create: Location header");
    assert_eq!(created.body["state"], json!("draft"));
    assert_eq!(created.body["version"], json!(1));
    assert_eq!(created.body["tenant"], json!("acme"));
    assert_eq!(created.body["requester"], json!(ALICE.user));
    assert_eq!((&created.body["category"], &created.body["complexity"]), (&json!("general"), &json!("medium")));
    assert!(created.body["risk"]["level"].is_string(), "risk is scored at creation: {}", created.brief());
    let body2 = new_change(&["payments"], "2030-12-02T22:00:00Z", "2030-12-02T23:00:00Z");
    api.open(&alice, &body2).await;

    // Read it; another tenant does not see it; a valid token without a role may not read.
    let got = api.call(&get, Req::get(format!("/changes/{id}")).bearer(&alice)).await;
    got.expect("get", StatusCode::OK, None);
    assert_eq!(got.body, created.body, "get returns the created change");
    let globex = api.token(&GLOBEX_ROOT);
    api.call(&get, Req::get(format!("/changes/{id}")).bearer(&globex)).await.expect(
        "get, another tenant's admin",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );
    api.call(&get, Req::get(format!("/changes/{id}")).bearer(&vic))
        .await
        .expect_forbidden("get, no role", "reading changes needs");

    // List, one page at a time.
    let range = "from=2030-12-01T00:00:00Z&to=2030-12-31T00:00:00Z";
    let page1 = api.call(&list, Req::get(format!("/changes?service=payments&{range}&limit=1")).bearer(&alice)).await;
    page1.expect("list page 1", StatusCode::OK, None);
    assert_eq!(page1.body["changes"].as_array().map(Vec::len), Some(1), "list page 1: {}", page1.body);
    let cursor = page1.body["next_cursor"].as_str().expect("list page 1 has a next_cursor").to_owned();
    let cursor = percent_encode(&cursor);
    let uri = format!("/changes?service=payments&{range}&limit=1&cursor={cursor}");
    let page2 = api.call(&list, Req::get(uri).bearer(&alice)).await;
    page2.expect("list page 2", StatusCode::OK, None);
    let mut listed: Vec<Value> = page1.body["changes"].as_array().cloned().unwrap_or_default();
    listed.extend(page2.body["changes"].as_array().cloned().unwrap_or_default());
    assert!(listed.iter().any(|c| c["id"] == json!(id)), "the created change is listed: {listed:?}");
    let all = api.call(&list, Req::get(format!("/changes?service=ledger&{range}")).bearer(&alice)).await;
    all.expect("list ledger", StatusCode::OK, None);
    assert_eq!(all.body["next_cursor"], Value::Null, "a last page has next_cursor null");
    // The whole tenant, filtered.
    let tenant_wide = api.call(&list, Req::get(format!("/changes?{range}")).bearer(&alice)).await;
    tenant_wide.expect("list the tenant's changes", StatusCode::OK, None);
    let count = |a: &Answer| a.body["changes"].as_array().map(Vec::len);
    assert_eq!(count(&tenant_wide), Some(2), "{}", tenant_wide.brief());
    let uri = format!("/changes?{range}&state=draft&type=normal&requester=me&service=ledger");
    let mine = api.call(&list, Req::get(uri).bearer(&alice)).await;
    mine.expect("list filtered", StatusCode::OK, None);
    assert_eq!(mine.body["changes"][0]["id"], json!(id), "{}", mine.brief());
    let theirs = api.call(&list, Req::get(format!("/changes?{range}&requester=me")).bearer(&pat)).await;
    theirs.expect("list what pat requested", StatusCode::OK, None);
    assert_eq!(count(&theirs), Some(0));
    for (query, field) in [
        ("state=done", "state"),
        ("type=huge", "type"),
        ("approver=pat", "approver"),
        ("requester=", "requester"),
        ("service=Payments!", "service"),
        ("service=payments&limit=0", "limit"),
        ("service=payments&limit=101", "limit"),
        ("service=payments&limit=ten", "limit"),
        ("service=payments&from=yesterday", "from"),
        ("service=payments&from=2030-12-02T00:00:00Z&to=2030-12-01T00:00:00Z", "to"),
        ("service=payments&cursor=bogus", "cursor"),
        ("service=payments&colour=red", "colour"),
        ("service=payments&limit=1&limit=2", "limit"),
    ] {
        let what = format!("list ?{query}");
        api.call(&list, Req::get(format!("/changes?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // Transition, then refused ones: not the requester, illegal, stale, by decision only.
    let submit = json!({"to": "submitted", "version": 1, "reason": "ready for review"});
    api.transition(&pat, &id, &submit).await.expect_forbidden(
        "an approver moving someone else's change",
        "needs the requester role and to be the change's requester",
    );
    api.transition(&vic, &id, &submit)
        .await
        .expect_forbidden("moving a change without a role", "moving a change needs");
    let moved = api.transition(&alice, &id, &submit).await;
    moved.expect("transition", StatusCode::OK, None);
    assert_eq!((&moved.body["state"], &moved.body["version"]), (&json!("submitted"), &json!(2)));
    assert!(moved.body["approval"]["steps"].is_array(), "a submitted normal change has its plan: {}", moved.brief());
    for (what, body, code, field) in [
        ("illegal transition", json!({"to": "implementing", "version": 2}), "illegal_transition", "to"),
        ("stale transition", json!({"to": "cancelled", "version": 1}), "version_conflict", "version"),
        ("approving by transition", json!({"to": "approved", "version": 2}), "decision_required", "to"),
    ] {
        api.transition(&alice, &id, &body)
            .await
            .expect(what, StatusCode::CONFLICT, Some(code))
            .expect_field(what, field);
    }
    for field in ["reason", "override_reason"] {
        let what = format!("a long {field}");
        api.transition(&alice, &id, &json!({"to": "cancelled", "version": 2, field: "x".repeat(2001)}))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }

    // Audit trail, readable by an auditor.
    let trail = api.call(&audit, Req::get(format!("/changes/{id}/audit")).bearer(&api.token(&AVA))).await;
    trail.expect("audit", StatusCode::OK, None);
    assert_eq!(trail.body["change_id"], json!(id));
    assert_eq!(trail.body["entries"].as_array().map(Vec::len), Some(2), "audit: {}", trail.body);
    assert_eq!(trail.body["entries"][1]["reason"], json!("ready for review"));

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7();
    for (op, req) in [
        (&get, Req::get(format!("/changes/{unknown}"))),
        (&audit, Req::get(format!("/changes/{unknown}/audit"))),
        (&transition, Req::post_json(format!("/changes/{unknown}/transitions"), &submit)),
    ] {
        let what = format!("{op} with an unknown id");
        api.call(op, req.bearer(&alice)).await.expect(&what, StatusCode::NOT_FOUND, Some("not_found"));
    }
    for (op, req) in [
        (&get, Req::get("/changes/not-a-uuid")),
        (&audit, Req::get("/changes/not-a-uuid/audit")),
        (&transition, Req::post_json("/changes/not-a-uuid/transitions", &submit)),
    ] {
        let what = format!("{op} with a bad id");
        api.call(op, req.bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }

    // Bodies: malformed, wrong type, unknown field, too large.
    let oversized = {
        let mut b = br#"{"title": ""#.to_vec();
        b.resize(MAX_BODY_BYTES + 1, b'x');
        b
    };
    for (op, uri) in [(&create, "/changes".to_owned()), (&transition, format!("/changes/{id}/transitions"))] {
        let what = |w: &str| format!("{w} body on {op}");
        let post = || Req::new(Method::POST, uri.clone()).bearer(&alice);
        api.call(op, post().raw("application/json", b"{not json".to_vec())).await.expect(
            &what("malformed"),
            StatusCode::BAD_REQUEST,
            Some("malformed_json"),
        );
        api.call(op, post().raw("text/plain", b"{}".to_vec())).await.expect(
            &what("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, post()).await.expect(
            &what("untyped"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type"),
        );
        api.call(op, post().raw("application/json", oversized.clone())).await.expect(
            &what("oversized"),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
        );
        api.call(op, post().raw("application/json; charset=utf-8", b"[]".to_vec()))
            .await
            .expect(&what("array"), StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what("array"), "body");
    }
    for (what, edit, field) in [
        ("unknown field", json!({"colour": "red"}), "colour"),
        ("bad service", json!({"services": ["payments", "Not#Ok"]}), "services[1]"),
        ("unknown category", json!({"category": "no-such-category"}), "category"),
        ("a standard change without a template", json!({"type": "standard"}), "template"),
        ("a normal change with a template", json!({"template": "rotate-tls-cert"}), "template"),
        ("unknown template", json!({"type": "standard", "template": "no-such-template"}), "template"),
        ("unknown data impact", json!({"impact": {"data": "everything"}}), "impact.data"),
        ("unknown complexity", json!({"complexity": "extreme"}), "complexity"),
    ] {
        api.call(&create, Req::post_json("/changes", &merged(&body, edit)).bearer(&alice))
            .await
            .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(what, field);
    }
    let mut no_title = body.clone();
    no_title.as_object_mut().expect("object").remove("title");
    api.call(&create, Req::post_json("/changes", &no_title).bearer(&alice))
        .await
        .expect("missing title", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("missing title", "title");
}

/// Whether `GET /changes?approver=me` lists change `id` for `token`'s user.
async fn waits_for(api: &Api, token: &str, id: &str) -> bool {
    let list = key(&Method::GET, "/changes");
    let a = api.call(&list, Req::get("/changes?approver=me").bearer(token)).await;
    a.expect("waiting for my decision", StatusCode::OK, None);
    a.body["changes"].as_array().is_some_and(|changes| changes.iter().any(|c| c["id"] == json!(id)))
}

/// A normal change on payments climbs its two levels (team-lead, then cab)
/// under dual control; another is rejected.
pub(super) async fn approval_scenario(api: &Api) {
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let (alice, pat, sam, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&SAM), api.token(&CAROL));
    let approve = |token: &str, uri: &str| Req::post_json(uri, &json!({"decision": "approve"})).bearer(token);
    let id = api.open(&alice, &new_change(&["payments"], "2030-12-07T22:00:00Z", "2030-12-07T23:00:00Z")).await.id();
    let uri = format!("/changes/{id}/decisions");

    api.call(&decide, approve(&pat, &uri)).await.expect(
        "deciding a draft",
        StatusCode::CONFLICT,
        Some("no_pending_approval"),
    );
    let submitted = api.move_to(&alice, &id, "submitted", 1).await;
    assert!(
        waits_for(api, &pat, &id).await && !waits_for(api, &carol, &id).await,
        "level 1 waits for the payments leads"
    );
    let steps = submitted.body["approval"]["steps"].as_array().cloned().unwrap_or_default();
    let names: Vec<&Value> = steps.iter().map(|s| &s["name"]).collect();
    assert_eq!(names, [&json!("team-lead"), &json!("cab")], "the payments chain: {}", submitted.brief());
    assert!(steps[0]["due_at"].is_string() && steps[1].get("due_at").is_none(), "only level 1 runs: {steps:?}");

    // Refused: the requester (even in the group), the wrong level's group, no deciding role, no role.
    let alice_lead = api.token(&Who { groups: &["engineers", "payments-leads"], ..ALICE });
    for (what, token, says) in [
        ("the requester", &alice_lead, "dual control: alice@example.com requested this change"),
        (
            "the cab before level 1",
            &carol,
            "level 1 (team-lead of service payments) needs a member of any of: payments-leads",
        ),
        ("an auditor", &api.token(&AVA), "needs the approver, cab or admin role"),
        ("a token without a role", &api.token(&VIC), "deciding an approval needs"),
    ] {
        api.call(&decide, approve(token, &uri)).await.expect_forbidden(what, says);
    }
    let what = "a stale decision";
    api.call(&decide, Req::post_json(&uri, &json!({"decision": "approve", "version": 1})).bearer(&sam))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let what = "an unknown decision";
    api.call(&decide, Req::post_json(&uri, &json!({"decision": "maybe"})).bearer(&sam))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "decision");
    let unknown = format!("/changes/{}/decisions", uuid::Uuid::now_v7());
    api.call(&decide, approve(&sam, &unknown)).await.expect(
        "deciding an unknown change",
        StatusCode::NOT_FOUND,
        Some("not_found"),
    );

    // Level 1 by Sam, who may not approve level 2 too; level 2 by Carol.
    let body = json!({"decision": "approve", "version": 2, "comment": "rollback plan reviewed"});
    let level1 = api.call(&decide, Req::post_json(&uri, &body).bearer(&sam)).await;
    level1.expect("level 1", StatusCode::OK, None);
    assert_eq!((&level1.body["state"], level1.version()), (&json!("submitted"), 3));
    assert_eq!(
        (&level1.body["decision"]["counted_for"], &level1.body["decision"]["waiting_for"]),
        (
            &json!([{"level": 1, "name": "team-lead", "service": "payments"}]),
            &json!([{"level": 2, "name": "cab", "service": "payments"}])
        ),
        "the answer says which step the decision counted for: {}",
        level1.brief()
    );
    let approval = &level1.body["approval"]["steps"][0]["approvals"][0];
    assert_eq!(
        (&approval["by"], &approval["group"]),
        (&json!(SAM.user), &json!("payments-leads")),
        "{}",
        level1.brief()
    );
    api.call(&decide, approve(&sam, &uri))
        .await
        .expect_forbidden("one person at two levels", "already approved level 1 (team-lead)");
    assert!(
        waits_for(api, &carol, &id).await && !waits_for(api, &sam, &id).await,
        "level 2 waits for the cab, but not for sam"
    );
    let level2 = api.call(&decide, approve(&carol, &uri)).await;
    level2.expect("level 2", StatusCode::OK, None);
    assert_eq!((&level2.body["state"], level2.version()), (&json!("approved"), 4));
    api.call(&decide, approve(&carol, &uri)).await.expect(
        "deciding an approved change",
        StatusCode::CONFLICT,
        Some("no_pending_approval"),
    );
    assert_eq!(
        api.actions(&alice, &id).await,
        [json!("created"), json!("transitioned"), json!("decided"), json!("decided")]
    );

    // A rejection at level 1 closes the plan.
    let rejected =
        api.open(&alice, &new_change(&["payments"], "2030-12-08T22:00:00Z", "2030-12-08T23:00:00Z")).await.id();
    api.move_to(&alice, &rejected, "submitted", 1).await;
    let body = json!({"decision": "reject", "comment": "no rollback plan", "version": null});
    let a = api.call(&decide, Req::post_json(format!("/changes/{rejected}/decisions"), &body).bearer(&pat)).await;
    a.expect("a rejection", StatusCode::OK, None);
    assert_eq!(a.body["state"], json!("rejected"));
    assert_eq!(a.body["approval"]["rejected"]["by"], json!(PAT.user), "{}", a.brief());
    assert_eq!(a.body["decision"]["decision"], json!("reject"));

    // A high-risk change waits for a peer review first, which an approval never counts for.
    let risky = merged(
        &new_change(&["payments"], "2030-12-08T22:00:00Z", "2030-12-08T23:00:00Z"),
        json!({"cryptographic_keys": true}),
    );
    let id = api.open(&alice, &risky).await.id();
    api.move_to(&alice, &id, "submitted", 1).await;
    let uri = format!("/changes/{id}/decisions");
    let what = "an approval while a peer review waits";
    api.call(&decide, approve(&pat, &uri))
        .await
        .expect(what, StatusCode::CONFLICT, Some("peer_review_required"))
        .expect_field(what, "decision")
        .expect_message(what, "peer_review");
    let peer_review = |token: &str| Req::post_json(&uri, &json!({"decision": "peer_review"})).bearer(token);
    let reviewed = api.call(&decide, peer_review(&api.token(&RILEY))).await;
    reviewed.expect("a peer review", StatusCode::OK, None);
    assert_eq!(reviewed.body["decision"]["counted_for"], json!([{"level": 1, "name": "peer-review"}]));
    let what = "a peer review when none waits";
    api.call(&decide, peer_review(&pat))
        .await
        .expect(what, StatusCode::CONFLICT, Some("no_peer_review_pending"))
        .expect_field(what, "decision");
    let level2 = api.call(&decide, approve(&pat, &uri)).await;
    level2.expect("the team lead after the peer review", StatusCode::OK, None);
    assert_eq!(level2.body["decision"]["counted_for"][0]["level"], json!(2));
    assert_eq!(
        api.actions(&alice, &id).await,
        [json!("created"), json!("transitioned"), json!("peer_reviewed"), json!("decided")]
    );
}

/// A draft is edited (a merge patch, checked as at creation, re-scored and
/// audited); a rejected change is reworked into a new draft, linked both ways.
pub(super) async fn edit_and_rework_scenario(api: &Api) {
    let edit = key(&Method::PATCH, "/changes/{id}");
    let rework = key(&Method::POST, "/changes/{id}/rework");
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let (alice, pat, carol) = (api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let body = new_change(&["payments"], "2030-12-12T22:00:00Z", "2030-12-12T23:00:00Z");
    let what = "a change planned years ago";
    api.call(
        &key(&Method::POST, "/changes"),
        Req::post_json(
            "/changes",
            &merged(&body, json!({"planned_start": "2019-12-12T22:00:00Z", "planned_end": "2019-12-12T23:00:00Z"})),
        )
        .bearer(&alice),
    )
    .await
    .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
    .expect_field(what, "planned_start")
    .expect_message(what, "max_backdate");
    let what = "a misspelt service";
    api.call(
        &key(&Method::POST, "/changes"),
        Req::post_json("/changes", &merged(&body, json!({"services": ["paymnets"]}))).bearer(&alice),
    )
    .await
    .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
    .expect_field(what, "services[0]")
    .expect_message(what, "did you mean payments?");

    let draft = api.open(&alice, &body).await;
    let id = draft.id();
    let uri = format!("/changes/{id}");
    let patch = |token: &str, body: Value| {
        Req::new(Method::PATCH, uri.clone()).raw("application/json", body.to_string().into_bytes()).bearer(token)
    };
    api.call(&edit, patch(&pat, json!({"version": 1, "title": "mine now"})))
        .await
        .expect_forbidden("an approver editing someone else's draft", "editing a change needs");
    for (what, body, field) in [
        ("an unknown field", json!({"version": 1, "state": "approved"}), "state"),
        ("a misspelt service", json!({"version": 1, "services": ["ledgr"]}), "services[0]"),
        ("a null title", json!({"version": 1, "title": null}), "title"),
        ("nothing to change", json!({"version": 1}), "body"),
        ("no version", json!({"title": "t"}), "version"),
    ] {
        api.call(&edit, patch(&alice, body))
            .await
            .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(what, field);
    }
    let what = "a stale edit";
    api.call(&edit, patch(&alice, json!({"version": 2, "title": "t"})))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let edited = api
        .call(
            &edit,
            patch(
                &alice,
                json!({"version": 1, "services": ["ledger"], "planned_start": "2030-12-13T22:00:00Z",
                       "planned_end": "2030-12-13T23:00:00Z", "description": null, "complexity": "high"}),
            ),
        )
        .await;
    edited.expect("an edit", StatusCode::OK, None);
    assert_eq!(
        (&edited.body["services"], &edited.body["description"], edited.version()),
        (&json!(["ledger"]), &json!(""), 2),
        "{}",
        edited.brief()
    );
    assert_ne!(edited.body["risk"], draft.body["risk"], "re-scored");
    let ledger = api
        .call(
            &key(&Method::GET, "/changes"),
            Req::get("/changes?service=ledger&from=2030-12-13T00:00:00Z&to=2030-12-14T00:00:00Z").bearer(&alice),
        )
        .await;
    assert!(ledger.body["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == json!(id))), "moved");
    let unchanged = api.call(&edit, patch(&alice, json!({"version": 2, "complexity": "high"}))).await;
    unchanged.expect("an edit changing nothing", StatusCode::OK, None);
    assert_eq!(unchanged.version(), 2, "nothing written");
    api.call(&rework, Req::post_json(format!("{uri}/rework"), &json!({"version": 2})).bearer(&alice)).await.expect(
        "reworking a draft",
        StatusCode::CONFLICT,
        Some("not_rejected"),
    );

    // Submitted, it is no longer edited; rejected, it is reworked once.
    api.move_to(&alice, &id, "submitted", 2).await;
    api.call(&edit, patch(&alice, json!({"version": 3, "title": "late"}))).await.expect(
        "editing a submitted change",
        StatusCode::CONFLICT,
        Some("not_draft"),
    );
    let ledger_lead = api.token(&Who { tenant: "acme", user: "lee@example.com", groups: &["ledger-leads"] });
    let body = json!({"decision": "reject", "comment": "needs a rollback plan"});
    api.call(&decide, Req::post_json(format!("{uri}/decisions"), &body).bearer(&ledger_lead)).await.expect(
        "a rejection",
        StatusCode::OK,
        None,
    );
    let rework_body = json!({"version": 4, "description": "rollback: restore the snapshot"});
    api.call(&rework, Req::post_json(format!("{uri}/rework"), &rework_body).bearer(&pat))
        .await
        .expect_forbidden("an approver reworking someone else's change", "reworking a change needs");
    let reworked = api.call(&rework, Req::post_json(format!("{uri}/rework"), &rework_body).bearer(&alice)).await;
    reworked.expect("a rework", StatusCode::CREATED, None);
    let new_id = reworked.id();
    assert_eq!(
        (&reworked.body["state"], &reworked.body["reworks"], &reworked.body["description"], reworked.version()),
        (&json!("draft"), &json!(id), &json!("rollback: restore the snapshot"), 1),
        "{}",
        reworked.brief()
    );
    let old = api.call(&key(&Method::GET, "/changes/{id}"), Req::get(uri.clone()).bearer(&carol)).await;
    assert_eq!((&old.body["reworked_as"], old.version()), (&json!(new_id), 5), "{}", old.brief());
    assert_eq!(api.actions(&alice, &id).await.last(), Some(&json!("reworked")));
    api.call(&rework, Req::post_json(format!("{uri}/rework"), &json!({"version": 5})).bearer(&alice))
        .await
        .expect("a second rework", StatusCode::CONFLICT, Some("already_reworked"))
        .expect_message("a second rework", &new_id);
}

/// An emergency schema migration: checklist items done with evidence,
/// approved on submission, its post-implementation review due, reported,
/// then recorded under dual control.
pub(super) async fn checklist_and_review_scenario(api: &Api) {
    let item = key(&Method::POST, "/changes/{id}/checklist/{item}");
    let review = key(&Method::POST, "/changes/{id}/review");
    let pending = key(&Method::GET, "/reports/pending-reviews");
    let (riley, alice, pat, carol) = (api.token(&RILEY), api.token(&ALICE), api.token(&PAT), api.token(&CAROL));
    let note = |version: u64| json!({"version": version, "note": "restored last night's backup to staging"});
    let emergency = merged(
        &new_change(&["search"], "2030-12-04T01:00:00Z", "2030-12-04T02:00:00Z"),
        json!({"type": "emergency", "category": "database_schema", "complexity": "high",
               "impact": {"data": "write", "availability": "degraded"}}),
    );
    let created = api.open(&riley, &emergency).await;
    let id = created.id();
    let ids: Vec<&Value> =
        created.body["checklist"].as_array().map(|c| c.iter().map(|i| &i["id"]).collect()).unwrap_or_default();
    assert_eq!(ids, [&json!("backup_verified"), &json!("rollback_script")], "{}", created.brief());
    let item_uri = |name: &str| format!("/changes/{id}/checklist/{name}");
    let review_uri = format!("/changes/{id}/review");

    // The checklist: refusals, then the first item.
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(1)).bearer(&pat))
        .await
        .expect_forbidden("an approver completing someone else's checklist", "completing a checklist item needs");
    api.call(&item, Req::post_json(item_uri("coffee"), &note(1)).bearer(&riley))
        .await
        .expect("an unknown item", StatusCode::NOT_FOUND, Some("not_found"))
        .expect_message("an unknown item", "backup_verified, rollback_script");
    let what = "a stale checklist item";
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(9)).bearer(&riley))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let what = "a blank note";
    api.call(&item, Req::post_json(item_uri("backup_verified"), &json!({"version": 1, "note": " "})).bearer(&riley))
        .await
        .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field(what, "note");
    let done = api.call(&item, Req::post_json(item_uri("backup_verified"), &note(1)).bearer(&riley)).await;
    done.expect("a checklist item", StatusCode::OK, None);
    assert_eq!((done.version(), &done.body["checklist"][0]["done"]["by"]), (2, &json!(RILEY.user)));
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(2)).bearer(&riley)).await.expect(
        "an item done twice",
        StatusCode::CONFLICT,
        Some("already_done"),
    );
    api.call(&review, Req::post_json(&review_uri, &note(2)).bearer(&carol)).await.expect(
        "reviewing a draft",
        StatusCode::CONFLICT,
        Some("no_review_due"),
    );

    // Submitted, an emergency waits for one approval by the cab, never its requester's; then its review falls due.
    let decide = key(&Method::POST, "/changes/{id}/decisions");
    let submitted = api.move_to(&riley, &id, "submitted", 2).await;
    assert_eq!((&submitted.body["state"], submitted.version()), (&json!("submitted"), 3), "{}", submitted.brief());
    assert_eq!(submitted.body["approval"]["steps"][0]["name"], json!("emergency"), "{}", submitted.brief());
    let approve = json!({"decision": "approve", "version": 3});
    api.call(&decide, Req::post_json(format!("/changes/{id}/decisions"), &approve).bearer(&riley))
        .await
        .expect_forbidden("the requester approving their own emergency", "dual control");
    let approved = api.call(&decide, Req::post_json(format!("/changes/{id}/decisions"), &approve).bearer(&carol)).await;
    approved.expect("the cab approving an emergency", StatusCode::OK, None);
    assert_eq!((&approved.body["state"], approved.version()), (&json!("approved"), 4), "{}", approved.brief());
    assert!(approved.body["review"]["due_at"].is_string());
    let reports = api.call(&pending, Req::get("/reports/pending-reviews").bearer(&alice)).await;
    reports.expect("pending reviews", StatusCode::OK, None);
    assert!(reports.body["changes"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == json!(id))));

    // Implementation waits for the checklist; then the checklist is closed.
    api.move_to(&riley, &id, "scheduled", 4).await;
    let what = "implementing with an open checklist";
    api.transition(&riley, &id, &json!({"to": "implementing", "version": 5}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("checklist_incomplete"))
        .expect_field(what, "checklist")
        .expect_message(what, "rollback_script");
    api.call(&item, Req::post_json(item_uri("rollback_script"), &note(5)).bearer(&riley)).await.expect(
        "the second item",
        StatusCode::OK,
        None,
    );
    // Its window lies ahead: only as an approved emergency, with a reason, does it start now.
    let what = "implementing outside the planned window";
    api.transition(&riley, &id, &json!({"to": "implementing", "version": 6}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("outside_window"))
        .expect_field(what, "planned_start")
        .expect_message(what, "2030-12-04T01:00:00Z to 2030-12-04T02:00:00Z");
    let early = json!({"to": "implementing", "version": 6, "override_reason": "the migration fixes the outage"});
    api.transition(&riley, &id, &early).await.expect("an approved emergency starting early", StatusCode::OK, None);
    api.call(&item, Req::post_json(item_uri("backup_verified"), &note(7)).bearer(&riley)).await.expect(
        "a checklist item during implementation",
        StatusCode::CONFLICT,
        Some("checklist_closed"),
    );

    // The review: after implementation, by a cab member who did not request it.
    api.call(&review, Req::post_json(&review_uri, &note(7)).bearer(&carol)).await.expect(
        "a review during implementation",
        StatusCode::CONFLICT,
        Some("review_too_early"),
    );
    api.move_to(&riley, &id, "completed", 7).await;
    api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&riley))
        .await
        .expect_forbidden("the requester reviewing", "dual control");
    api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&alice))
        .await
        .expect_forbidden("a requester reviewing", "needs the cab or admin role");
    let what = "a stale review";
    api.call(&review, Req::post_json(&review_uri, &note(7)).bearer(&carol))
        .await
        .expect(what, StatusCode::CONFLICT, Some("version_conflict"))
        .expect_field(what, "version");
    let reviewed = api.call(&review, Req::post_json(&review_uri, &note(8)).bearer(&carol)).await;
    reviewed.expect("the review", StatusCode::OK, None);
    assert_eq!((reviewed.version(), &reviewed.body["review"]["done"]["by"]), (9, &json!(CAROL.user)));
    api.call(&review, Req::post_json(&review_uri, &note(9)).bearer(&carol)).await.expect(
        "a second review",
        StatusCode::CONFLICT,
        Some("already_done"),
    );
    let actions = api.actions(&alice, &id).await;
    for action in ["checklist_item_done", "reviewed"] {
        assert!(actions.contains(&json!(action)), "the audit trail records {action}: {actions:?}");
    }

    // The report: the reviewed change has left it; two others, one page each.
    for day in ["05", "06"] {
        let body = merged(
            &new_change(&["search"], &format!("2030-12-{day}T01:00:00Z"), &format!("2030-12-{day}T02:00:00Z")),
            json!({"type": "emergency"}),
        );
        let other = api.open(&riley, &body).await.id();
        api.move_to(&riley, &other, "submitted", 1).await;
        let uri = format!("/changes/{other}/decisions");
        let a = api.call(&decide, Req::post_json(uri, &json!({"decision": "approve"})).bearer(&carol)).await;
        a.expect("the cab approving an emergency", StatusCode::OK, None);
    }
    let page1 = api.call(&pending, Req::get("/reports/pending-reviews?limit=1").bearer(&alice)).await;
    page1.expect("pending reviews, page 1", StatusCode::OK, None);
    let cursor = page1.body["next_cursor"].as_str().map(percent_encode).expect("a next page");
    let page2 =
        api.call(&pending, Req::get(format!("/reports/pending-reviews?limit=1&cursor={cursor}")).bearer(&alice)).await;
    page2.expect("pending reviews, page 2", StatusCode::OK, None);
    assert_eq!(page2.body["next_cursor"], Value::Null, "{}", page2.brief());
    let listed: Vec<&Value> =
        [&page1, &page2].iter().flat_map(|p| p.body["changes"].as_array().into_iter().flatten()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|c| c["id"] != json!(id)), "the reviewed change is no longer pending");
    assert!(listed[0]["review"]["due_at"].as_str() <= listed[1]["review"]["due_at"].as_str(), "earliest due first");
    for (query, field) in
        [("limit=0", "limit"), ("limit=many", "limit"), ("colour=red", "colour"), ("cursor=a&cursor=b", "cursor")]
    {
        let what = format!("pending reviews ?{query}");
        api.call(&pending, Req::get(format!("/reports/pending-reviews?{query}")).bearer(&alice))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, field);
    }
    api.call(&pending, Req::get("/reports/pending-reviews").bearer(&api.token(&VIC)))
        .await
        .expect_forbidden("reports without a role", "reading reports needs");
}

/// Standard changes from the catalog's templates, and normal changes on a
/// service without an approval chain.
pub(super) async fn template_and_chain_scenario(api: &Api) {
    let alice = api.token(&ALICE);
    let cert = json!({"type": "standard", "template": "rotate-tls-cert", "category": "certificate"});
    let standard = merged(&new_change(&["payments"], "2030-12-09T22:00:00Z", "2030-12-09T23:00:00Z"), cert);
    let created = api.open(&alice, &standard).await;
    assert_eq!(created.body["template"], json!("rotate-tls-cert"));
    let id = created.id();
    let approved = api.move_to(&alice, &id, "submitted", 1).await;
    assert_eq!((&approved.body["state"], approved.version()), (&json!("approved"), 3), "{}", approved.brief());

    // A standard change takes its template's category, and no other.
    let taken = api.open(&alice, &merged(&standard, json!({"category": null}))).await;
    assert_eq!(taken.body["category"], json!("certificate"), "{}", taken.brief());
    let what = "a standard change naming another category";
    api.call(
        &key(&Method::POST, "/changes"),
        Req::post_json("/changes", &merged(&standard, json!({"category": "general"}))).bearer(&alice),
    )
    .await
    .expect(what, StatusCode::BAD_REQUEST, Some("invalid_request"))
    .expect_field(what, "category");

    // Once the catalog stops covering what a draft names, submitting says so.
    let on_search = api.open(&alice, &merged(&standard, json!({"services": ["search"]}))).await.id();
    let on_ledger =
        api.open(&alice, &new_change(&["ledger"], "2030-12-09T22:00:00Z", "2030-12-09T23:00:00Z")).await.id();
    let (get, put, root) = (key(&Method::GET, "/catalog"), key(&Method::PUT, "/catalog"), api.token(&ROOT));
    let sample = api.call(&get, Req::get("/catalog").bearer(&root)).await.body["catalog"].clone();
    let narrowed =
        set_at(&set_at(&sample, "/templates/0/services", json!(["payments"])), "/services/1/approval", json!([]));
    api.call(&put, Req::put("/catalog", "application/json", narrowed.to_string()).bearer(&root)).await.expect(
        "a narrower catalog",
        StatusCode::OK,
        None,
    );
    let what = "a standard change outside its template's services";
    api.transition(&alice, &on_search, &json!({"to": "submitted", "version": 1}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("template_mismatch"))
        .expect_field(what, "services");
    let what = "a normal change on a service without an approval chain";
    api.transition(&alice, &on_ledger, &json!({"to": "submitted", "version": 1}))
        .await
        .expect(what, StatusCode::CONFLICT, Some("no_approval_chain"))
        .expect_field(what, "services")
        .expect_message(what, "ledger");
    api.import_catalog().await;
}
