//! The deployment gate over HTTP (`POST /gates/deployments`), on both
//! stores: a promotion to production waits for its change's approval and
//! window, other environments are recorded only, freezes and rejections
//! hold it with a reason, every answer lands in the activity log, and a
//! pending answer is held (long poll) until something changes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::{Extension, Router};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::activity::ActivityRetention;
use changehub::app::changes::ChangeStore;
use changehub::app::gate::Wakeups;
use changehub::app::{Caller, Changes};
use changehub::http::gates::LongPoll;
use changehub::ports::{ActivityLog, FixedClock, ProblemStore};
use changehub_tests::aws;
use changehub_tests::fixtures::{CATALOG_YAML, alice, carol, pat, root, who};
use changehub_tests::http::{Answer, Tokens, call_as, send};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    router: Router,
    tokens: Tokens,
    clock: &'static FixedClock,
    t0: DateTime<Utc>,
    tenant: String,
}

impl Api {
    async fn on<S: ChangeStore + ActivityLog + ProblemStore + changehub::ports::FindingStore>(store: S) -> Api {
        Self::keeping(store, ActivityRetention::default()).await
    }

    /// The api, keeping the gate's answers in the activity log for `retention`.
    async fn keeping<S: ChangeStore + ActivityLog + ProblemStore + changehub::ports::FindingStore>(
        store: S,
        retention: ActivityRetention,
    ) -> Api {
        let t0 = Utc::now();
        let clock: &'static FixedClock = Box::leak(Box::new(FixedClock::new(t0)));
        let tokens = Tokens::new();
        let changes = Changes::new(store, clock).with_gate_retention(retention);
        let router = changehub::http::router(Arc::new(changes), tokens.authenticator());
        let tenant = changehub_tests::unique("acme");
        // The catalog, with a group of pipelines holding the ingest (machine) role.
        let catalog = CATALOG_YAML.replacen("  auditor: [audit]\n", "  auditor: [audit]\n  ingest: [pipelines]\n", 1);
        assert_ne!(catalog, CATALOG_YAML, "the sample catalog's roles changed");
        let req = Request::builder()
            .method("PUT")
            .uri("/catalog")
            .header("authorization", format!("Bearer {}", tokens.of(&root(&tenant))))
            .header("content-type", "application/yaml")
            .body(Body::from(catalog))
            .expect("request");
        let a = send(&router, req).await;
        assert_eq!(a.status, StatusCode::OK, "catalog import: {:?}", a.body);
        Api { router, tokens, clock, t0, tenant }
    }

    async fn call(&self, who: &Caller, method: &str, path: &str, body: Option<Value>) -> Answer {
        call_as(&self.router, &self.tokens.of(who), method, path, body).await
    }

    fn at(&self, minutes: i64) -> DateTime<Utc> {
        self.t0 + Duration::minutes(minutes)
    }

    /// A deploy pipeline's token (the ingest role).
    fn pipeline(&self) -> Caller {
        who(&self.tenant, "ci-bot", &["pipelines"])
    }

    /// A payments change for production planned from 60 to 120 minutes on, drafted by Alice.
    async fn change(&self) -> String {
        let body = json!({"title": "Roll out payments 1.4.2", "type": "normal", "services": ["payments"],
                          "environment": "production", "planned_start": self.at(60), "planned_end": self.at(120)});
        let a = self.call(&alice(&self.tenant), "POST", "/changes", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "create: {:?}", a.body);
        a.body["id"].as_str().expect("id").to_owned()
    }

    async fn submit(&self, id: &str) {
        let a = self
            .call(
                &alice(&self.tenant),
                "POST",
                &format!("/changes/{id}/transitions"),
                Some(json!({"to": "submitted", "version": 1})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "submit: {:?}", a.body);
    }

    async fn decide(&self, who: &Caller, id: &str, decision: &str) {
        let body = json!({"decision": decision, "comment": "looked at it"});
        let a = self.call(who, "POST", &format!("/changes/{id}/decisions"), Some(body)).await;
        assert_eq!(a.status, StatusCode::OK, "{decision} by {}: {:?}", who.user, a.body);
    }

    async fn approve(&self, id: &str) {
        self.decide(&pat(&self.tenant), id, "approve").await;
        self.decide(&carol(&self.tenant), id, "approve").await;
    }

    async fn gate(&self, environment: &str, change: Option<&str>) -> Answer {
        let mut body = json!({"service": "payments", "environment": environment, "version": "1.4.2",
                              "sha": "3f2a9c1d0b7e4a55"});
        if let Some(id) = change {
            body["change"] = json!(id);
        }
        let a = self.call(&self.pipeline(), "POST", "/gates/deployments", Some(body)).await;
        assert_eq!(a.status, StatusCode::OK, "gate: {:?}", a.body);
        a
    }
}

fn answer(a: &Answer) -> (bool, &str, &str) {
    (
        a.body["allowed"].as_bool().unwrap_or_default(),
        a.body["status"].as_str().unwrap_or_default(),
        a.body["code"].as_str().unwrap_or_default(),
    )
}

async fn a_promotion_to_production_waits_for_approval_and_the_window(api: Api) {
    let id = api.change().await;
    let a = api.gate("staging", Some(&id)).await;
    assert_eq!(answer(&a), (true, "allowed", "recorded"), "staging is recorded only: {:?}", a.body);
    assert_eq!(a.body["gated"], json!(false));

    let a = api.gate("production", Some(&id)).await;
    assert_eq!(answer(&a), (false, "pending", "not_approved"), "{:?}", a.body);
    assert_eq!(a.body["change"]["id"], json!(id));
    assert!(a.body["reason"].as_str().unwrap_or_default().contains("submit it"), "{:?}", a.body);

    api.submit(&id).await;
    api.approve(&id).await;
    let a = api.gate("production", Some(&id)).await;
    assert_eq!(answer(&a), (false, "pending", "before_window"), "{:?}", a.body);
    let opens = api.at(45).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(a.body["reason"].as_str().unwrap_or_default().contains(&opens), "{:?}", a.body);

    api.clock.set(api.at(50));
    let a = api.gate("production", Some(&id)).await;
    assert_eq!(answer(&a), (true, "allowed", "allowed"), "within the start grace: {:?}", a.body);
    assert_eq!(a.body["change"]["state"], json!("approved"));
    let a = api.gate("production", None).await;
    assert_eq!(answer(&a), (true, "allowed", "allowed"), "found through the service's index: {:?}", a.body);
    assert_eq!(a.body["change"]["id"], json!(id));

    api.clock.set(api.at(121));
    let a = api.gate("production", Some(&id)).await;
    assert_eq!(answer(&a), (false, "refused", "window_ended"), "{:?}", a.body);
}

async fn every_answer_is_recorded_in_the_activity_log(api: Api) {
    let id = api.change().await;
    api.gate("production", Some(&id)).await;
    api.gate("staging", None).await;
    let a = api.call(&alice(&api.tenant), "GET", "/activity?service=payments", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let rows = a.body["activity"].as_array().cloned().unwrap_or_default();
    let gates: Vec<&Value> = rows.iter().filter(|r| r["detail_type"] == json!("Deployment Gate Decided")).collect();
    assert_eq!(gates.len(), 2, "{rows:?}");
    let refused = gates.iter().find(|r| r["decision"]["environment"] == json!("production")).expect("production");
    assert_eq!(refused["source"], json!("changehub.gate"));
    assert_eq!(refused["change_ids"], json!([id]));
    assert_eq!(refused["decision"]["asked_by"], json!("ci-bot"));
    assert_eq!(
        (&refused["decision"]["allowed"], &refused["decision"]["code"]),
        (&json!(false), &json!("not_approved"))
    );
    assert_eq!(refused["external_id"], json!("payments 1.4.2 (3f2a9c1d0b7e) to production"));
}

async fn gate_rows(api: &Api) -> Vec<Value> {
    let path = "/activity?source=changehub.gate";
    let a = api.call(&alice(&api.tenant), "GET", path, None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["activity"].as_array().cloned().unwrap_or_default()
}

/// The gate's rows leave the log after the activity retention: 30 days by default.
async fn the_answers_leave_the_log_after_the_retention(api: Api) {
    api.gate("staging", None).await;
    let rows = gate_rows(&api).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["expires_at"], json!(api.t0 + Duration::days(30)), "the default retention: {rows:?}");
    api.clock.set(api.t0 + Duration::days(30));
    assert_eq!(gate_rows(&api).await, Vec::<Value>::new(), "expired after thirty days");
}

/// The retention configured for the activity (`CHANGEHUB_ACTIVITY_RETENTION_DAYS`,
/// `serve --activity-retention-days`) holds for the gate's rows too.
#[tokio::test]
async fn a_configured_retention_keeps_the_answers_that_long() {
    let seven = ActivityRetention::days(7).expect("7 days");
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::keeping(EmbeddedStore::open(dir.path().join("kept.db")).expect("open"), seven).await;
    api.gate("staging", None).await;
    let rows = gate_rows(&api).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["expires_at"], json!(api.t0 + Duration::days(7)), "{rows:?}");
    api.clock.set(api.t0 + Duration::days(7) - Duration::seconds(1));
    assert_eq!(gate_rows(&api).await.len(), 1, "kept until then");
    api.clock.set(api.t0 + Duration::days(7));
    assert_eq!(gate_rows(&api).await, Vec::<Value>::new(), "expired after seven days");
}

/// Without a change id the gate reads the service's plannable and
/// implementation indexes: the drafts (and the ended history) the service
/// has planned around now add nothing to what a decision reads.
#[tokio::test]
async fn a_decision_by_service_reads_past_none_of_the_services_other_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("reads.db")).expect("open");
    let api = Api::on(store.clone()).await;
    let id = api.change().await;
    api.submit(&id).await;
    api.approve(&id).await;
    api.clock.set(api.at(50));
    let read = || async {
        let before = store.items_read();
        let a = api.gate("production", None).await;
        assert_eq!((answer(&a), &a.body["change"]["id"]), ((true, "allowed", "allowed"), &json!(id)), "{:?}", a.body);
        store.items_read() - before
    };
    read().await;
    let alone = read().await;
    for _ in 0..20 {
        api.change().await;
    }
    assert_eq!(read().await, alone, "twenty drafts in the window are not read");
}

async fn freezes_rejections_and_bad_requests_say_why(api: Api) {
    let id = api.change().await;
    api.submit(&id).await;
    api.approve(&id).await;
    let other = api.change().await;
    api.submit(&other).await;
    api.decide(&pat(&api.tenant), &other, "reject").await;
    api.clock.set(api.at(60));
    let freeze = json!({"id": "release-freeze", "name": "Release freeze", "services": ["payments"],
                        "schedule": {"kind": "one_off", "start": api.at(90), "end": api.at(600)},
                        "reason": "quarter end"});
    let a = api.call(&root(&api.tenant), "POST", "/freezes", Some(freeze)).await;
    assert!(a.status.is_success(), "freeze: {:?}", a.body);
    let a = api.gate("production", Some(&id)).await;
    assert_eq!(answer(&a), (false, "pending", "freeze_window"), "{:?}", a.body);
    assert!(a.body["reason"].as_str().unwrap_or_default().contains("Release freeze"), "{:?}", a.body);
    assert_eq!(a.body["recheck_at"], json!(api.at(600)));

    let a = api.gate("production", Some(&other)).await;
    assert_eq!(answer(&a), (false, "refused", "change_rejected"), "{:?}", a.body);

    let pipeline = api.pipeline();
    for (body, field) in [
        (json!({"service": "paymnets", "environment": "production", "version": "1"}), "service"),
        (json!({"service": "payments", "environment": "production"}), "version"),
        (json!({"service": "payments", "environment": "production", "sha": "nope"}), "sha"),
        (json!({"service": "payments", "environment": "production", "version": "1", "change": "x"}), "change"),
        (json!({"service": "payments", "environment": "production", "version": "1", "ref": "main"}), "ref"),
    ] {
        let a = api.call(&pipeline, "POST", "/gates/deployments", Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], json!(field), "{body}: {:?}", a.body);
    }
    let body = json!({"service": "payments", "environment": "production", "version": "1"});
    let a = api.call(&pipeline, "POST", "/gates/deployments?wait=soon", Some(body.clone())).await;
    assert_eq!((a.status, &a.body["error"]["field"]), (StatusCode::BAD_REQUEST, &json!("wait")), "{:?}", a.body);
    let a = api.call(&pipeline, "POST", "/gates/deployments?wait=10m", Some(body.clone())).await;
    assert_eq!((a.status, &a.body["error"]["field"]), (StatusCode::BAD_REQUEST, &json!("wait")), "{:?}", a.body);
    let nobody = who(&api.tenant, "mallory", &["visitors"]);
    let a = api.call(&nobody, "POST", "/gates/deployments", Some(body)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no role: {:?}", a.body);
}

async fn a_pending_answer_is_held_until_something_changes(api: Api) {
    let id = api.change().await;
    api.submit(&id).await;
    api.clock.set(api.at(60));
    let body = json!({"service": "payments", "environment": "production", "version": "1.4.2", "change": id});
    let token = api.tokens.of(&api.pipeline());
    // The api Lambda holds nothing: a pending answer comes at once, whatever the wait.
    let started = std::time::Instant::now();
    let a = call_as(&api.router, &token, "POST", "/gates/deployments?wait=60s", Some(body.clone())).await;
    assert_eq!(answer(&a), (false, "pending", "not_approved"), "{:?}", a.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered at once");

    let wakeups = Wakeups::new();
    let longest = std::time::Duration::from_secs(20);
    let held = api.router.clone().layer(Extension(LongPoll { wakeups: wakeups.clone(), longest }));
    let asking = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let a = call_as(&held, &token, "POST", "/gates/deployments?wait=20s", Some(body)).await;
        (a, started.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!asking.is_finished(), "a pending answer is held");
    api.approve(&id).await;
    wakeups.wake();
    let (a, took) = asking.await.expect("the held request");
    assert_eq!(answer(&a), (true, "allowed", "allowed"), "{:?}", a.body);
    assert!(took < std::time::Duration::from_secs(15), "answered when woken, not at the end of the wait: {took:?}");
}

async fn embedded() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (Api::on(EmbeddedStore::open(dir.path().join("api.db")).expect("open")).await, dir)
}

on_both_stores!(
    a_promotion_to_production_waits_for_approval_and_the_window,
    every_answer_is_recorded_in_the_activity_log,
    the_answers_leave_the_log_after_the_retention,
    freezes_rejections_and_bad_requests_say_why,
    a_pending_answer_is_held_until_something_changes,
);
