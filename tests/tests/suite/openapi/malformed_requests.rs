//! Disagreements once found between the code and the document, kept as tests:
//! path parameters that are not UTF-8, bodies that are not objects.

use super::*;

// ---------------------------------------------------------------------------
// Disagreements once found between the code and the document, kept as tests.

/// A path `{id}` that does not percent-decode to UTF-8 gets the documented
/// JSON error naming `id` (not axum's own text/plain rejection).
#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_json_invalid_request() {
    let api = Api::start().await;
    let token = api.token(&ALICE);
    let submit = json!({"to": "submitted", "version": 1});
    let note = json!({"version": 1, "note": "done"});
    for (op, req) in [
        (key(&Method::GET, "/changes/{id}"), Req::get("/changes/%FF")),
        (key(&Method::GET, "/changes/{id}/audit"), Req::get("/changes/%FF/audit")),
        (key(&Method::POST, "/changes/{id}/transitions"), Req::post_json("/changes/%FF/transitions", &submit)),
        (
            key(&Method::POST, "/changes/{id}/decisions"),
            Req::post_json("/changes/%FF/decisions", &json!({"decision": "approve"})),
        ),
        (key(&Method::POST, "/changes/{id}/review"), Req::post_json("/changes/%FF/review", &note)),
        (
            key(&Method::POST, "/changes/{id}/reschedule"),
            Req::post_json(
                "/changes/%FF/reschedule",
                &json!({"version": 1, "planned_start": "2030-12-01T22:00:00Z",
                        "planned_end": "2030-12-01T23:00:00Z", "reason": "later"}),
            ),
        ),
    ] {
        let what = format!("{op} with id %FF");
        api.call(&op, req.bearer(&token))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "id");
    }
}

/// Path parameters that do not percent-decode to UTF-8 get the JSON error a
/// wrong value gets: 400 naming `id` for a change id, 404 for an item, a
/// freeze or an incident that cannot exist.
#[tokio::test]
async fn other_path_parameters_that_are_not_utf8_get_a_json_error() {
    let api = Api::start().await;
    let token = api.token(&ROOT);
    let note = json!({"version": 1, "note": "done"});
    let item = key(&Method::POST, "/changes/{id}/checklist/{item}");
    let change = uuid::Uuid::now_v7();
    for (op, req, status, code, field) in [
        (
            item.clone(),
            Req::post_json("/changes/%FF/checklist/backup_verified", &note),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "id",
        ),
        (
            item,
            Req::post_json(format!("/changes/{change}/checklist/%FF"), &note),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
        (
            key(&Method::DELETE, "/freezes/{id}"),
            Req::new(Method::DELETE, "/freezes/%FF"),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
        (
            key(&Method::POST, "/incidents/{id}/resolve"),
            Req::new(Method::POST, "/incidents/%FF/resolve"),
            StatusCode::NOT_FOUND,
            "not_found",
            "",
        ),
    ] {
        let what = format!("{op}: {}", req.uri);
        api.call(&op, req.bearer(&token)).await.expect(&what, status, Some(code)).expect_field(&what, field);
    }
}

/// serde's derived `Deserialize` reads a struct from an array of its fields
/// too; the API refuses that at every depth (naming the struct's path), and
/// a YAML catalog must be a mapping: a sequence (which would replace the
/// catalog with an empty one) or a scalar is refused, naming the body.
#[tokio::test]
async fn structs_inside_bodies_must_be_objects() {
    let api = Api::start().await;
    api.import_catalog().await;
    let root = api.token(&ROOT);
    let create = key(&Method::POST, "/changes");
    let freeze = key(&Method::POST, "/freezes");
    let catalog = key(&Method::PUT, "/catalog");
    let change = new_change(&["payments"], "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z");
    let services = json!({"services": [["billing", "", "billing-team", 2]]});
    let yaml_service = "services:\n  - [billing, '', billing-team, 2]\n";
    for (op, what, req, field) in [
        (
            &create,
            "an impact as an array",
            Req::post_json("/changes", &merged(&change, json!({"impact": ["write", "outage", true]}))),
            "impact",
        ),
        (
            &freeze,
            "a schedule as an array",
            Req::post_json("/freezes", &json!({"id": "f", "name": "F", "schedule": ["month_end", 2]})),
            "schedule",
        ),
        (
            &catalog,
            "a service as an array",
            Req::put("/catalog", "application/json", services.to_string()),
            "services[0]",
        ),
        (
            &catalog,
            "a YAML service as a sequence",
            Req::put("/catalog", "application/yaml", yaml_service),
            "services[0]",
        ),
        (&catalog, "a YAML catalog that is a sequence", Req::put("/catalog", "application/yaml", "- {}\n"), "body"),
        (&catalog, "a YAML catalog that is a scalar", Req::put("/catalog", "application/yaml", "hello\n"), "body"),
    ] {
        let answer = api.call(op, req.bearer(&root)).await;
        answer.expect(what, StatusCode::BAD_REQUEST, Some("invalid_request")).expect_field(what, field);
        if what == "a YAML service as a sequence" {
            assert!(answer.message().starts_with("line 2: "), "{what}: the line is named: {}", answer.brief());
        }
    }
    let get = key(&Method::GET, "/catalog");
    let kept = api.call(&get, Req::get("/catalog").bearer(&root)).await;
    assert_eq!(kept.body["version"], json!(1), "nothing was stored: {}", kept.brief());
}

/// serde's derived `Deserialize` would also accept a struct as a JSON array of
/// its fields in declaration order; the API refuses anything but an object.
#[tokio::test]
async fn request_bodies_must_be_objects() {
    let api = Api::start().await;
    api.import_catalog().await;
    let token = api.token(&ROOT);
    let body = new_change(&["payments"], "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z");
    let id = api.open(&token, &body).await.id();
    let positional_change =
        json!(["t", "", "normal", ["payments"], "production", "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z"]);
    let post = |path: &str, uri: String, positional: Value| (key(&Method::POST, path), uri, positional, Method::POST);
    for (op, uri, positional, method) in [
        post("/changes", "/changes".to_owned(), positional_change),
        post("/changes/{id}/transitions", format!("/changes/{id}/transitions"), json!(["submitted", 1, null])),
        post("/changes/{id}/decisions", format!("/changes/{id}/decisions"), json!(["approve", 1, null])),
        post("/changes/{id}/review", format!("/changes/{id}/review"), json!([1, "fine"])),
        post(
            "/changes/{id}/reschedule",
            format!("/changes/{id}/reschedule"),
            json!([1, "2030-12-01T22:00:00Z", "2030-12-01T23:00:00Z", "later", null]),
        ),
        post("/changes/{id}/checklist/{item}", format!("/changes/{id}/checklist/x"), json!([1, "done"])),
        post("/freezes", "/freezes".to_owned(), json!(["f", "F", [], {"kind": "month_end", "business_days": 1}, ""])),
        post("/incidents", "/incidents".to_owned(), json!(["i", "I", ["payments"], "ivy", "", null])),
        (key(&Method::PUT, "/catalog"), "/catalog".to_owned(), json!([{}, [], {}, [], {}, {}]), Method::PUT),
        post("/events", "/events".to_owned(), json!(["e1", "src", "dt", "2030-12-01T22:05:00Z", [], {}])),
        post("/gates/deployments", "/gates/deployments".to_owned(), json!(["payments", "production", "1", null, null])),
    ] {
        let what = format!("{op} with the array body {positional}");
        let req = Req::new(method, uri).raw("application/json", positional.to_string().into_bytes());
        api.call(&op, req.bearer(&token))
            .await
            .expect(&what, StatusCode::BAD_REQUEST, Some("invalid_request"))
            .expect_field(&what, "body");
    }
    // A webhook too, properly signed.
    let webhook = key(&Method::POST, "/webhooks/{source}");
    let positional_push = json!(["refs/heads/main", "abc", "def"]).to_string();
    api.call(&webhook, Req::github("/webhooks/github", "push", "d-array", positional_push.as_bytes()))
        .await
        .expect("a GitHub push with an array body", StatusCode::BAD_REQUEST, Some("invalid_request"))
        .expect_field("a GitHub push with an array body", "body");
}
