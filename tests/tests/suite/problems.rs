//! Problems: the store contract on both stores, and `/problems` over HTTP on
//! both stores (incidents recorded through the use case the glue calls).

use axum::Router;
use axum::http::StatusCode;
use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::ports::{ActivityLog, FindingStore, FixedClock, ProblemStore};
use changehub_tests::fixtures::{alice, carol, seed, who};
use changehub_tests::http::{Answer, Tokens, call_as};
use changehub_tests::problem_contract::{self as contract, incident};
use changehub_tests::{aws, new_change, t0};
use serde_json::json;
use std::sync::Arc;

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    an_incident_is_counted_once_however_often_and_concurrently_it_is_recorded,
    recurring_incidents_open_one_problem_that_later_ones_join,
    problems_are_listed_newest_first_by_page_and_filter,
    a_problem_is_replaced_only_at_the_version_read,
);

/// `/problems` on one store: a tenant whose payments service has a problem
/// opened by three change-related incidents.
async fn problems_over_http<S: ChangeStore + ActivityLog + ProblemStore + FindingStore>(store: S) {
    let app = Arc::new(Changes::new(store, FixedClock::new(t0())));
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    for i in 0..3 {
        app.record_incident(&incident(&tenant, &format!("pd:{i}"), "payments", i, true)).await.expect("record");
    }
    let change = app
        .create(&alice(&tenant), new_change("fix retries", &["payments"], t0() + chrono::Duration::days(1), 1))
        .await
        .expect("create");
    let tokens = Tokens::new();
    let router: Router = changehub::http::router(app.clone(), tokens.authenticator());
    let call = |who: changehub::app::Caller, method: &'static str, path: String, body: Option<serde_json::Value>| {
        let (router, token) = (router.clone(), tokens.of(&who));
        async move { call_as(&router, &token, method, &path, body).await }
    };
    let ok = |a: &Answer| assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);

    let list = call(alice(&tenant), "GET", "/problems?service=payments&status=open".into(), None).await;
    ok(&list);
    let problems = list.body["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{:?}", list.body);
    let id = problems[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(problems[0]["recurs"], json!({"kind": "change_related"}));
    assert_eq!(problems[0]["incidents"], json!(["pd:2", "pd:1", "pd:0"]));
    let none = call(alice(&tenant), "GET", "/problems?status=closed".into(), None).await;
    assert_eq!(none.body["problems"], json!([]));
    let bad = call(alice(&tenant), "GET", "/problems?status=gone".into(), None).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));

    let got = call(alice(&tenant), "GET", format!("/problems/{id}"), None).await;
    ok(&got);
    assert_eq!(got.body["version"], 1);
    let missing = call(alice(&tenant), "GET", format!("/problems/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Alice neither owns payments nor sits on the cab.
    let fix = json!({"version": 1, "change_id": change.id.to_string()});
    let refused = call(alice(&tenant), "POST", format!("/problems/{id}/fix"), Some(fix.clone())).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    // An owner of payments links it.
    let owner = who(&tenant, "olga@example.com", &["payments-team", "engineers"]);
    let unknown = json!({"version": 1, "change_id": uuid::Uuid::now_v7().to_string()});
    let bad = call(owner.clone(), "POST", format!("/problems/{id}/fix"), Some(unknown)).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("change_id")));
    let fixed = call(owner.clone(), "POST", format!("/problems/{id}/fix"), Some(fix.clone())).await;
    ok(&fixed);
    assert_eq!((fixed.body["status"].as_str(), fixed.body["version"].as_u64()), (Some("fixed"), Some(2)));
    assert_eq!(fixed.body["fix"], json!(change.id.to_string()));
    assert_eq!(fixed.body["history"][1]["actor"], "olga@example.com");
    let stale = call(owner, "POST", format!("/problems/{id}/fix"), Some(fix)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    // The cab closes it; a closed problem takes no fix.
    let closed =
        call(carol(&tenant), "POST", format!("/problems/{id}/close"), Some(json!({"version": 2, "reason": "quiet"})))
            .await;
    ok(&closed);
    assert_eq!(closed.body["status"], "closed");
    let again = call(carol(&tenant), "POST", format!("/problems/{id}/close"), Some(json!({"version": 3}))).await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("problem_closed")));
    let closed_list = call(alice(&tenant), "GET", "/problems?status=closed".into(), None).await;
    assert_eq!(closed_list.body["problems"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn problems_over_http_on_the_embedded_store() {
    let (store, _dir) = embedded().await;
    problems_over_http(store).await;
}

#[tokio::test]
async fn problems_over_http_on_dynamodb() {
    problems_over_http(aws::dynamo_store().await).await;
}

#[tokio::test]
async fn an_incident_with_an_empty_id_is_refused_naming_the_field() {
    let (store, _dir) = embedded().await;
    let app = Changes::new(store, FixedClock::new(t0()));
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    let err = app.record_incident(&incident(&tenant, "", "payments", 0, false)).await.expect_err("empty id");
    assert!(err.to_string().contains("incident_id"), "{err}");
}
