//! Properties of the change process, over arbitrary sequences of API calls
//! by arbitrary people (HTTP requests to the router, each with its caller's
//! bearer token, on the embedded store): nobody
//! approves their own change, no approval level is skipped, one person
//! approves at one level only, approval comes only from decisions (no
//! emergency reaches approved without another person's decision), and no
//! change enters a freeze window without an audited override (an emergency's
//! holding only once someone else approved it).

use axum::http::StatusCode;
use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::{Caller, Changes};
use changehub::domain::catalog::Role;
use changehub::domain::freeze::{FreezeWindow, Schedule};
use changehub::domain::{AuditAction, Change, ChangeId, ChangeState, ChangeType};
use changehub::ports::FixedClock;
use changehub_tests::fixtures::{seed, who};
use changehub_tests::http::{Tokens, call_as};
use changehub_tests::t0;
use chrono::Duration;
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

const TENANT: &str = "acme";

/// The people: requesters, approvers of payments' level 1, the CAB (level 2), an admin.
fn people() -> Vec<Caller> {
    vec![
        who(TENANT, "alice", &["engineers"]),
        who(TENANT, "bob", &["engineers", "payments-leads"]),
        who(TENANT, "pat", &["payments-leads"]),
        who(TENANT, "carol", &["cab"]),
        who(TENANT, "dave", &["cab", "payments-leads"]),
        Caller { granted: [Role::Admin].into(), ..who(TENANT, "root", &["changehub-admins", "cab"]) },
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        by: usize,
        kind: ChangeType,
        in_freeze: bool,
    },
    Submit {
        change: usize,
        by: usize,
        override_reason: bool,
    },
    Decide {
        change: usize,
        by: usize,
        approve: bool,
    },
    /// Trying to approve by moving the state directly.
    ForceApproved {
        change: usize,
        by: usize,
    },
    Schedule {
        change: usize,
        by: usize,
        override_reason: bool,
    },
    Freeze,
    Thaw,
}

fn op() -> impl Strategy<Value = Op> {
    let person = 0..6usize;
    let change = 0..2usize;
    prop_oneof![
        2 => (person.clone(), prop_oneof![Just(ChangeType::Normal), Just(ChangeType::Emergency)], any::<bool>())
            .prop_map(|(by, kind, in_freeze)| Op::Create { by, kind, in_freeze }),
        3 => (change.clone(), person.clone(), any::<bool>())
            .prop_map(|(change, by, override_reason)| Op::Submit { change, by, override_reason }),
        5 => (change.clone(), person.clone(), prop::bool::weighted(0.9)).prop_map(|(change, by, approve)| Op::Decide {
            change,
            by,
            approve
        }),
        1 => (change.clone(), person.clone()).prop_map(|(change, by)| Op::ForceApproved { change, by }),
        1 => (change, person, any::<bool>())
            .prop_map(|(change, by, override_reason)| Op::Schedule { change, by, override_reason }),
        1 => Just(Op::Freeze),
        1 => Just(Op::Thaw),
    ]
}

/// The freeze the scenarios declare: payments, one day from `t0`.
fn freeze() -> FreezeWindow {
    FreezeWindow {
        id: "quarter-close".into(),
        name: "Quarter close".into(),
        services: vec![changehub::domain::ServiceName::parse("payments").expect("service")],
        schedule: Schedule::OneOff { start: t0(), end: t0() + Duration::days(1) },
        reason: String::new(),
    }
}

/// What must hold of every change after every step.
fn check_invariants(change: &Change, trail: &[changehub::domain::AuditEntry]) {
    changehub::domain::audit::verify_record(change, trail).expect("the audit chain verifies");
    if let Some(plan) = &change.approval {
        let mut approvers = std::collections::BTreeMap::new();
        for step in &plan.steps {
            for a in &step.approvals {
                assert_ne!(a.by, change.requester, "{} approved their own change", a.by);
                if step.is_peer_review() {
                    continue;
                }
                let group = a.group.as_deref().expect("a level approval names its group");
                assert!(step.groups.iter().any(|g| g == group), "approval as {group}, not a group of the level");
                let who = people().into_iter().find(|p| p.user == a.by).expect("a known person");
                assert!(who.in_group(group), "{} is not in {group}", a.by);
                // Lower levels were complete: every step of a lower level is complete now, and
                // was no later than this one (its last approval is not after this approval).
                for lower in plan.steps.iter().filter(|s| s.level < step.level) {
                    assert!(lower.is_complete(), "level {} approved before level {}", step.level, lower.level);
                }
                let levels = approvers.entry(a.by.clone()).or_insert_with(std::collections::BTreeSet::new);
                levels.insert(step.level);
                assert_eq!(levels.len(), 1, "{} approved at several levels: {levels:?}", a.by);
            }
        }
        if change.state == ChangeState::Approved {
            assert!(plan.steps.iter().all(|s| s.is_complete()), "approved with an open level");
        }
    }
    // Reaching `approved` is another person's decision (normal, emergency) or the hub's own receipt (standard).
    for e in trail {
        let to_approved = e.changes.iter().any(|f| f.field == "state" && f.after == "approved");
        if to_approved {
            match change.change_type {
                ChangeType::Normal | ChangeType::Emergency => {
                    assert_eq!(
                        e.action,
                        AuditAction::Decided,
                        "a {} change approved without a decision",
                        change.change_type.as_str()
                    );
                    assert_ne!(
                        e.actor,
                        change.requester,
                        "{} approved their own {} change",
                        e.actor,
                        change.change_type.as_str()
                    );
                    assert_ne!(e.actor, "changehub", "the hub approved a {} change", change.change_type.as_str());
                }
                ChangeType::Standard => assert_eq!(e.actor, "changehub", "only the hub approves on submission"),
                ChangeType::Recorded => panic!("a recorded change is made scheduled, never approved"),
            }
        }
    }
}

/// Runs `ops` as HTTP calls to the API router, each with the token of the
/// person acting, and checks the invariants of every change after each call.
async fn run(ops: Vec<Op>) -> Vec<Change> {
    let dir = tempfile::tempdir().expect("tempdir");
    let app =
        Arc::new(Changes::new(EmbeddedStore::open(dir.path().join("policy.db")).expect("open"), FixedClock::new(t0())));
    seed(&app, TENANT).await;
    let tokens = Tokens::new();
    let router = changehub::http::router(app.clone(), tokens.authenticator());
    let people = people();
    let root = &people[5];
    let as_ = |by: usize| tokens.of(&people[by]);
    let mut ids: Vec<ChangeId> = Vec::new();
    let mut frozen = false;
    for op in ops {
        match op {
            Op::Create { by, kind, in_freeze } => {
                let start = if in_freeze { t0() + Duration::hours(2) } else { t0() + Duration::days(3) };
                let body = json!({"title": "property", "type": kind, "services": ["payments"], "environment": "production",
                    "planned_start": start, "planned_end": start + Duration::hours(1)});
                let a = call_as(&router, &as_(by), "POST", "/changes", Some(body)).await;
                assert!(!a.status.is_server_error(), "{:?}", a.body);
                if a.status == StatusCode::CREATED {
                    ids.push(ChangeId::parse(a.body["id"].as_str().expect("id")).expect("uuid"));
                }
            }
            Op::Submit { change, by, override_reason } | Op::Schedule { change, by, override_reason } => {
                let Some(id) = ids.get(change) else { continue };
                let current = app.get(root, id).await.expect("get");
                let to = if matches!(op, Op::Submit { .. }) { ChangeState::Submitted } else { ChangeState::Scheduled };
                let mut body = json!({"to": to, "version": current.version});
                if override_reason {
                    body["override_reason"] = json!("customer-facing outage");
                }
                let blocked = frozen && current.planned_start < t0() + Duration::days(1);
                let a = call_as(&router, &as_(by), "POST", &format!("/changes/{id}/transitions"), Some(body)).await;
                assert!(!a.status.is_server_error(), "{:?}", a.body);
                if a.status == StatusCode::OK && blocked {
                    // Entering a freeze: only an emergency, only with the reason, and audited.
                    assert_eq!(a.body["type"], "emergency", "a {} change entered a freeze", a.body["type"]);
                    assert!(override_reason, "a freeze was entered without an override reason");
                    if to == ChangeState::Scheduled {
                        let after = app.get(root, id).await.expect("get");
                        assert!(
                            after.approved_by_another(),
                            "an emergency entered a freeze before another person approved it"
                        );
                    }
                    let trail = app.audit(root, id).await.expect("audit");
                    let entered = trail
                        .iter()
                        .rev()
                        .find(|e| e.changes.iter().any(|f| f.field == "state" && f.after == to.as_str()))
                        .expect("the entry of the transition");
                    let reason = entered.reason.as_deref().unwrap_or("");
                    assert!(
                        reason.contains("freeze override") && reason.contains("customer-facing outage"),
                        "{reason}"
                    );
                }
            }
            Op::Decide { change, by, approve } => {
                let Some(id) = ids.get(change) else { continue };
                let body = json!({"decision": if approve { "approve" } else { "reject" }});
                let a = call_as(&router, &as_(by), "POST", &format!("/changes/{id}/decisions"), Some(body)).await;
                assert!(!a.status.is_server_error(), "{:?}", a.body);
            }
            Op::ForceApproved { change, by } => {
                let Some(id) = ids.get(change) else { continue };
                let current = app.get(root, id).await.expect("get");
                let body = json!({"to": "approved", "version": current.version});
                let a = call_as(&router, &as_(by), "POST", &format!("/changes/{id}/transitions"), Some(body)).await;
                assert!(a.status.is_client_error(), "approved by a transition: {:?}", a.body);
            }
            Op::Freeze => {
                let a =
                    call_as(&router, &as_(5), "POST", "/freezes", Some(serde_json::to_value(freeze()).expect("json")))
                        .await;
                assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
                frozen = true;
            }
            Op::Thaw => {
                let a = call_as(&router, &as_(5), "DELETE", "/freezes/quarter-close?reason=thaw", None).await;
                assert!(a.status == StatusCode::NO_CONTENT || a.status == StatusCode::NOT_FOUND, "{:?}", a.body);
                frozen = false;
            }
        }
        for id in &ids {
            let change = app.get(root, id).await.expect("get");
            let trail = app.audit(root, id).await.expect("audit");
            check_invariants(&change, &trail);
        }
    }
    let mut changes = Vec::new();
    for id in &ids {
        changes.push(app.get(root, id).await.expect("get"));
    }
    check_listings(&router, &tokens, &changes).await;
    changes
}

/// The listing and waiting indexes agree with the records, whatever the
/// sequence: the tenant's listing holds every change in its current state,
/// and each person's "waiting for my decision" holds exactly the changes a
/// decision of theirs would be accepted on.
async fn check_listings(router: &axum::Router, tokens: &Tokens, changes: &[Change]) {
    let ids = |a: &changehub_tests::http::Answer| -> std::collections::BTreeSet<String> {
        let listed = a.body["changes"].as_array().cloned().unwrap_or_default();
        listed.iter().filter_map(|c| Some(format!("{}:{}", c["id"].as_str()?, c["state"].as_str()?))).collect()
    };
    let key = |c: &Change| format!("{}:{}", c.id, c.state.as_str());
    let root = &people()[5];
    let all = call_as(router, &tokens.of(root), "GET", "/changes?limit=100", None).await;
    assert_eq!(ids(&all), changes.iter().map(key).collect(), "the listing index: {:?}", all.body);
    let roles = changehub_tests::fixtures::catalog().roles;
    for person in people() {
        let mine = call_as(router, &tokens.of(&person), "GET", "/changes?approver=me&limit=100", None).await;
        let may_decide = changes.iter().filter(|c| {
            c.state == ChangeState::Submitted
                && c.approval.clone().is_some_and(|mut plan| {
                    let verdict = changehub::domain::approval::Verdict::Approve;
                    plan.decide(&person, &person.roles(&roles), &c.requester, verdict, None, t0()).is_ok()
                })
        });
        assert_eq!(ids(&mine), may_decide.map(key).collect(), "{} waits for: {:?}", person.user, mine.body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_call_sequence_breaks_dual_control_levels_or_freezes(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run(ops));
    }
}

/// The generator does reach the interesting states (a property that never
/// approves anything would prove nothing): a fixed sequence through both levels.
#[tokio::test]
async fn the_scenario_language_reaches_approval_and_freeze_overrides() {
    let ops = vec![
        Op::Create { by: 0, kind: ChangeType::Normal, in_freeze: false },
        Op::Submit { change: 0, by: 0, override_reason: false },
        Op::Decide { change: 0, by: 2, approve: true },
        Op::Decide { change: 0, by: 3, approve: true },
        Op::Freeze,
        Op::Create { by: 0, kind: ChangeType::Emergency, in_freeze: true },
        Op::Create { by: 1, kind: ChangeType::Normal, in_freeze: true },
        Op::Submit { change: 2, by: 1, override_reason: true },
        Op::Submit { change: 1, by: 0, override_reason: true },
        Op::Schedule { change: 1, by: 0, override_reason: true },
        Op::Decide { change: 1, by: 0, approve: true },
        Op::Decide { change: 1, by: 3, approve: true },
        Op::Schedule { change: 1, by: 0, override_reason: true },
    ];
    let changes = run(ops).await;
    let states: Vec<ChangeState> = changes.iter().map(|c| c.state).collect();
    assert_eq!(states, [ChangeState::Approved, ChangeState::Scheduled, ChangeState::Draft]);
}
