//! The change API over HTTP, run twice: on the embedded store (as `changehub
//! serve` runs it) and on DynamoDB on the AWS emulator (as the api Lambda runs it).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::Caller;
use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::ports::{ActivityLog, SystemClock};
use changehub_tests::aws;
use changehub_tests::fixtures::{CATALOG_YAML, alice, carol, pat, root, who};
use changehub_tests::http::{Answer, Tokens, call, call_as, send};
use serde_json::{Value, json};
use std::sync::Arc;

/// A router on one store, with the tokens its key signs.
#[derive(Clone)]
struct Api {
    router: Router,
    tokens: Tokens,
}

impl Api {
    async fn on<S: ChangeStore + ActivityLog + changehub::ports::ProblemStore + changehub::ports::FindingStore>(
        store: S,
    ) -> Api {
        let tokens = Tokens::new();
        let app = Arc::new(Changes::new(store, SystemClock));
        let router = changehub::http::router(app, tokens.authenticator());
        Api { router, tokens }
    }

    /// A fresh tenant with the sample catalog imported through the API (YAML body).
    async fn tenant(&self) -> String {
        let tenant = changehub_tests::unique("acme");
        let req = Request::builder()
            .method("PUT")
            .uri("/catalog")
            .header("authorization", format!("Bearer {}", self.tokens.of(&root(&tenant))))
            .header("content-type", "application/yaml")
            .body(Body::from(CATALOG_YAML))
            .expect("request");
        let a = send(&self.router, req).await;
        assert_eq!(a.status, StatusCode::OK, "catalog import: {:?}", a.body);
        tenant
    }

    async fn call(&self, who: &Caller, method: &str, path: &str, body: Option<Value>) -> Answer {
        call_as(&self.router, &self.tokens.of(who), method, path, body).await
    }

    async fn create(&self, who: &Caller, body: Value) -> String {
        let a = self.call(who, "POST", "/changes", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "create: {:?}", a.body);
        a.body["id"].as_str().expect("id").to_owned()
    }

    async fn transition(&self, who: &Caller, id: &str, to: &str, version: u64) -> Answer {
        self.call(who, "POST", &format!("/changes/{id}/transitions"), Some(json!({"to": to, "version": version}))).await
    }

    async fn decide(&self, who: &Caller, id: &str, decision: &str) -> Answer {
        self.call(who, "POST", &format!("/changes/{id}/decisions"), Some(json!({"decision": decision}))).await
    }

    async fn get(&self, who: &Caller, id: &str) -> Value {
        let a = self.call(who, "GET", &format!("/changes/{id}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        a.body
    }
}

async fn embedded() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (Api::on(EmbeddedStore::open(dir.path().join("api.db")).expect("open")).await, dir)
}

async fn dynamodb() -> Api {
    Api::on(aws::dynamo_store().await).await
}

fn new_change() -> Value {
    serde_json::from_str(include_str!("../../../events/api/new-change.json")).expect("sample")
}

fn error_of(a: &Answer) -> (&str, Option<&str>) {
    (a.body["error"]["code"].as_str().unwrap_or("<no code>"), a.body["error"]["field"].as_str())
}

fn message_of(a: &Answer) -> &str {
    a.body["error"]["message"].as_str().unwrap_or("")
}

/// The walkthrough of the README: a draft, two approval levels, implementation, closed.
async fn a_change_moves_from_draft_to_closed_through_two_approval_levels(api: Api) {
    let t = api.tenant().await;
    let created = api.call(&alice(&t), "POST", "/changes", Some(new_change())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(created.headers["location"], format!("/changes/{id}").as_str());
    assert_eq!(created.body["state"], "draft");
    assert_eq!(created.body["requester"], "alice@example.com");
    assert_eq!(created.body["tenant"], t.as_str());
    assert!(created.body["risk"]["score"].as_i64().is_some(), "risk is scored at creation: {}", created.body);

    let submitted = api.transition(&alice(&t), &id, "submitted", 1).await;
    assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
    assert_eq!(submitted.body["state"], "submitted");
    let steps = submitted.body["approval"]["steps"].as_array().expect("an approval plan");
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["team-lead", "cab"]);
    assert!(steps[0]["due_at"].is_string() && steps[1]["due_at"].is_null(), "only level 1 is running: {steps:?}");
    // Issue 9, point 9: the sample's durations read back as written, on the plan as in the catalog.
    assert_eq!((&steps[0]["sla"], &steps[1]["sla"]), (&json!("4h"), &json!("1d")), "{steps:?}");
    let catalog = api.call(&alice(&t), "GET", "/catalog", None).await;
    let payments = &catalog.body["catalog"]["services"][0];
    assert_eq!(payments["approval"][1]["sla"], json!("1d"), "{:?}", catalog.body);
    assert_eq!(catalog.body["catalog"]["emergency"]["review_within"], json!("72h"));

    let level1 = api.decide(&pat(&t), &id, "approve").await;
    assert_eq!(level1.status, StatusCode::OK, "{:?}", level1.body);
    assert_eq!(level1.body["state"], "submitted");
    let level2 = api.decide(&carol(&t), &id, "approve").await;
    assert_eq!(level2.status, StatusCode::OK, "{:?}", level2.body);
    assert_eq!(level2.body["state"], "approved");

    let mut version = level2.body["version"].as_u64().expect("version");
    // Its planned window lies ahead: implementing starts only inside it, so the cab moves it to now, audited.
    let now = chrono::Utc::now();
    let window = json!({"version": version, "planned_start": now, "planned_end": now + chrono::Duration::hours(1),
                        "reason": "starting now"});
    let refused = api.call(&alice(&t), "POST", &format!("/changes/{id}/reschedule"), Some(window.clone())).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the requester alone leaves the approved window: {:?}",
        refused.body
    );
    let moved = api.call(&carol(&t), "POST", &format!("/changes/{id}/reschedule"), Some(window)).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    version += 1;
    for to in ["scheduled", "implementing", "completed", "closed"] {
        let moved = api.transition(&alice(&t), &id, to, version).await;
        assert_eq!(moved.status, StatusCode::OK, "to {to}: {:?}", moved.body);
        assert_eq!(moved.body["state"], to);
        version += 1;
        assert_eq!(moved.body["version"], version);
    }

    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let range = format!("from={}&to={}", at(now - chrono::Duration::hours(1)), at(now + chrono::Duration::hours(2)));
    let listed = api.call(&alice(&t), "GET", &format!("/changes?service=payments&{range}"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["changes"][0]["id"], id.as_str());
    assert_eq!(listed.body["changes"][0]["state"], "closed");

    let auditor = who(&t, "ava@example.com", &["audit"]);
    let audit = api.call(&auditor, "GET", &format!("/changes/{id}/audit"), None).await;
    assert_eq!(audit.status, StatusCode::OK, "an auditor reads the trail: {:?}", audit.body);
    let trail: Vec<changehub::domain::AuditEntry> =
        serde_json::from_value(audit.body["entries"].clone()).expect("entries");
    changehub::domain::audit::verify_chain(&trail).expect("chain verifies");
    let actors: Vec<_> = trail.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actors,
        ["alice@example.com", "alice@example.com", "pat@example.com", "carol@example.com", "carol@example.com"]
            .into_iter()
            .chain(std::iter::repeat_n("alice@example.com", 4))
            .collect::<Vec<_>>()
    );
}

async fn refused_moves_say_why(api: Api) {
    let t = api.tenant().await;
    let id = api.create(&alice(&t), new_change()).await;
    let illegal = api.transition(&alice(&t), &id, "implementing", 1).await;
    assert_eq!(illegal.status, StatusCode::CONFLICT);
    assert_eq!(error_of(&illegal), ("illegal_transition", Some("to")));
    let message = message_of(&illegal);
    assert!(message.contains("from draft to implementing") && message.contains("submitted, cancelled"), "{message}");

    assert_eq!(api.transition(&alice(&t), &id, "submitted", 1).await.status, StatusCode::OK);
    let stale = api.transition(&alice(&t), &id, "cancelled", 1).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(error_of(&stale), ("version_conflict", Some("version")));
    assert!(message_of(&stale).contains("it is at version 2"));

    let self_approved = api.transition(&alice(&t), &id, "approved", 2).await;
    assert_eq!(error_of(&self_approved), ("decision_required", Some("to")));
    assert!(message_of(&self_approved).contains("/decisions"), "{}", message_of(&self_approved));

    let own = api.decide(&who(&t, "alice@example.com", &["engineers", "payments-leads"]), &id, "approve").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert!(
        message_of(&own).starts_with("dual control: alice@example.com requested this change"),
        "{}",
        message_of(&own)
    );
    let skipping = api.decide(&carol(&t), &id, "approve").await;
    assert_eq!(skipping.status, StatusCode::FORBIDDEN, "level 2 cannot decide before level 1");
    assert!(
        message_of(&skipping).contains("level 1 (team-lead of service payments) needs"),
        "{}",
        message_of(&skipping)
    );

    let missing = api.transition(&alice(&t), &uuid::Uuid::now_v7().to_string(), "submitted", 1).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&missing).0, "not_found");
}

async fn bad_input_gets_a_clear_error_and_stores_nothing(api: Api) {
    let t = api.tenant().await;
    let token = api.tokens.of(&alice(&t));
    let post = |body: &str, content_type: &str| {
        Request::builder()
            .method("POST")
            .uri("/changes")
            .header("authorization", format!("Bearer {token}"))
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
        let a = send(&api.router, req).await;
        assert_eq!(a.status, status, "{what}: {:?}", a.body);
        assert_eq!(error_of(&a), (code, field), "{what}");
    }
    for (edit, field) in [
        (json!({"type": "sideways"}), "type"),
        (json!({"planned_end": "2030-11-30T00:00:00Z"}), "planned_end"),
        (json!({"services": ["payments", "Bad Name"]}), "services[1]"),
        (json!({"category": "unknown-category"}), "category"),
        (json!({"type": "standard"}), "template"),
        (json!({"type": "standard", "template": "no-such-template"}), "template"),
        (json!({"impact": {"data": "everything"}}), "impact.data"),
    ] {
        let mut body = new_change();
        for (k, v) in edit.as_object().expect("edit") {
            body[k] = v.clone();
        }
        let a = api.call(&alice(&t), "POST", "/changes", Some(body)).await;
        assert_eq!(error_of(&a), ("invalid_request", Some(field)), "{edit}: {:?}", a.body);
    }

    for (path, field) in [
        ("/changes?state=finished", "state"),
        ("/changes?approver=someone", "approver"),
        ("/changes?state=draft&cursor=garbage", "cursor"),
        ("/changes?approver=me&cursor=garbage", "cursor"),
        ("/changes?service=payments&from=yesterday", "from"),
        ("/changes?service=payments&from=2030-12-02T00:00:00Z&to=2030-12-01T00:00:00Z", "to"),
        ("/changes?service=payments&limit=0", "limit"),
        ("/changes?service=payments&limit=many", "limit"),
        ("/changes?service=payments&cursor=garbage", "cursor"),
        ("/changes?service=payments&sevrice=x", "sevrice"),
        ("/changes/not-a-uuid", "id"),
    ] {
        let a = api.call(&alice(&t), "GET", path, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {:?}", a.body);
        assert_eq!(error_of(&a), ("invalid_request", Some(field)), "{path}");
    }

    assert_eq!(api.call(&alice(&t), "DELETE", "/changes", None).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&call(&api.router, "GET", "/nowhere", None).await).0, "route_not_found");
    // Nothing was stored by any of it.
    let listed = api
        .call(&alice(&t), "GET", "/changes?service=payments&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", None)
        .await;
    assert_eq!(listed.body["changes"], json!([]));
}

async fn tenants_are_isolated(api: Api) {
    let (acme, globex) = (api.tenant().await, api.tenant().await);
    let id = api.create(&alice(&acme), new_change()).await;
    assert_eq!(api.call(&alice(&acme), "GET", &format!("/changes/{id}"), None).await.status, StatusCode::OK);
    let outsider = alice(&globex);
    assert_eq!(api.call(&outsider, "GET", &format!("/changes/{id}"), None).await.status, StatusCode::NOT_FOUND);
    let list = "/changes?service=payments&from=2030-12-01T00:00:00Z&to=2030-12-02T00:00:00Z";
    assert_eq!(api.call(&outsider, "GET", list, None).await.body["changes"], json!([]));
    assert_eq!(api.call(&outsider, "GET", &format!("/changes/{id}/audit"), None).await.status, StatusCode::NOT_FOUND);
    // An approver of globex is nobody in acme, even with a group of the same name: the token's tenant decides.
    let a = api.decide(&pat(&globex), &id, "approve").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// Many writers race on one version: exactly one wins, the rest get 409.
async fn concurrent_transitions_have_one_winner(api: Api) {
    let t = api.tenant().await;
    let id = api.create(&alice(&t), new_change()).await;
    const RACERS: usize = 50;
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (api, id, t) = (api.clone(), id.clone(), t.clone());
            let to = if i % 2 == 0 { "submitted" } else { "cancelled" };
            tokio::spawn(async move { api.transition(&alice(&t), &id, to, 1).await })
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
    let audit = api.call(&alice(&t), "GET", &format!("/changes/{id}/audit"), None).await;
    assert_eq!(audit.body["entries"].as_array().expect("entries").len(), 2);
}

/// Fifty approvers of level 1, having read the submitted change, decide at
/// once: one decision wins, the other 49 get 409 and, retrying, learn that
/// level 1 is decided.
async fn concurrent_approvers_have_one_winner(api: Api) {
    let t = api.tenant().await;
    let id = api.create(&alice(&t), new_change()).await;
    assert_eq!(api.transition(&alice(&t), &id, "submitted", 1).await.status, StatusCode::OK);
    const APPROVERS: usize = 50;
    let racers: Vec<_> = (0..APPROVERS)
        .map(|i| {
            let (api, id, t) = (api.clone(), id.clone(), t.clone());
            tokio::spawn(async move {
                let lead = who(&t, &format!("lead-{i}@example.com"), &["payments-leads"]);
                let body = json!({"decision": "approve", "version": 2});
                let a = api.call(&lead, "POST", &format!("/changes/{id}/decisions"), Some(body)).await;
                (lead, a)
            })
        })
        .collect();
    let mut winners = 0;
    let mut losers = Vec::new();
    for r in racers {
        let (lead, a) = r.await.expect("task");
        match a.status {
            StatusCode::OK => winners += 1,
            StatusCode::CONFLICT => {
                assert_eq!(error_of(&a), ("version_conflict", Some("version")), "{:?}", a.body);
                losers.push(lead);
            }
            other => panic!("unexpected {other}: {:?}", a.body),
        }
    }
    assert_eq!((winners, losers.len()), (1, APPROVERS - 1));
    let change = api.get(&alice(&t), &id).await;
    assert_eq!(change["approval"]["steps"][0]["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(change["version"], 3, "one decision, one version");
    let retry = api.decide(&losers[0], &id, "approve").await;
    assert_eq!(retry.status, StatusCode::FORBIDDEN, "level 1 is decided; level 2 needs the cab: {:?}", retry.body);
    assert!(message_of(&retry).contains("level 2 (cab of service payments)"), "{}", message_of(&retry));
}

/// Refused writes are security events, with the caller, the operation, the
/// path and the message, repeats counted; a refused read is not one. What
/// waits for a decision is listed for those who may take it.
async fn refused_writes_are_security_events_and_waiting_changes_are_listed(api: Api) {
    let t = api.tenant().await;
    let id = api.create(&alice(&t), new_change()).await;
    assert_eq!(api.transition(&alice(&t), &id, "submitted", 1).await.status, StatusCode::OK);
    let waiting = |a: &Answer| a.body["changes"].as_array().map(|c| c.iter().any(|c| c["id"] == json!(id)));
    let for_pat = api.call(&pat(&t), "GET", "/changes?approver=me", None).await;
    assert_eq!((for_pat.status, waiting(&for_pat)), (StatusCode::OK, Some(true)), "{:?}", for_pat.body);
    let for_carol = api.call(&carol(&t), "GET", "/changes?approver=me", None).await;
    assert_eq!(waiting(&for_carol), Some(false), "level 2 is not open yet");
    let submitted = api
        .call(
            &alice(&t),
            "GET",
            "/changes?state=submitted&requester=me&from=2030-12-01T00:00:00Z&to=2030-12-02T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(waiting(&submitted), Some(true), "{:?}", submitted.body);

    for _ in 0..2 {
        let own = api.decide(&alice(&t), &id, "approve").await;
        assert_eq!(own.status, StatusCode::FORBIDDEN, "{:?}", own.body);
    }
    let freeze = json!({"id": "x", "name": "x", "schedule": {"kind": "month_end", "business_days": 1}});
    assert_eq!(api.call(&alice(&t), "POST", "/freezes", Some(freeze)).await.status, StatusCode::FORBIDDEN);
    let read = api.call(&alice(&t), "GET", "/audit/security", None).await;
    assert_eq!(read.status, StatusCode::FORBIDDEN, "a requester does not read security events");

    let auditor = who(&t, "ava@example.com", &["audit"]);
    let a = api.call(&auditor, "GET", "/audit/security", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let events = a.body["events"].as_array().cloned().unwrap_or_default();
    let count = |action: &str| -> u64 {
        events.iter().filter(|e| e["action"] == json!(action)).filter_map(|e| e["count"].as_u64()).sum()
    };
    assert_eq!(count("POST /changes/{id}/decisions"), 2, "{events:?}");
    assert_eq!(count("POST /freezes"), 1, "{events:?}");
    assert_eq!(events.len(), events.iter().filter(|e| e["user"] == json!("alice@example.com")).count());
    assert!(
        events.iter().all(|e| !e["action"].as_str().is_some_and(|a| a.starts_with("GET "))),
        "reads are not events"
    );
    let decision =
        events.iter().find(|e| e["action"] == json!("POST /changes/{id}/decisions")).cloned().unwrap_or_default();
    assert_eq!(decision["target"], json!(format!("/changes/{id}/decisions")));
    assert!(decision["reason"].as_str().is_some_and(|r| r.starts_with("dual control")), "{decision}");
}

/// `GET /changes` follows every writer of a change: a draft edited onto
/// other services and another window is listed there and no longer where it
/// was; a rejected change reworked into a new draft lists both, each in its
/// state; the draft waits for nobody.
async fn edited_and_reworked_changes_are_listed_where_they_now_are(api: Api) {
    let t = api.tenant().await;
    let id = api.create(&alice(&t), new_change()).await;
    let ids = |a: &Answer| -> Vec<String> {
        let changes = a.body["changes"].as_array().cloned().unwrap_or_default();
        changes.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect()
    };
    let listed = |query: String| {
        let (api, t) = (api.clone(), t.clone());
        async move {
            let a = api.call(&alice(&t), "GET", &format!("/changes?{query}"), None).await;
            assert_eq!(a.status, StatusCode::OK, "{query}: {:?}", a.body);
            ids(&a)
        }
    };
    let before = || "from=2030-12-01T00:00:00Z&to=2030-12-02T00:00:00Z".to_owned();
    let after = |filter: &str| format!("from=2030-12-10T00:00:00Z&to=2030-12-11T00:00:00Z{filter}");
    assert_eq!(listed(before()).await, [id.as_str()]);

    let moved = json!({"version": 1, "services": ["ledger"],
        "planned_start": "2030-12-10T22:00:00Z", "planned_end": "2030-12-10T23:00:00Z"});
    let edited = api.call(&alice(&t), "PATCH", &format!("/changes/{id}"), Some(moved)).await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    assert!(listed(before()).await.is_empty(), "left the old window");
    assert_eq!(listed(after("")).await, [id.as_str()], "listed once in the new window");
    assert_eq!(listed(after("&state=draft&service=ledger")).await, [id.as_str()], "on its new service");
    assert!(listed(after("&state=draft&service=payments")).await.is_empty(), "not on the one it left");

    assert_eq!(api.transition(&alice(&t), &id, "submitted", 2).await.status, StatusCode::OK);
    let lee = who(&t, "lee@example.com", &["ledger-leads"]);
    let reject = json!({"decision": "reject", "comment": "no rollback plan"});
    let rejected = api.call(&lee, "POST", &format!("/changes/{id}/decisions"), Some(reject)).await;
    assert_eq!(rejected.status, StatusCode::OK, "{:?}", rejected.body);
    let version = api.get(&alice(&t), &id).await["version"].as_u64().expect("version");
    let fix = json!({"version": version, "description": "rollback: restore the snapshot"});
    let reworked = api.call(&alice(&t), "POST", &format!("/changes/{id}/rework"), Some(fix)).await;
    assert_eq!(reworked.status, StatusCode::CREATED, "{:?}", reworked.body);
    let draft = reworked.body["id"].as_str().expect("id").to_owned();
    let mut both = listed(after("")).await;
    both.sort();
    let mut expected = vec![id.clone(), draft.clone()];
    expected.sort();
    assert_eq!(both, expected, "both changes in the window");
    assert_eq!(listed(after("&state=draft")).await, [draft.as_str()]);
    assert_eq!(listed(after("&state=rejected")).await, [id.as_str()]);
    let waiting = api.call(&lee, "GET", "/changes?approver=me", None).await;
    assert!(ids(&waiting).is_empty(), "nothing waits: {:?}", waiting.body);
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { let (r, _dir) = embedded().await; super::$case(r).await; } )*
        }
        mod dynamodb_store {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(dynamodb().await).await; } )*
        }
    };
}

on_both_stores!(
    a_change_moves_from_draft_to_closed_through_two_approval_levels,
    concurrent_approvers_have_one_winner,
    refused_moves_say_why,
    bad_input_gets_a_clear_error_and_stores_nothing,
    tenants_are_isolated,
    concurrent_transitions_have_one_winner,
    refused_writes_are_security_events_and_waiting_changes_are_listed,
    edited_and_reworked_changes_are_listed_where_they_now_are,
);

/// The api Lambda's edge: an API Gateway HTTP API event from events/apigw goes
/// through lambda_http's adapter (what `lambda_http::run` uses) to the router
/// on DynamoDB, and the Lambda response comes back.
#[tokio::test]
async fn api_gateway_events_reach_the_router_on_dynamodb() {
    use changehub::http::bearer::{Authenticator, ClaimNames, apigw_claims};
    use lambda_http::tower::Service;
    // Assembled as functions/api assembles it.
    let app = Arc::new(Changes::new(aws::dynamo_store().await, SystemClock));
    let router = changehub::http::router(app, Authenticator::Upstream(ClaimNames::default()))
        .layer(axum::middleware::from_fn(apigw_claims));
    let mut lambda = lambda_http::Adapter::from(router);
    let invoke = |payload: &str| {
        let request: lambda_http::request::LambdaRequest = serde_json::from_str(payload).expect("API Gateway event");
        lambda_http::LambdaEvent::new(request, lambda_http::Context::default())
    };
    // The catalog first (events/apigw/import-catalog.json holds events/catalog/acme.yaml, as YAML).
    let imported =
        lambda.call(invoke(include_str!("../../../events/apigw/import-catalog.json"))).await.expect("invoke");
    let imported = serde_json::to_value(imported).expect("lambda response");
    assert_eq!(imported["statusCode"], 200, "{imported}");
    let sent: Value = serde_json::from_str(include_str!("../../../events/apigw/import-catalog.json")).expect("event");
    assert_eq!(sent["body"], CATALOG_YAML, "events/apigw/import-catalog.json carries the sample catalog");
    let created = lambda.call(invoke(include_str!("../../../events/apigw/create-change.json"))).await.expect("invoke");
    let created = serde_json::to_value(created).expect("lambda response");
    assert_eq!(created["statusCode"], 201, "{created}");
    let change: Value = serde_json::from_str(created["body"].as_str().expect("body")).expect("json body");
    assert_eq!(change["tenant"], "acme");
    assert_eq!(change["requester"], "alice@example.com");

    let listed = lambda.call(invoke(include_str!("../../../events/apigw/list-changes.json"))).await.expect("invoke");
    let listed = serde_json::to_value(listed).expect("lambda response");
    assert_eq!(listed["statusCode"], 200, "{listed}");
    let body: Value = serde_json::from_str(listed["body"].as_str().expect("body")).expect("json body");
    assert_eq!(body["changes"][0]["id"], change["id"]);

    let health = serde_json::to_value(
        lambda.call(invoke(include_str!("../../../events/apigw/health.json"))).await.expect("invoke"),
    )
    .expect("resp");
    assert_eq!(health["statusCode"], 200);

    // Without the authorizer's claims (a misconfigured route) nothing is served.
    let mut bare: Value = serde_json::from_str(include_str!("../../../events/apigw/list-changes.json")).expect("event");
    bare["requestContext"].as_object_mut().expect("context").remove("authorizer");
    let refused = lambda.call(invoke(&bare.to_string())).await.expect("invoke");
    let refused = serde_json::to_value(refused).expect("lambda response");
    assert_eq!(refused["statusCode"], 401, "{refused}");
}

/// An API Gateway event of events/apigw whose token (the `Authorization` header
/// API Gateway verified, and the authorizer's flattened claims) lists `groups`.
fn apigw_event_with_groups(sample: &str, groups: &[&str]) -> String {
    use base64::Engine;
    let mut event: Value = serde_json::from_str(sample).expect("API Gateway event");
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    claims["groups"] = json!(format!("[{}]", groups.join(" ")));
    let mut payload = claims.clone();
    payload["groups"] = json!(groups);
    let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!("{}.{}.c2lnbmF0dXJl", encode(&json!({"kid": "EXAMPLE"})), encode(&payload));
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event.to_string()
}

/// API Gateway flattens `["eng changehub-admins"]` to `[eng changehub-admins]`:
/// the api Lambda reads the groups from the verified token, so one group whose
/// name holds a space (or contains the bootstrap group's name) stays one group.
#[tokio::test]
async fn api_gateway_group_names_with_spaces_stay_whole() {
    use changehub::http::bearer::{Authenticator, ClaimNames, apigw_claims};
    use lambda_http::tower::Service;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("edge.db")).expect("open");
    let app = Arc::new(Changes::new(store, SystemClock));
    let router = changehub::http::router(app, Authenticator::Upstream(ClaimNames::default()))
        .layer(axum::middleware::from_fn(apigw_claims));
    let mut lambda = lambda_http::Adapter::from(router);
    let mut invoke = async |payload: String| {
        let request: lambda_http::request::LambdaRequest = serde_json::from_str(&payload).expect("API Gateway event");
        let event = lambda_http::LambdaEvent::new(request, lambda_http::Context::default());
        serde_json::to_value(lambda.call(event).await.expect("invoke")).expect("lambda response")
    };
    let import = include_str!("../../../events/apigw/import-catalog.json");
    let refused = invoke(apigw_event_with_groups(import, &["eng changehub-admins"])).await;
    assert_eq!(refused["statusCode"], 403, "one group named `eng changehub-admins` is not an admin: {refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().expect("body")).expect("json body");
    assert!(
        message_of(&Answer { status: StatusCode::FORBIDDEN, body: body.clone(), headers: Default::default() })
            .contains("your groups (eng changehub-admins) grant no role"),
        "{body}"
    );
    let imported = invoke(apigw_event_with_groups(import, &["Payments Leads", "changehub-admins"])).await;
    assert_eq!(imported["statusCode"], 200, "two groups, one of them the bootstrap group: {imported}");
}

/// The request span names the acting user, so every line logged while serving
/// a request says who made it.
#[tokio::test]
async fn the_request_span_records_the_acting_user() {
    use std::sync::{Mutex, OnceLock};
    /// Every log line of this test binary. The subscriber is the global one:
    /// a thread's own would miss spans whose callsites other tests' threads
    /// registered first, while no subscriber was listening.
    #[derive(Clone, Copy)]
    struct Lines;
    static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LINES.get_or_init(Default::default).lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let subscriber = tracing_subscriber::fmt().json().with_current_span(true).with_writer(|| Lines).finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    let (api, _dir) = embedded().await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let req = Request::builder()
        .uri("/me")
        .header("authorization", format!("Bearer {}", api.tokens.of(&alice("acme"))))
        .header("x-request-id", &request_id)
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&api.router, req).await.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&LINES.get_or_init(Default::default).lock().expect("log buffer")).into_owned();
    let response = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "response" && l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no response line for request {request_id} in {text}"));
    assert_eq!(response["span"]["user"], "alice@example.com", "{response}");
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
            Just(json!("2030-12-01T22:00:00Z")),
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
                let (api, _dir) = embedded().await;
                let t = api.tenant().await;
                let id = api.create(&alice(&t), new_change()).await;
                let token = api.tokens.of(&alice(&t));
                for path in ["/changes".to_owned(), format!("/changes/{id}/transitions"), format!("/changes/{id}/decisions"), "/freezes".to_owned(), "/catalog".to_owned()] {
                    let a = call_as(&api.router, &token, "POST", &path, Some(body.clone())).await;
                    assert!(!a.status.is_server_error(), "{path} {body}: {:?}", a.body);
                    let req = Request::builder().method("POST").uri(&path).header("authorization", format!("Bearer {token}")).header("content-type", "application/json").body(Body::from(raw.clone())).expect("req");
                    let a = send(&api.router, req).await;
                    assert!(!a.status.is_server_error(), "{path} raw: {:?}", a.body);
                }
            });
        }
    }
}
