//! Failed deployments' post-mortem drafts and bake time, over HTTP on both
//! stores: a failed production deployment leaves its change `failed` with a
//! draft (the same in any order), an incident related later joins it, and
//! the review starts from it; a successful one with a bake time leaves its
//! change `verifying` until the escalation tick completes it, and an
//! incident during the bake makes it suspect, which holds the gate of its
//! next stage until a person clears it.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::app::escalation::Escalator;
use changehub::app::tagging::Tagging;
use changehub::domain::catalog::Span;
use changehub::domain::{Change, ChangeState, NewChange};
use changehub::ports::{ActivityLog, FindingStore, FixedClock, ImplementationReader, ProblemStore};
use changehub_tests::fixtures::{alice, carol, pat, who};
use changehub_tests::http::{Answer, Tokens, call_as};
use changehub_tests::t0;
use changehub_tests::tagging_contract::pagerduty_at;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::deployments::{Setup, changed, sample};
use super::store_contract::{contract_cases, embedded};
use changehub::ingest::Origin;
use changehub_tests::aws;

/// What these flows need of a store: the API's, the tagging's.
pub(crate) trait Store: ChangeStore + ActivityLog + ProblemStore + FindingStore + ImplementationReader {}
impl<T: ChangeStore + ActivityLog + ProblemStore + FindingStore + ImplementationReader> Store for T {}

fn m(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// The API on `store`, its clock at `now`.
fn api<S: Store>(store: &S, now: DateTime<Utc>) -> (Router, Tokens) {
    let clock: &'static FixedClock = Box::leak(Box::new(FixedClock::new(now)));
    let tokens = Tokens::new();
    (changehub::http::router(Arc::new(Changes::new(store.clone(), clock)), tokens.authenticator()), tokens)
}

async fn call(
    (router, tokens): &(Router, Tokens),
    who: &changehub::app::Caller,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    call_as(router, &tokens.of(who), method, path, body).await
}

/// The tagging consumer relates a PagerDuty incident on payments that started at `at`.
async fn incident<S: Store>(s: &Setup<S>, at: DateTime<Utc>) {
    let tagging = Tagging::new(s.app.store.clone(), s.app.catalog.clone(), FixedClock::new(at));
    let mut detail = pagerduty_at(&s.tenant(), "payments", at);
    detail["service"] = json!("payments");
    tagging.handle("Incident Triggered", &detail).await.expect("tagged");
}

/// The escalation tick at `now`: the changes it completed.
async fn tick<S: Store>(s: &Setup<S>, now: DateTime<Utc>) -> usize {
    let escalator =
        Escalator { store: s.app.store.clone(), catalog: s.app.catalog.clone(), clock: FixedClock::new(now) };
    escalator.tick().await.expect("tick").baked.len()
}

/// The GitHub failure sample as deployment `id`, `state` at `at`.
fn failure(tenant: &str, id: &str, state: &str, at: DateTime<Utc>) -> (String, Value) {
    sample(tenant, Origin::Github, "deployment_status", "deployment_status.failure.json", |d| {
        d["data"]["deployment_id"] = json!(id);
        d["data"]["state"] = json!(state);
        d["occurred_at"] = json!(at);
    })
}

mod contract {
    use super::*;

    pub async fn a_failed_deployment_drafts_its_postmortem_in_any_order_and_the_review_starts_from_it<S: Store>(
        store: S,
    ) {
        let s = Setup::new(store).await;
        let statuses =
            |id: &str| [failure(&s.tenant, id, "in_progress", m(-20)), failure(&s.tenant, id, "failure", m(-5))];
        // In order; then reversed and repeated.
        let [start, end] = statuses("1");
        let one = changed(&s.apply(&start).await);
        s.apply(&end).await;
        let [start, end] = statuses("2");
        let two = changed(&s.apply(&end).await);
        for e in [&end, &start, &end] {
            s.apply(e).await;
        }
        let http = api(&s.app.store, m(0));
        let get = |id: changehub::domain::ChangeId| {
            let http = &http;
            let s = &s;
            async move {
                let a = call(http, &alice(&s.tenant), "GET", &format!("/changes/{id}"), None).await;
                assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
                a.body
            }
        };
        let (first, second) = (get(one).await, get(two).await);
        assert_eq!((first["state"].as_str(), second["state"].as_str()), (Some("failed"), Some("failed")));
        let mask = |v: &Value, id: &str| {
            serde_json::from_str::<Value>(
                &v["postmortem"]
                    .to_string()
                    .replace(&format!("deployment {id} "), "deployment * ")
                    .replace(&format!("\"{id}\""), "\"*\""),
            )
            .expect("json")
        };
        assert_eq!(mask(&first, "1"), mask(&second, "2"), "the same draft whatever the order");
        let pm = &first["postmortem"];
        assert_eq!(pm["outcome"], "failed");
        assert_eq!(pm["deployed"]["sha"], "64db262264ce70c5b2b5b871318525461ab8eb77");
        assert_eq!((&pm["deployed"]["ref"], &pm["deployed"]["pull_request"]), (&json!("main"), &json!(418)));
        assert_eq!((&pm["by"], &pm["failing_job"]), (&json!("raj-acme"), &json!("deploy-production")));
        let log = "https://github.com/acme-corp/checkout-service/actions/runs/10987654321/job/30876543210";
        assert_eq!(pm["log_url"], log);
        assert_eq!(pm["error"], "Deployment failed: helm upgrade timed out waiting for rollout");
        assert_eq!((&pm["started_at"], &pm["at"]), (&json!(m(-20)), &json!(m(-5))));
        assert_eq!(pm["timeline"].as_array().map(Vec::len), Some(3), "{pm}");

        // An incident related later joins the draft.
        incident(&s, m(-3)).await;
        let c = get(one).await;
        assert_eq!(c["postmortem"]["incidents"].as_array().map(Vec::len), Some(1), "{}", c["postmortem"]);
        assert!(c["postmortem"]["timeline"].to_string().contains("pagerduty Q1AB2C3"), "{}", c["postmortem"]);

        // The review starts from the draft: nothing but the version is needed.
        let version = c["version"].clone();
        let path = format!("/changes/{one}/review");
        let reviewed = call(&http, &carol(&s.tenant), "POST", &path, Some(json!({"version": version}))).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{:?}", reviewed.body);
        let note = reviewed.body["review"]["done"]["note"].as_str().unwrap_or_default().to_owned();
        assert!(note.contains("failing job deploy-production") && note.contains("helm upgrade"), "{note}");
        // Corrections are kept; without a draft a note is required.
        let draft = NewChange::basic("Raise the pool", &["payments"], "production", m(-60), m(-30));
        let plain = s.app.create(&alice(&s.tenant), draft).await.expect("draft");
        let path = format!("/changes/{}/review", plain.id);
        let refused = call(&http, &carol(&s.tenant), "POST", &path, Some(json!({"version": 1}))).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "no review due: {:?}", refused.body);
    }

    pub async fn a_bake_completes_on_the_tick_and_an_incident_holds_the_next_stage_until_cleared<S: Store>(store: S) {
        let thirty = Span::parse("30m").expect("span");
        let s = Setup::with_catalog(store, |c| {
            c.services.iter_mut().filter(|s| s.name.as_str() == "payments").for_each(|s| s.bake_time = thirty.clone())
        })
        .await;
        let draft = NewChange::basic("Roll out checkout v2", &["payments"], "production", m(-30), m(180));
        let draft = s.app.create(&alice(&s.tenant), draft).await.expect("draft");
        s.approve_and_schedule(&draft).await;
        // The first region deploys: verifying until 30 minutes after it ended.
        for (state, at) in [("in_progress", m(-10)), ("success", m(5))] {
            let (t, mut d) = super::super::deployments::github(&s.tenant, "eu-1", state, at);
            d["data"]["environment"] = json!("production");
            d["data"]["change_ids"] = json!([draft.id.to_string()]);
            s.apply(&(t, d)).await;
        }
        let http = api(&s.app.store, m(15));
        let path = format!("/changes/{}", draft.id);
        let c = call(&http, &alice(&s.tenant), "GET", &path, None).await;
        assert_eq!((c.body["state"].as_str(), &c.body["bake"]["until"]), (Some("verifying"), &json!(m(35))));
        let listed = call(
            &http,
            &alice(&s.tenant),
            "GET",
            "/changes?state=verifying&from=2026-12-01T00:00:00Z&to=2026-12-03T00:00:00Z",
            None,
        )
        .await;
        assert_eq!(listed.body["changes"].as_array().map(Vec::len), Some(1), "listed as verifying: {:?}", listed.body);
        assert_eq!(tick(&s, m(20)).await, 0, "still baking");

        // The next stage (another region) may go while nothing is wrong.
        let ask = json!({"service": "payments", "environment": "production", "sha": "64db262", "change": draft.id});
        let gate = call(&http, &alice(&s.tenant), "POST", "/gates/deployments", Some(ask.clone())).await;
        assert_eq!((gate.status, &gate.body["allowed"]), (StatusCode::OK, &json!(true)), "{:?}", gate.body);

        // An incident on payments during the bake: suspect, the next stage held, no completion.
        incident(&s, m(12)).await;
        let c: Change = s.change(&draft.id).await;
        assert_eq!(c.bake.as_ref().and_then(|b| b.suspect.as_ref()).map(|x| x.started_at), Some(m(12)));
        let held = call(&http, &alice(&s.tenant), "POST", "/gates/deployments", Some(ask.clone())).await;
        assert_eq!((&held.body["allowed"], &held.body["code"]), (&json!(false), &json!("suspect")), "{:?}", held.body);
        assert_eq!(held.body["status"], "pending");
        assert!(held.body["reason"].as_str().unwrap_or_default().contains("clear-suspect"), "{:?}", held.body);
        assert_eq!(tick(&s, m(40)).await, 0, "a suspect change does not complete on its own");

        // Only an owner of payments (or the cab) clears it, with a note; audited.
        let clear = format!("/changes/{}/clear-suspect", draft.id);
        let body = json!({"version": c.version, "note": "the incident was a card network outage"});
        let refused = call(&http, &pat(&s.tenant), "POST", &clear, Some(body.clone())).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
        let olga = who(&s.tenant, "olga@example.com", &["payments-team", "engineers"]);
        let cleared = call(&http, &olga, "POST", &clear, Some(body.clone())).await;
        assert_eq!(cleared.status, StatusCode::OK, "{:?}", cleared.body);
        assert_eq!(cleared.body["bake"]["cleared"]["by"], "olga@example.com");
        let again = json!({"version": cleared.body["version"], "note": "again"});
        let twice = call(&http, &olga, "POST", &clear, Some(again)).await;
        assert_eq!((twice.status, &twice.body["error"]["code"]), (StatusCode::CONFLICT, &json!("not_suspect")));
        let audit = call(&http, &alice(&s.tenant), "GET", &format!("{path}/audit"), None).await;
        assert!(audit.body.to_string().contains("suspect_cleared"), "{:?}", audit.body);
        let open = call(&http, &alice(&s.tenant), "POST", "/gates/deployments", Some(ask)).await;
        assert_eq!(open.body["allowed"], true, "{:?}", open.body);

        // Past the bake's end the tick completes it, once.
        assert_eq!(tick(&s, m(40)).await, 1);
        assert_eq!(tick(&s, m(41)).await, 0);
        let done = s.change(&draft.id).await;
        assert_eq!(done.state, ChangeState::Completed);
        assert_eq!(done.implementation.and_then(|i| i.ended_at()), Some(m(5)), "the deployment's end, not the bake's");
    }
}

contract_cases!(
    a_failed_deployment_drafts_its_postmortem_in_any_order_and_the_review_starts_from_it,
    a_bake_completes_on_the_tick_and_an_incident_holds_the_next_stage_until_cleared,
);
