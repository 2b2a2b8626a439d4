//! Delegation (out-of-office) over HTTP, on both stores: an approver hands a
//! level to a delegate for a period; the delegate decides it on their behalf,
//! audited, while dual control still holds through the delegation.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::changes::ChangeStore;
use changehub::app::{Caller, Changes};
use changehub::ports::{ActivityLog, FindingStore, FixedClock, ProblemStore};
use changehub_tests::aws;
use changehub_tests::fixtures::{CATALOG_YAML, alice, carol, root, who};
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
    async fn on<S: ChangeStore + ActivityLog + ProblemStore + FindingStore>(store: S) -> Api {
        let t0 = Utc::now();
        let clock: &'static FixedClock = Box::leak(Box::new(FixedClock::new(t0)));
        let tokens = Tokens::new();
        let router = changehub::http::router(Arc::new(Changes::new(store, clock)), tokens.authenticator());
        let tenant = changehub_tests::unique("acme");
        let req = Request::builder()
            .method("PUT")
            .uri("/catalog")
            .header("authorization", format!("Bearer {}", tokens.of(&root(&tenant))))
            .header("content-type", "application/yaml")
            .body(Body::from(CATALOG_YAML))
            .expect("request");
        assert_eq!(send(&router, req).await.status, StatusCode::OK, "catalog import");
        Api { router, tokens, clock, t0, tenant }
    }

    async fn call(&self, who: &Caller, method: &str, path: &str, body: Option<Value>) -> Answer {
        call_as(&self.router, &self.tokens.of(who), method, path, body).await
    }

    /// Sam: security (approver), decides the security part of ledger's `security-and-cab`.
    fn sam(&self) -> Caller {
        who(&self.tenant, "sam@example.com", &["security", "engineers"])
    }

    /// Dave: a payments lead (approver), Sam's delegate.
    fn dave(&self) -> Caller {
        who(&self.tenant, "dave@example.com", &["payments-leads", "engineers"])
    }

    fn lee(&self) -> Caller {
        who(&self.tenant, "lee@example.com", &["ledger-leads"])
    }

    fn at(&self, hours: i64) -> DateTime<Utc> {
        self.t0 + Duration::hours(hours)
    }

    async fn delegate(&self, from: i64, until: i64) -> String {
        let body = json!({"delegate": "dave@example.com", "levels": ["security-and-cab"],
                          "from": self.at(from), "until": self.at(until), "reason": "on leave"});
        let a = self.call(&self.sam(), "POST", "/delegations", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.body["id"].as_str().expect("id").to_owned()
    }

    /// A ledger change by `requester`, submitted, its level 1 approved by
    /// Lee and the cab's part of level 2 by Carol: security is left.
    async fn waiting_for_security(&self, requester: &Caller) -> String {
        let body = json!({"title": "Reindex the ledger", "type": "normal", "services": ["ledger"],
                          "environment": "production", "planned_start": "2030-12-01T22:00:00Z",
                          "planned_end": "2030-12-01T23:00:00Z"});
        let a = self.call(requester, "POST", "/changes", Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "create: {:?}", a.body);
        let id = a.body["id"].as_str().expect("id").to_owned();
        let a = self
            .call(
                requester,
                "POST",
                &format!("/changes/{id}/transitions"),
                Some(json!({"to": "submitted", "version": 1})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "submit: {:?}", a.body);
        for approver in [self.lee(), carol(&self.tenant)] {
            let a = self.decide(&approver, &id).await;
            assert_eq!(a.status, StatusCode::OK, "{}: {:?}", approver.user, a.body);
        }
        id
    }

    async fn decide(&self, who: &Caller, id: &str) -> Answer {
        self.call(who, "POST", &format!("/changes/{id}/decisions"), Some(json!({"decision": "approve"}))).await
    }
}

fn refusal(a: &Answer) -> (StatusCode, &str, Option<&str>) {
    (a.status, a.body["error"]["code"].as_str().unwrap_or(""), a.body["error"]["field"].as_str())
}

fn message_of(a: &Answer) -> &str {
    a.body["error"]["message"].as_str().unwrap_or("")
}

async fn bad_delegations_are_refused_naming_the_field(api: Api) {
    let ok = json!({"delegate": "dave@example.com", "levels": ["security-and-cab"],
                    "from": api.at(0), "until": api.at(24), "reason": "on leave"});
    let with = |patch: Value| {
        let mut body = ok.clone();
        if let (Some(b), Some(p)) = (body.as_object_mut(), patch.as_object()) {
            b.extend(p.clone());
        }
        body
    };
    for (what, body, field) in [
        ("backwards", with(json!({"until": api.at(-1)})), "until"),
        ("too long", with(json!({"until": api.at(24 * 91)})), "until"),
        ("a level Sam does not decide", with(json!({"levels": ["team-lead"]})), "levels"),
        ("an unknown level", with(json!({"levels": ["nope"]})), "levels"),
        ("to himself", with(json!({"delegate": "sam@example.com"})), "delegate"),
        ("without a reason", with(json!({"reason": " "})), "reason"),
    ] {
        let a = api.call(&api.sam(), "POST", "/delegations", Some(body)).await;
        assert_eq!(refusal(&a), (StatusCode::BAD_REQUEST, "invalid_request", Some(field)), "{what}: {:?}", a.body);
    }
    let a = api.call(&alice(&api.tenant), "POST", "/delegations", Some(ok.clone())).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a requester has nothing to delegate: {:?}", a.body);
    let all = with(json!({"levels": []}));
    let a = api.call(&api.sam(), "POST", "/delegations", Some(all)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!((&a.body["levels"], &a.body["groups"]), (&json!(["security-and-cab"]), &json!(["security"])));
}

async fn a_delegate_decides_on_behalf_of_the_delegator_audited(api: Api) {
    let id = api.delegate(0, 24 * 7).await;
    let listed = api.call(&api.dave(), "GET", "/delegations", None).await;
    assert_eq!(listed.body["delegations"][0]["active"], json!(true), "{:?}", listed.body);
    let pat = who(&api.tenant, "pat@example.com", &["payments-leads"]);
    let others = api.call(&pat, "GET", "/delegations", None).await;
    assert_eq!(others.body["delegations"], json!([]), "an approver sees only their own: {:?}", others.body);

    let change = api.waiting_for_security(&alice(&api.tenant)).await;
    let own = api.decide(&pat, &change).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "without a delegation a payments lead cannot: {:?}", own.body);
    let a = api.decide(&api.dave(), &change).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["state"], "approved");
    let step = &a.body["approval"]["steps"][1];
    let by_dave = step["approvals"].as_array().and_then(|v| v.iter().find(|d| d["by"] == "dave@example.com").cloned());
    let by_dave = by_dave.expect("Dave's approval");
    assert_eq!(by_dave["group"], "security");
    assert_eq!(by_dave["on_behalf_of"], json!({"user": "sam@example.com", "delegation": id}));

    let audit = api.call(&carol(&api.tenant), "GET", &format!("/changes/{change}/audit"), None).await;
    let last = audit.body["entries"].as_array().and_then(|e| e.last().cloned()).unwrap_or_default();
    assert_eq!(last["actor"], "dave@example.com");
    assert_eq!(last["reason"], json!(format!("on behalf of sam@example.com (delegation {id})")), "{last}");

    let blank = api.call(&api.sam(), "DELETE", &format!("/delegations/{id}?reason=%20"), None).await;
    assert_eq!(refusal(&blank), (StatusCode::BAD_REQUEST, "invalid_request", Some("reason")), "{:?}", blank.body);
    let a = api.call(&api.sam(), "DELETE", &format!("/delegations/{id}?reason=back%20early"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["revoked"]["reason"], "back early", "{:?}", a.body);
    let trail = api.call(&carol(&api.tenant), "GET", "/audit/governance", None).await;
    let entries = trail.body["entries"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&Value> = entries.iter().map(|e| &e["action"]).collect();
    assert!(
        actions.contains(&&json!("delegation_created")) && actions.contains(&&json!("delegation_revoked")),
        "{actions:?}"
    );
    let revoked = entries.iter().find(|e| e["action"] == "delegation_revoked").cloned().unwrap_or_default();
    assert_eq!(revoked["reason"], "back early", "the revocation's reason is audited: {revoked}");
}

async fn dual_control_holds_through_a_delegation(api: Api) {
    api.delegate(0, 24 * 7).await;
    let by_sam = api.waiting_for_security(&api.sam()).await;
    let a = api.decide(&api.dave(), &by_sam).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{:?}", a.body);
    assert!(message_of(&a).starts_with("dual control: sam@example.com requested this change"), "{}", message_of(&a));
    let by_dave = api.waiting_for_security(&api.dave()).await;
    let a = api.decide(&api.dave(), &by_dave).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{:?}", a.body);
    assert!(message_of(&a).starts_with("dual control: dave@example.com requested"), "{}", message_of(&a));

    // Carol holds a delegation from Sam too: her cab approval and Sam's
    // security part of the all_of level would be one person twice.
    let body = json!({"delegate": "carol@example.com", "from": api.at(0), "until": api.at(24), "reason": "cover"});
    let a = api.call(&api.sam(), "POST", "/delegations", Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let change = api.waiting_for_security(&alice(&api.tenant)).await;
    let a = api.decide(&carol(&api.tenant), &change).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{:?}", a.body);
    assert!(message_of(&a).contains("already approved by carol@example.com"), "{}", message_of(&a));
}

async fn revoked_upcoming_and_ended_delegations_decide_nothing(api: Api) {
    let id = api.delegate(0, 24).await;
    let change = api.waiting_for_security(&alice(&api.tenant)).await;
    let pat = who(&api.tenant, "pat@example.com", &["payments-leads"]);
    let a = api.call(&pat, "DELETE", &format!("/delegations/{id}"), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "only its delegator, the cab or an admin: {:?}", a.body);
    let a = api.call(&api.sam(), "DELETE", &format!("/delegations/{id}"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let a = api.decide(&api.dave(), &change).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "revoked: {:?}", a.body);

    api.delegate(48, 72).await;
    let listed = api.call(&api.dave(), "GET", "/delegations", None).await;
    assert_eq!(listed.body["delegations"][0]["active"], json!(false), "upcoming: {:?}", listed.body);
    let a = api.decide(&api.dave(), &change).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "not yet in force: {:?}", a.body);
    api.clock.set(api.at(80));
    let a = api.decide(&api.dave(), &change).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "ended: {:?}", a.body);
    api.clock.set(api.at(50));
    let a = api.decide(&api.dave(), &change).await;
    assert_eq!(a.status, StatusCode::OK, "in force: {:?}", a.body);
}

async fn embedded() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (Api::on(EmbeddedStore::open(dir.path().join("api.db")).expect("open")).await, dir)
}

on_both_stores!(
    bad_delegations_are_refused_naming_the_field,
    a_delegate_decides_on_behalf_of_the_delegator_audited,
    dual_control_holds_through_a_delegation,
    revoked_upcoming_and_ended_delegations_decide_nothing,
);
