//! GitHub deployment protection rules answered by the hub, against a fake
//! GitHub: answered at once, kept and answered when the change is decided or
//! a freeze ends (through the escalation tick's due index), timed out before
//! GitHub's limit and alarmed, answered once whatever the copies, and sent
//! again after GitHub failed. Every callback is checked exactly: path,
//! installation token, body. The store's contract runs on both stores.

use changehub::adapters::embedded::EmbeddedStore;
use changehub::adapters::env_secrets::{StaticSecrets, parse_document};
use changehub::adapters::local_bus::LocalBus;
use changehub::adapters::scm::{Endpoints, ForgeClient, Retries, Timeouts, base_url};
use changehub::app::Changes;
use changehub::app::changes::DecisionRequest;
use changehub::app::governance::LiftFreeze;
use changehub::app::protection::{Applied, GATE_DUE, GATE_REQUESTED, Protection, ProtectionTicker};
use changehub::domain::approval::Verdict;
use changehub::domain::freeze::FreezeWindow;
use changehub::domain::gate::FREEZE_RECHECK;
use changehub::domain::gate::protection::{
    CallbackState, GITHUB_LIMIT, MAX_WAITING, ProtectionStatus, TIMEOUT_MARGIN, UNLISTED_RECHECK,
};
use changehub::domain::{ChangeId, ChangeState, HubEvent};
use changehub::ingest::Origin;
use changehub::ingest::canonical::{DeploymentGate, Detail, ServiceResolution};
use changehub::ports::{Clock, FixedClock, ProtectionStore};
use changehub_tests::drift_contract::Told;
use changehub_tests::fixtures::{self, alice, pat, root, submit_and_approve, to};
use changehub_tests::forge::{APP_ID, APP_KEY, Answer, FakeForge, answer};
use changehub_tests::{aws, new_change, protection_contract as contract};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::store_contract::{contract_cases, embedded};

contract_cases!(
    protection_requests_are_written_conditionally_and_due_by_their_due_at,
    requests_waiting_on_a_change_are_kept_per_change_and_written_conditionally,
);

const REPOSITORY: &str = "acme-corp/checkout-service";
const INSTALLATION: u64 = 51234567;
const RUN: &str = "10987654321";
const SHA: &str = "64db262264ce70c5b2b5b871318525461ab8eb77";

type Clk = &'static FixedClock;

struct World {
    changes: std::sync::Arc<Changes<EmbeddedStore, Clk>>,
    protection: Protection<EmbeddedStore, Clk, ForgeClient<StaticSecrets>, Told>,
    ticker: ProtectionTicker<EmbeddedStore, LocalBus, Clk>,
    due: UnboundedReceiver<HubEvent>,
    told: Told,
    forge: FakeForge,
    clock: Clk,
    t0: DateTime<Utc>,
    tenant: String,
    _dir: tempfile::TempDir,
}

/// Retries fast enough for a test.
fn quick() -> Retries {
    Retries {
        attempts: 3,
        min_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_retry_after: std::time::Duration::from_secs(5),
    }
}

impl World {
    /// A tenant on the sample catalog, with the test GitHub App's credentials.
    async fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("hub.db")).expect("open");
        let t0 = Utc::now();
        let clock: Clk = Box::leak(Box::new(FixedClock::new(t0)));
        let changes = std::sync::Arc::new(Changes::new(store.clone(), clock));
        let tenant = changehub_tests::unique("acme");
        let catalog = fixtures::catalog();
        changes.catalog.replace(&root(&tenant), catalog, None, &changes.clock).await.expect("import the catalog");
        let forge = FakeForge::start().await;
        let credentials = json!({ &tenant: {"github_app_id": [APP_ID], "github_app_key": [APP_KEY]} });
        let document = parse_document(&credentials.to_string()).expect("secrets");
        let url = base_url(&forge.url).expect("url");
        let endpoints = Endpoints { github_api: url.clone(), gitlab: url };
        let callbacks =
            ForgeClient::new(StaticSecrets::new(document.document), endpoints, Timeouts::default(), quick());
        let told = Told::default();
        let protection = Protection { changes: changes.clone(), callbacks, notifier: told.clone() };
        let bus = LocalBus::new();
        let due = bus.add_rule("protection", changehub::app::protection::rule_pattern().expect("pattern"));
        let ticker = ProtectionTicker { store, bus, clock };
        World { changes, protection, ticker, due, told, forge, clock, t0, tenant, _dir: dir }
    }

    fn at(&self, minutes: i64) -> DateTime<Utc> {
        self.t0 + Duration::minutes(minutes)
    }

    /// The "Release freeze" of payments, from `start` to `end`, put by an admin.
    async fn freeze(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let freeze: FreezeWindow = serde_json::from_value(json!({
            "id": "release-freeze", "name": "Release freeze", "services": ["payments"],
            "schedule": {"kind": "one_off", "start": start, "end": end}, "reason": "quarter end"
        }))
        .expect("freeze");
        self.changes.governance().put_freeze(&root(&self.tenant), freeze).await.expect("freeze");
    }

    /// A payments change for production planned from 60 minutes on for ten hours, drafted by Alice.
    async fn drafted(&self) -> ChangeId {
        let change = new_change("Raise the pool", &["payments"], self.at(60), 10);
        self.changes.create(&alice(&self.tenant), change).await.expect("create").id
    }

    async fn submitted(&self) -> ChangeId {
        let id = self.drafted().await;
        self.changes.transition(&alice(&self.tenant), &id, to(ChangeState::Submitted, 1)).await.expect("submit");
        id
    }

    async fn approved(&self) -> ChangeId {
        let id = self.drafted().await;
        submit_and_approve(&self.changes, &self.tenant, &id).await;
        id
    }

    /// GitHub's request to deploy to `environment`, on `change` (in its ref), as hub event `event_id`.
    fn request(&self, event_id: &str, environment: &str, change: Option<ChangeId>) -> Value {
        let git_ref = change.map_or("refs/heads/main".to_owned(), |c| format!("refs/heads/chg/{c}"));
        let detail = Detail {
            event_id: event_id.to_owned(),
            tenant: self.tenant.clone(),
            origin: Origin::Github,
            service: Some("payments".into()),
            service_resolution: ServiceResolution { key: None, reason: None },
            environment: Some(environment.into()),
            occurred_at: self.clock.now(),
            actor: Some("raj-acme".into()),
            external_id: "1834567890".into(),
            url: None,
            delivery_id: format!("delivery-{event_id}"),
            data: DeploymentGate {
                repository: REPOSITORY.into(),
                environment: environment.into(),
                git_ref: Some(git_ref),
                sha: Some(SHA.into()),
                callback_url: format!(
                    "https://api.github.com/repos/{REPOSITORY}/actions/runs/{RUN}/deployment_protection_rule"
                ),
                change_ids: change.iter().map(ChangeId::to_string).collect(),
                installation: Some(INSTALLATION),
            },
        };
        serde_json::to_value(detail).expect("detail")
    }

    async fn handle(&self, detail_type: &str, detail: &Value) -> Applied {
        self.protection.handle(detail_type, detail).await.expect("handled")
    }

    async fn change_event(&self, detail_type: &str, id: &ChangeId) -> Applied {
        self.handle(detail_type, &json!({"tenant": self.tenant, "change_id": id, "event_id": format!("{id}-9")})).await
    }

    /// One escalation tick at `at`, and the due events it put, each handled.
    async fn tick_at(&mut self, at: DateTime<Utc>) -> Vec<Applied> {
        self.clock.set(at);
        self.ticker.tick().await.expect("tick");
        let mut applied = Vec::new();
        while let Ok(event) = self.due.try_recv() {
            if event.detail_type == GATE_DUE {
                applied.push(self.handle(&event.detail_type, &event.detail).await);
            }
        }
        applied
    }

    /// The answers posted (state, comment), in order.
    fn answers(&self) -> Vec<(String, String)> {
        self.forge.protection_answers().into_iter().map(|(_, state, comment)| (state, comment)).collect()
    }
}

fn callback_path() -> String {
    format!("/repos/{REPOSITORY}/actions/runs/{RUN}/deployment_protection_rule")
}

#[tokio::test]
async fn a_request_on_an_approved_change_in_its_window_is_approved_at_once_with_the_installation_token() {
    let w = World::new().await;
    let id = w.approved().await;
    w.clock.set(w.at(60));
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    assert_eq!(applied, Applied::Answered(CallbackState::Approved));

    let exchange = w.forge.calls_to("/access_tokens");
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange[0].path, format!("/app/installations/{INSTALLATION}/access_tokens"));
    let callbacks = w.forge.callbacks();
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    let call = &callbacks[0];
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", callback_path().as_str()));
    assert_eq!(call.auth.as_deref(), Some(format!("Bearer ghs_{INSTALLATION}_1").as_str()));
    let comment = call.body["comment"].as_str().unwrap_or_default();
    assert_eq!(call.body, json!({"environment_name": "production", "state": "approved", "comment": comment}));
    assert!(comment.contains(&id.to_string()) && comment.contains("Raise the pool"), "{comment}");

    let stored = w.changes.store.get_protection(&id_tenant(&w), "github-d1-0").await.expect("read").expect("kept");
    assert!(matches!(stored.status, ProtectionStatus::Answered { .. }), "{stored:?}");
    assert_eq!(stored.due_at, None, "nothing is due on an answered request");
}

fn id_tenant(w: &World) -> changehub::domain::TenantId {
    changehub::domain::TenantId::parse(&w.tenant).expect("tenant")
}

#[tokio::test]
async fn a_non_production_environment_is_approved_and_recorded() {
    let w = World::new().await;
    let id = w.submitted().await;
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "staging", Some(id))).await;
    assert_eq!(applied, Applied::Answered(CallbackState::Approved));
    let answers = w.answers();
    assert!(answers[0].1.contains("recorded only"), "{answers:?}");
}

#[tokio::test]
async fn a_request_on_a_change_not_yet_approved_is_kept_and_approved_when_the_change_is() {
    let w = World::new().await;
    let id = w.submitted().await;
    w.clock.set(w.at(60));
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    assert!(matches!(applied, Applied::Waiting { change, .. } if change == id), "{applied:?}");
    let callbacks = w.forge.callbacks();
    assert_eq!(callbacks.len(), 1, "a status report only: {callbacks:?}");
    assert_eq!(callbacks[0].body.get("state"), None, "no answer yet: {callbacks:?}");
    assert!(callbacks[0].body["comment"].as_str().unwrap_or_default().contains("waiting"), "{callbacks:?}");

    w.changes.decide(&pat(&w.tenant), &id, fixtures::approve()).await.expect("level 1");
    let level_one = w.change_event("Change Edited", &id).await;
    assert!(
        matches!(&level_one, Applied::Each(each) if matches!(each[..], [(_, Applied::Waiting { .. })])),
        "one level is not approval: {level_one:?}"
    );
    w.changes.decide(&fixtures::carol(&w.tenant), &id, fixtures::approve()).await.expect("level 2");
    let applied = w.change_event("Change Approved", &id).await;
    assert_eq!(applied, Applied::Each(vec![("github-d1-0".into(), Applied::Answered(CallbackState::Approved))]));
    let answers = w.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, "approved");

    let again = w.change_event("Change Scheduled", &id).await;
    assert!(matches!(again, Applied::Each(ref each) if each.is_empty()), "answered once: {again:?}");
    assert_eq!(w.answers().len(), 1);
}

#[tokio::test]
async fn a_kept_request_is_rejected_when_its_change_is() {
    let w = World::new().await;
    let id = w.submitted().await;
    w.clock.set(w.at(60));
    w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    let no = DecisionRequest { decision: Verdict::Reject, version: None, comment: Some("not now".into()) };
    w.changes.decide(&pat(&w.tenant), &id, no).await.expect("reject");
    let applied = w.change_event("Change Rejected", &id).await;
    assert_eq!(applied, Applied::Each(vec![("github-d1-0".into(), Applied::Answered(CallbackState::Rejected))]));
    let answers = w.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, "rejected");
    let by = format!("change {id} was rejected by pat@example.com; open a new change. Reason: not now");
    assert!(answers[0].1.ends_with(&by), "names the rejecter and their comment: {answers:?}");
}

#[tokio::test]
async fn a_request_held_by_a_freeze_is_approved_when_the_freeze_ends() {
    let mut w = World::new().await;
    let id = w.approved().await;
    w.freeze(w.at(30), w.at(70)).await;
    w.clock.set(w.at(60));
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    assert_eq!(applied, Applied::Waiting { change: id, until: w.at(70) }, "kept until the freeze ends");
    let report = w.forge.callbacks();
    assert!(report[0].body["comment"].as_str().unwrap_or_default().contains("Release freeze"), "{report:?}");

    assert!(w.tick_at(w.at(69)).await.is_empty(), "nothing is due before the freeze ends");
    let applied = w.tick_at(w.at(70)).await;
    assert_eq!(applied, vec![Applied::Answered(CallbackState::Approved)]);
    assert_eq!(w.answers().len(), 1);
    assert!(w.tick_at(w.at(200)).await.is_empty(), "answered: nothing more is due");
}

/// A long freeze holds a request, which is decided again every
/// `FREEZE_RECHECK` (still held, GitHub told only once); once the freeze is
/// lifted early, the next recheck approves it.
#[tokio::test]
async fn a_request_held_by_a_freeze_lifted_early_is_approved_at_its_next_recheck() {
    let mut w = World::new().await;
    let id = w.approved().await;
    w.freeze(w.at(30), w.at(60 * 24 * 7)).await;
    w.clock.set(w.at(60));
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    assert_eq!(applied, Applied::Waiting { change: id, until: w.at(60) + FREEZE_RECHECK }, "decided again soon");
    assert!(w.tick_at(w.at(60) + FREEZE_RECHECK - Duration::minutes(1)).await.is_empty(), "not due yet");
    let again = w.tick_at(w.at(60) + FREEZE_RECHECK).await;
    assert_eq!(again, vec![Applied::Waiting { change: id, until: w.at(60) + FREEZE_RECHECK * 2 }], "still frozen");
    assert_eq!(w.forge.callbacks().len(), 1, "GitHub is told why once: {:?}", w.forge.callbacks());

    let lift = LiftFreeze { reason: "the quarter closed early".into() };
    w.changes.governance().delete_freeze(&root(&w.tenant), "release-freeze", lift).await.expect("lift");
    let applied = w.tick_at(w.at(60) + FREEZE_RECHECK * 2).await;
    assert_eq!(applied, vec![Applied::Answered(CallbackState::Approved)]);
    assert_eq!(w.answers().len(), 1);
    assert!(w.tick_at(w.at(60 * 24 * 8)).await.is_empty(), "answered: nothing more is due");
}

/// More requests than a change's waiting list holds: the listed ones are
/// answered on the change's approval; the one left off is never dropped but
/// decided again every few minutes, and answered at its next recheck.
#[tokio::test]
async fn a_request_beyond_a_full_waiting_list_is_rechecked_soon_and_answered_after_its_change() {
    let mut w = World::new().await;
    let id = w.submitted().await;
    w.clock.set(w.at(60));
    for n in 0..MAX_WAITING {
        let applied = w.handle(GATE_REQUESTED, &w.request(&format!("github-d{n}-0"), "production", Some(id))).await;
        assert!(matches!(applied, Applied::Waiting { until, .. } if until > w.at(60 + 24 * 60)), "{applied:?}");
    }
    let late = w.handle(GATE_REQUESTED, &w.request("github-late-0", "production", Some(id))).await;
    assert_eq!(late, Applied::Waiting { change: id, until: w.at(60) + UNLISTED_RECHECK }, "left off the full list");
    let stored = w.changes.store.get_protection(&id_tenant(&w), "github-late-0").await.expect("read").expect("kept");
    assert_eq!(stored.due_at, Some(w.at(60) + UNLISTED_RECHECK), "{stored:?}");

    let applied = w.tick_at(w.at(65)).await;
    assert!(matches!(applied[..], [Applied::Waiting { until, .. }] if until == w.at(70)), "still waiting: {applied:?}");
    approve_both_levels(&w, &id).await;
    let approved = w.change_event("Change Approved", &id).await;
    let Applied::Each(each) = approved else { panic!("{approved:?}") };
    assert_eq!(each.len(), MAX_WAITING, "every listed request");
    assert!(each.iter().all(|(_, a)| *a == Applied::Answered(CallbackState::Approved)), "{each:?}");
    assert!(!each.iter().any(|(r, _)| r == "github-late-0"), "not listed");
    assert_eq!(w.tick_at(w.at(70)).await, vec![Applied::Answered(CallbackState::Approved)], "at its recheck");
    assert_eq!(w.answers().len(), MAX_WAITING + 1);
    assert!(w.tick_at(w.at(200)).await.is_empty(), "all answered");
}

/// Both approval levels of the submitted change approve it.
async fn approve_both_levels(w: &World, id: &ChangeId) {
    w.changes.decide(&pat(&w.tenant), id, fixtures::approve()).await.expect("level 1");
    w.changes.decide(&fixtures::carol(&w.tenant), id, fixtures::approve()).await.expect("level 2");
}

#[tokio::test]
async fn a_request_still_waiting_near_githubs_limit_is_rejected_as_timed_out_and_the_cab_alarmed() {
    let mut w = World::new().await;
    let id = w.submitted().await;
    let requested = w.t0;
    w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    let timeout = requested + GITHUB_LIMIT - TIMEOUT_MARGIN;
    assert!(w.tick_at(timeout - Duration::minutes(1)).await.is_empty());
    let applied = w.tick_at(timeout).await;
    assert_eq!(applied, vec![Applied::Answered(CallbackState::Rejected)]);
    let answers = w.answers();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, "rejected");
    assert!(answers[0].1.contains("timed out"), "{answers:?}");
    let told = w.told.all();
    assert!(!told.is_empty(), "the CAB is alarmed");
    assert!(told.iter().all(|n| n.attributes.get("kind").map(String::as_str) == Some("Deployment Gate Alarm")));
    assert!(told.iter().any(|n| n.attributes.get("audience").map(String::as_str) == Some("cab")), "{told:?}");
}

#[tokio::test]
async fn a_request_delivered_twice_or_at_once_is_answered_once() {
    let w = World::new().await;
    let id = w.approved().await;
    w.clock.set(w.at(60));
    let request = w.request("github-d1-0", "production", Some(id));
    let (a, b) = tokio::join!(w.handle(GATE_REQUESTED, &request), w.handle(GATE_REQUESTED, &request));
    let answered = [&a, &b].iter().filter(|x| matches!(x, Applied::Answered(_))).count();
    assert_eq!(answered, 1, "one copy answers, the other does nothing: {a:?} {b:?}");
    let again = w.handle(GATE_REQUESTED, &request).await;
    assert!(matches!(again, Applied::Skipped(_)), "{again:?}");
    assert_eq!(w.answers().len(), 1);
}

#[tokio::test]
async fn an_answer_github_failed_is_retried_then_sent_again_from_the_due_index() {
    let mut w = World::new().await;
    let id = w.approved().await;
    w.clock.set(w.at(60));
    // A first answer issues the installation token, so that the failures land on the callbacks.
    w.handle(GATE_REQUESTED, &w.request("github-d0-0", "staging", Some(id))).await;
    w.forge.forget();
    w.forge.fail_next([answer(502), Answer { retry_after: Some("0"), ..answer(429) }]);
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d1-0", "production", Some(id))).await;
    assert_eq!(applied, Applied::Answered(CallbackState::Approved), "retried inside after 502 and 429");
    assert_eq!(w.forge.protection_answers().len(), 3, "three attempts: {:?}", w.forge.calls());

    w.forge.forget();
    let other = w.approved().await;
    w.forge.fail_next([answer(502), answer(502), answer(502)]);
    let applied = w.handle(GATE_REQUESTED, &w.request("github-d2-0", "production", Some(other))).await;
    let Applied::Retrying { attempts: 1, next_at } = applied else { panic!("kept to send again: {applied:?}") };
    assert_eq!(w.forge.protection_answers().len(), 3, "three attempts at the answer");
    assert!(w.tick_at(next_at - Duration::seconds(1)).await.is_empty());
    let applied = w.tick_at(next_at).await;
    assert_eq!(applied, vec![Applied::Answered(CallbackState::Approved)]);
    let answers = w.forge.protection_answers();
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|(path, state, _)| path == &callback_path() && state == "approved"), "{answers:?}");
}
