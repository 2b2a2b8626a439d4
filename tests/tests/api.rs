//! The change API over HTTP, run twice: on the embedded store (as `changehub
//! serve` runs it) and on DynamoDB on the AWS emulator (as the api Lambda runs it).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::Changes;
use changehub::ports::{ChangeReader, ChangeWriter, SystemClock};
use changehub_tests::aws;
use changehub_tests::http::{Answer, call, send};
use serde_json::{Value, json};
use std::sync::Arc;

fn router_on<S: ChangeReader + ChangeWriter + 'static>(store: S) -> Router {
    changehub::http::router(Arc::new(Changes::new(store, SystemClock)))
}

fn embedded() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (router_on(EmbeddedStore::open(dir.path().join("api.db")).expect("open")), dir)
}

async fn dynamodb() -> Router {
    router_on(aws::dynamo_store().await)
}

fn new_change() -> Value {
    serde_json::from_str(include_str!("../../events/api/new-change.json")).expect("sample")
}

fn error_of(a: &Answer) -> (&str, Option<&str>) {
    (a.body["error"]["code"].as_str().unwrap_or("<no code>"), a.body["error"]["field"].as_str())
}

async fn transition(router: &Router, id: &str, to: &str, version: u64) -> Answer {
    call(router, "POST", &format!("/changes/{id}/transitions"), Some(json!({"to": to, "version": version}))).await
}

async fn a_change_moves_from_draft_to_closed_with_its_audit_trail(router: Router) {
    let created = call(&router, "POST", "/changes", Some(new_change())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.headers["location"], format!("/changes/{id}").as_str());
    assert!(created.headers.contains_key("x-request-id"));
    assert_eq!(created.body["state"], "draft");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["requester"], "anonymous");

    let got = call(&router, "GET", &format!("/changes/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, created.body);

    let mut version = 1;
    for to in ["submitted", "approved", "scheduled", "implementing", "completed", "closed"] {
        let moved = transition(&router, &id, to, version).await;
        assert_eq!(moved.status, StatusCode::OK, "to {to}: {:?}", moved.body);
        assert_eq!(moved.body["state"], to);
        version += 1;
        assert_eq!(moved.body["version"], version);
    }

    let listed =
        call(&router, "GET", "/changes?service=payments&from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["changes"][0]["id"], id.as_str());
    assert_eq!(listed.body["changes"][0]["state"], "closed");
    assert_eq!(listed.body["next_cursor"], Value::Null);

    let audit = call(&router, "GET", &format!("/changes/{id}/audit"), None).await;
    assert_eq!(audit.status, StatusCode::OK);
    let entries = audit.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 7);
    let trail: Vec<changehub::domain::AuditEntry> =
        serde_json::from_value(audit.body["entries"].clone()).expect("entries");
    changehub::domain::audit::verify_chain(&trail).expect("chain verifies");
    assert_eq!(trail[6].changes[0].before, "completed");
    assert_eq!(trail[6].changes[0].after, "closed");
}

async fn refused_moves_say_why(router: Router) {
    let id = call(&router, "POST", "/changes", Some(new_change())).await.body["id"].as_str().expect("id").to_owned();
    let illegal = transition(&router, &id, "implementing", 1).await;
    assert_eq!(illegal.status, StatusCode::CONFLICT);
    assert_eq!(error_of(&illegal), ("illegal_transition", Some("to")));
    let message = illegal.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("from draft to implementing") && message.contains("submitted, cancelled"), "{message}");

    assert_eq!(transition(&router, &id, "submitted", 1).await.status, StatusCode::OK);
    let stale = transition(&router, &id, "cancelled", 1).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(error_of(&stale), ("version_conflict", Some("version")));
    assert!(stale.body["error"]["message"].as_str().expect("message").contains("it is at version 2"));

    let missing = transition(&router, &uuid::Uuid::now_v7().to_string(), "submitted", 1).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&missing).0, "not_found");
}

async fn bad_input_gets_a_clear_error_and_stores_nothing(router: Router) {
    let post = |body: &str, content_type: &str| {
        Request::builder()
            .method("POST")
            .uri("/changes")
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let cases: Vec<(Request<Body>, StatusCode, &str, Option<&str>)> = vec![
        (post("{not json", "application/json"), StatusCode::BAD_REQUEST, "malformed_json", None),
        (post("", "application/json"), StatusCode::BAD_REQUEST, "malformed_json", None),
        (post("{}", "text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None),
        (
            post(&"x".repeat(2 * 1024 * 1024), "application/json"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (post(r#"{"title": 5}"#, "application/json"), StatusCode::BAD_REQUEST, "invalid_request", Some("title")),
        (
            post(r#"{"title": "x", "colour": "red"}"#, "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("colour"),
        ),
        (
            post(r#"{"title": "x", "type": "normal"}"#, "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("services"),
        ),
    ];
    for (req, status, code, field) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let a = send(&router, req).await;
        assert_eq!(a.status, status, "{what}: {:?}", a.body);
        assert_eq!(error_of(&a), (code, field), "{what}");
    }
    let mut body = new_change();
    body["type"] = json!("sideways");
    let a = call(&router, "POST", "/changes", Some(body)).await;
    assert_eq!(error_of(&a), ("invalid_request", Some("type")));
    let mut body = new_change();
    body["planned_end"] = json!("2026-11-30T00:00:00Z");
    let a = call(&router, "POST", "/changes", Some(body)).await;
    assert_eq!(error_of(&a), ("invalid_request", Some("planned_end")));
    let mut body = new_change();
    body["services"] = json!(["payments", "Bad Name"]);
    let a = call(&router, "POST", "/changes", Some(body)).await;
    assert_eq!(error_of(&a), ("invalid_request", Some("services[1]")));

    for (path, field) in [
        ("/changes", "service"),
        ("/changes?service=payments&from=yesterday", "from"),
        ("/changes?service=payments&from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
        ("/changes?service=payments&limit=0", "limit"),
        ("/changes?service=payments&limit=many", "limit"),
        ("/changes?service=payments&cursor=garbage", "cursor"),
        ("/changes?service=payments&sevrice=x", "sevrice"),
        ("/changes/not-a-uuid", "id"),
    ] {
        let a = call(&router, "GET", path, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {:?}", a.body);
        assert_eq!(error_of(&a), ("invalid_request", Some(field)), "{path}");
    }
    let a = send(
        &router,
        Request::builder().uri("/changes").header("x-changehub-tenant", "Bad#Tenant").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(error_of(&a), ("invalid_request", Some("x-changehub-tenant")));

    assert_eq!(call(&router, "DELETE", "/changes", None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&call(&router, "GET", "/nowhere", None).await).0, "route_not_found");
    // Nothing was stored by any of it.
    let listed =
        call(&router, "GET", "/changes?service=payments&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", None).await;
    assert_eq!(listed.body["changes"], json!([]));
}

async fn tenants_are_isolated(router: Router) {
    let req = |tenant: &str, method: &str, uri: &str, body: Option<Value>| {
        let b = Request::builder().method(method).uri(uri).header("x-changehub-tenant", tenant);
        match body {
            Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request")
    };
    let created = send(&router, req("acme", "POST", "/changes", Some(new_change()))).await;
    let id = created.body["id"].as_str().expect("id");
    assert_eq!(send(&router, req("acme", "GET", &format!("/changes/{id}"), None)).await.status, StatusCode::OK);
    assert_eq!(
        send(&router, req("globex", "GET", &format!("/changes/{id}"), None)).await.status,
        StatusCode::NOT_FOUND
    );
    let list = "/changes?service=payments&from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z";
    assert_eq!(send(&router, req("globex", "GET", list, None)).await.body["changes"], json!([]));
    assert_eq!(
        send(&router, req("globex", "GET", &format!("/changes/{id}/audit"), None)).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Many writers race on one version: exactly one wins, the rest get 409.
async fn concurrent_transitions_have_one_winner(router: Router) {
    let id = call(&router, "POST", "/changes", Some(new_change())).await.body["id"].as_str().expect("id").to_owned();
    const RACERS: usize = 50;
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (router, id) = (router.clone(), id.clone());
            let to = if i % 2 == 0 { "submitted" } else { "cancelled" };
            tokio::spawn(async move { transition(&router, &id, to, 1).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in racers {
        let a = r.await.expect("task");
        if a.status == StatusCode::CONFLICT {
            assert_eq!(error_of(&a).0, "version_conflict");
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), RACERS - 1);
    let audit = call(&router, "GET", &format!("/changes/{id}/audit"), None).await;
    assert_eq!(audit.body["entries"].as_array().expect("entries").len(), 2);
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { let (r, _dir) = embedded(); super::$case(r).await; } )*
        }
        mod dynamodb_store {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(dynamodb().await).await; } )*
        }
    };
}

on_both_stores!(
    a_change_moves_from_draft_to_closed_with_its_audit_trail,
    refused_moves_say_why,
    bad_input_gets_a_clear_error_and_stores_nothing,
    tenants_are_isolated,
    concurrent_transitions_have_one_winner,
);

/// The api Lambda's edge: an API Gateway HTTP API event from events/apigw goes
/// through lambda_http's adapter (what `lambda_http::run` uses) to the router
/// on DynamoDB, and the Lambda response comes back.
#[tokio::test]
async fn api_gateway_events_reach_the_router_on_dynamodb() {
    use lambda_http::tower::Service;
    let router = dynamodb().await;
    let mut lambda = lambda_http::Adapter::from(router);
    let invoke = |payload: &str| {
        let request: lambda_http::request::LambdaRequest = serde_json::from_str(payload).expect("API Gateway event");
        lambda_http::LambdaEvent::new(request, lambda_http::Context::default())
    };
    let created = lambda.call(invoke(include_str!("../../events/apigw/create-change.json"))).await.expect("invoke");
    let created = serde_json::to_value(created).expect("lambda response");
    assert_eq!(created["statusCode"], 201, "{created}");
    let change: Value = serde_json::from_str(created["body"].as_str().expect("body")).expect("json body");
    assert_eq!(change["tenant"], "acme");
    assert_eq!(change["requester"], "alice@example.com");

    let listed = lambda.call(invoke(include_str!("../../events/apigw/list-changes.json"))).await.expect("invoke");
    let listed = serde_json::to_value(listed).expect("lambda response");
    assert_eq!(listed["statusCode"], 200, "{listed}");
    let body: Value = serde_json::from_str(listed["body"].as_str().expect("body")).expect("json body");
    assert_eq!(body["changes"][0]["id"], change["id"]);

    let health = serde_json::to_value(
        lambda.call(invoke(include_str!("../../events/apigw/health.json"))).await.expect("invoke"),
    )
    .expect("resp");
    assert_eq!(health["statusCode"], 200);
}

mod no_input_causes_a_server_error {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z_]{0,12}".prop_map(Value::from),
            Just(json!("2026-12-01T22:00:00Z")),
            Just(json!("submitted")),
            Just(json!(["payments"])),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("title".to_owned()),
                        Just("type".to_owned()),
                        Just("services".to_owned()),
                        Just("planned_start".to_owned()),
                        Just("planned_end".to_owned()),
                        Just("environment".to_owned()),
                        Just("to".to_owned()),
                        Just("version".to_owned()),
                        "[a-z]{1,8}"
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_json_and_bytes_never_get_a_5xx(body in json_value(), raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let (router, _dir) = embedded();
                let created = call(&router, "POST", "/changes", Some(new_change())).await;
                let id = created.body["id"].as_str().expect("id").to_owned();
                for path in ["/changes".to_owned(), format!("/changes/{id}/transitions")] {
                    let a = call(&router, "POST", &path, Some(body.clone())).await;
                    assert!(!a.status.is_server_error(), "{path} {body}: {:?}", a.body);
                    let req = Request::builder().method("POST").uri(&path).header("content-type", "application/json").body(Body::from(raw.clone())).expect("req");
                    let a = send(&router, req).await;
                    assert!(!a.status.is_server_error(), "{path} raw: {:?}", a.body);
                }
            });
        }
    }
}
