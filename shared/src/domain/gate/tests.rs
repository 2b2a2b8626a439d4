use super::*;
use crate::domain::change::{ChecklistItem, Done};
use crate::domain::freeze::Schedule;
use crate::domain::ids::TenantId;
use crate::domain::new_change::NewChange;
use crate::domain::risk::RiskAssessment;
use chrono::TimeZone;
use proptest::prelude::*;

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default() + Duration::hours(h)
}

const PRODUCTION: [&str; 2] = ["production", "prod"];

fn production() -> Vec<String> {
    PRODUCTION.iter().map(|p| p.to_string()).collect()
}

/// A payments change planned 10:00 to 12:00, in `state`.
fn change(state: ChangeState) -> Change {
    let mut c = NewChange::basic("Roll out payments 1.4.2", &["payments"], "production", t(10), t(12))
        .validate()
        .expect("valid")
        .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), t(0));
    c.state = state;
    c
}

fn ask(environment: &str, change: Option<ChangeId>) -> Ask {
    GateRequest {
        service: "payments".into(),
        environment: environment.into(),
        version: Some("1.4.2".into()),
        sha: Some("3f2a9c1d0b7e4a55".into()),
        change: change.map(|c| c.to_string()),
    }
    .validate()
    .expect("valid ask")
}

fn freeze(from: i64, to: i64) -> FreezeWindow {
    FreezeWindow {
        id: "release-freeze".into(),
        name: "Release freeze".into(),
        services: vec![],
        schedule: Schedule::OneOff { start: t(from), end: t(to) },
        reason: String::new(),
    }
}

struct World {
    production: Vec<String>,
    freezes: Vec<FreezeWindow>,
    incident_services: Vec<ServiceName>,
    incident: bool,
}

impl World {
    fn new() -> Self {
        World {
            production: production(),
            freezes: vec![],
            incident_services: vec![ServiceName::parse("payments").expect("service")],
            incident: false,
        }
    }

    fn decide(&self, ask: &Ask, found: Option<&Change>, now: DateTime<Utc>) -> Decision {
        let incidents = [OpenIncident {
            id: "inc-7",
            title: "Checkout down",
            commander: "ivy",
            services: &self.incident_services,
            declared_at: Some(t(9)),
        }];
        let rules = Rules {
            now,
            production: &self.production,
            start_grace: Duration::minutes(15),
            freezes: &self.freezes,
            incidents: if self.incident { &incidents[..] } else { &[] },
        };
        decide(ask, found, &rules)
    }
}

#[test]
fn a_scheduled_change_in_its_window_lets_a_promotion_to_production_through() {
    let c = change(ChangeState::Scheduled);
    let d = World::new().decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert!(d.allowed && d.gated && d.settled(), "{d:?}");
    assert_eq!((d.code, d.status), (GateCode::Allowed, GateStatus::Allowed));
    assert_eq!(d.change.as_ref().map(|r| r.id), Some(c.id));
    assert!(d.reason.contains("may implement now"), "{}", d.reason);
}

#[test]
fn other_environments_are_recorded_only() {
    let c = change(ChangeState::Draft);
    let d = World::new().decide(&ask("staging", None), Some(&c), t(3));
    assert!(d.allowed && !d.gated, "{d:?}");
    assert_eq!(d.code, GateCode::Recorded);
    let d = World::new().decide(&ask("staging", None), None, t(3));
    assert_eq!((d.allowed, d.code, d.change), (true, GateCode::Recorded, None));
}

#[test]
fn production_is_whatever_the_catalog_names_ignoring_case() {
    let c = change(ChangeState::Scheduled);
    let d = World::new().decide(&ask("PROD", Some(c.id)), Some(&c), t(10));
    assert!(d.allowed && d.gated, "a change for production covers prod: {d:?}");
}

#[test]
fn without_a_change_a_gated_deployment_is_pending_and_says_how_to_open_one() {
    let d = World::new().decide(&ask("production", None), None, t(10));
    assert_eq!((d.allowed, d.status, d.code), (false, GateStatus::Pending, GateCode::NoChange));
    assert!(d.reason.contains("POST /changes"), "{}", d.reason);
    let named = ChangeId::new();
    let d = World::new().decide(&ask("production", Some(named)), None, t(10));
    assert_eq!((d.status, d.code), (GateStatus::Refused, GateCode::ChangeNotFound));
}

#[test]
fn unapproved_changes_are_pending_and_rejected_or_ended_ones_refused() {
    let w = World::new();
    for (state, status, code) in [
        (ChangeState::Draft, GateStatus::Pending, GateCode::NotApproved),
        (ChangeState::Submitted, GateStatus::Pending, GateCode::NotApproved),
        (ChangeState::Rejected, GateStatus::Refused, GateCode::ChangeRejected),
        (ChangeState::Cancelled, GateStatus::Refused, GateCode::ChangeRejected),
        (ChangeState::Completed, GateStatus::Refused, GateCode::ChangeEnded),
        (ChangeState::Failed, GateStatus::Refused, GateCode::ChangeEnded),
        (ChangeState::RolledBack, GateStatus::Refused, GateCode::ChangeEnded),
        (ChangeState::Closed, GateStatus::Refused, GateCode::ChangeEnded),
        (ChangeState::Approved, GateStatus::Allowed, GateCode::Allowed),
        (ChangeState::Implementing, GateStatus::Allowed, GateCode::Allowed),
    ] {
        let c = change(state);
        let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
        assert_eq!((d.status, d.code), (status, code), "{state}: {}", d.reason);
    }
}

#[test]
fn a_rejected_change_is_refused_naming_its_rejecter_and_their_comment() {
    use crate::domain::approval::{ApprovalPlan, Decision};
    let w = World::new();
    for state in [ChangeState::Rejected, ChangeState::Closed] {
        let mut c = change(state);
        let rejected = Decision {
            by: "rita".into(),
            group: Some("cab".into()),
            at: t(1),
            comment: Some("not before the sale".into()),
            on_behalf_of: None,
        };
        c.approval = Some(ApprovalPlan { rejected: Some(rejected), ..ApprovalPlan::default() });
        let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
        assert_eq!((d.status, d.code), (GateStatus::Refused, GateCode::ChangeRejected), "{state}: {}", d.reason);
        assert!(
            d.reason.ends_with(&format!(
                "change {} was rejected by rita; open a new change. Reason: not before the sale",
                c.id
            )),
            "{state}: {}",
            d.reason
        );
    }
}

#[test]
fn a_change_for_another_service_or_environment_is_refused() {
    let w = World::new();
    let mut c = change(ChangeState::Scheduled);
    c.services = vec![ServiceName::parse("ledger").expect("service")];
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!((d.status, d.code), (GateStatus::Refused, GateCode::WrongService));
    let mut c = change(ChangeState::Scheduled);
    c.environment = "staging".into();
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!((d.status, d.code), (GateStatus::Refused, GateCode::WrongEnvironment));
}

#[test]
fn before_its_window_it_is_pending_until_the_grace_before_the_start_and_after_it_refused() {
    let w = World::new();
    let c = change(ChangeState::Scheduled);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(8));
    assert_eq!((d.status, d.code), (GateStatus::Pending, GateCode::BeforeWindow));
    assert_eq!(d.recheck_at, Some(t(10) - Duration::minutes(15)));
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10) - Duration::minutes(15));
    assert!(d.allowed, "the start grace counts: {}", d.reason);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(12));
    assert_eq!((d.status, d.code), (GateStatus::Refused, GateCode::WindowEnded));
    assert!(d.reason.contains("reschedule"), "{}", d.reason);
}

#[test]
fn an_open_checklist_holds_it() {
    let mut c = change(ChangeState::Scheduled);
    c.checklist = vec![
        ChecklistItem { id: "backup".into(), text: "Back up the database".into(), done: None },
        ChecklistItem {
            id: "runbook".into(),
            text: "Runbook linked".into(),
            done: Some(Done { by: "alice".into(), at: t(1), note: "link".into() }),
        },
    ];
    let d = World::new().decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!((d.status, d.code), (GateStatus::Pending, GateCode::ChecklistIncomplete));
    assert!(d.reason.contains("backup (Back up the database)") && !d.reason.contains("runbook"), "{}", d.reason);
}

#[test]
fn a_freeze_holds_it_until_it_ends_unless_an_approved_emergency_started_with_an_override() {
    let mut w = World::new();
    w.freezes = vec![freeze(11, 30)];
    let c = change(ChangeState::Scheduled);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!((d.status, d.code), (GateStatus::Pending, GateCode::FreezeWindow));
    assert!(d.reason.contains("Release freeze"), "{}", d.reason);
    assert_eq!(d.recheck_at, Some(t(30)), "decided again when the freeze ends");
    let mut emergency = change(ChangeState::Implementing);
    emergency.change_type = ChangeType::Emergency;
    let d = w.decide(&ask("production", Some(emergency.id)), Some(&emergency), t(10));
    assert_eq!(d.code, GateCode::FreezeWindow, "approved by nobody: no override");
    assert!(d.reason.contains("override_reason"), "{}", d.reason);
}

#[test]
fn a_freeze_ending_before_the_window_does_is_waited_out() {
    let mut w = World::new();
    w.freezes = vec![freeze(9, 11)];
    let mut c = change(ChangeState::Scheduled);
    c.planned_start = t(8);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(9));
    assert_eq!((d.status, d.code, d.recheck_at), (GateStatus::Pending, GateCode::FreezeWindow, Some(t(11))));
}

#[test]
fn a_major_incident_holds_a_high_risk_change_on_its_services() {
    let mut w = World::new();
    w.incident = true;
    let mut c = change(ChangeState::Scheduled);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert!(d.allowed, "a change without a high risk is not held: {}", d.reason);
    c.risk = Some(RiskAssessment { score: 12, level: RiskLevel::High, factors: vec![] });
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!((d.status, d.code), (GateStatus::Pending, GateCode::MajorIncident));
    // Its resolution is not a change event: a waiter decides again shortly, not at its time-out.
    assert_eq!(d.recheck_at, Some(t(10) + super::INCIDENT_RECHECK));
    assert!(d.reason.contains("inc-7 \"Checkout down\" (commander ivy)"), "{}", d.reason);
    // Implementing since after the incident was declared: its start passed the incident gate.
    c.state = ChangeState::Implementing;
    let started = |at| Some(crate::domain::correlation::Implementation::Ongoing { started_at: at });
    c.implementation = started(t(9) + Duration::minutes(1));
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert!(d.allowed, "{}", d.reason);
    c.implementation = started(t(8));
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(10));
    assert_eq!(d.code, GateCode::MajorIncident, "declared after it started: it holds the rest of the work");
}

#[test]
fn a_refusal_waiting_cannot_turn_wins_over_pending_rules() {
    let mut w = World::new();
    w.freezes = vec![freeze(0, 48)];
    let c = change(ChangeState::Scheduled);
    let d = w.decide(&ask("production", Some(c.id)), Some(&c), t(13));
    assert_eq!((d.status, d.code, d.recheck_at), (GateStatus::Refused, GateCode::WindowEnded, None));
    assert!(d.reason.contains("freeze"), "every rule is named: {}", d.reason);
}

#[test]
fn pick_prefers_the_change_that_deployed_the_sha_then_the_furthest_along_in_its_window() {
    let w = World::new();
    let rules = Rules {
        now: t(10),
        production: &w.production,
        start_grace: Duration::minutes(15),
        freezes: &[],
        incidents: &[],
    };
    let approved = change(ChangeState::Approved);
    let scheduled = change(ChangeState::Scheduled);
    let mut later = change(ChangeState::Implementing);
    later.planned_start = t(20);
    later.planned_end = t(21);
    let mut staging = change(ChangeState::Implementing);
    staging.environment = "staging".into();
    let done = change(ChangeState::Completed);
    let candidates = vec![approved.clone(), later.clone(), staging, done, scheduled.clone()];
    let a = ask("production", None);
    assert_eq!(pick(&a, &candidates, &rules).map(|c| c.id), Some(later.id), "implementing comes first");
    let candidates = vec![approved.clone(), scheduled.clone()];
    assert_eq!(pick(&a, &candidates, &rules).map(|c| c.id), Some(scheduled.id));
    let mut deployed = approved.clone();
    deployed.deployments = vec![crate::domain::deployment::Deployed::new(
        crate::domain::deployment::DeploymentOrigin {
            source: "github".into(),
            repository: "acme/payments".into(),
            deployment_id: "1".into(),
            sha: Some("3F2A9C1D0B7E4A55".into()),
            git_ref: None,
            environment: "production".into(),
            url: None,
            actor: None,
        },
        crate::domain::deployment::Step::Waiting,
        t(9),
    )];
    let candidates = vec![scheduled.clone(), deployed.clone()];
    assert_eq!(pick(&a, &candidates, &rules).map(|c| c.id), Some(deployed.id), "the same sha wins");
    assert_eq!(pick(&ask("staging", None), &[approved], &rules).map(|c| c.id), None, "another environment");
}

#[test]
fn requests_name_the_field_at_fault() {
    let ok = GateRequest {
        service: "payments".into(),
        environment: "production".into(),
        version: Some("1.4.2".into()),
        sha: None,
        change: None,
    };
    let field = |r: GateRequest| r.validate().expect_err("invalid").field;
    assert_eq!(field(GateRequest { service: "Pay Ments".into(), ..ok.clone() }), "service");
    assert_eq!(field(GateRequest { environment: " production".into(), ..ok.clone() }), "environment");
    assert_eq!(field(GateRequest { version: None, ..ok.clone() }), "version");
    assert_eq!(field(GateRequest { sha: Some("xyz".into()), ..ok.clone() }), "sha");
    assert_eq!(field(GateRequest { change: Some("chg-1".into()), ..ok.clone() }), "change");
    assert!(ok.validate().is_ok());
}

fn any_state() -> impl Strategy<Value = ChangeState> {
    proptest::sample::select(ChangeState::ALL.to_vec())
}

proptest! {
    /// Whatever the change, the time, the freezes and the incidents: allowed
    /// exactly when the status says so; a gated allowed answer rests on an
    /// approved, scheduled, implementing or verifying (the next stage of a
    /// bake) change of the service within its
    /// window; a pending answer's recheck time is in the future; a non-gated
    /// environment is always allowed.
    #[test]
    fn the_answer_is_consistent(
        state in any_state(),
        hour in -2i64..30,
        gated in any::<bool>(),
        incident in any::<bool>(),
        high in any::<bool>(),
        freeze_from in proptest::option::of(0i64..24),
        emergency in any::<bool>(),
    ) {
        let mut w = World::new();
        w.incident = incident;
        w.freezes = freeze_from.map(|f| vec![freeze(f, f + 3)]).unwrap_or_default();
        let mut c = change(state);
        if high {
            c.risk = Some(RiskAssessment { score: 12, level: RiskLevel::High, factors: vec![] });
        }
        if emergency {
            c.change_type = ChangeType::Emergency;
        }
        let now = t(hour);
        let env = if gated { "production" } else { "staging" };
        let d = w.decide(&ask(env, Some(c.id)), Some(&c), now);
        prop_assert_eq!(d.allowed, d.status == GateStatus::Allowed);
        prop_assert_eq!(d.code.status(), d.status);
        prop_assert_eq!(d.gated, gated);
        if !gated {
            prop_assert!(d.allowed);
        }
        if gated && d.allowed {
            prop_assert!(matches!(
                c.state,
                ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing | ChangeState::Verifying
            ));
            prop_assert!(within_window(&c, Duration::minutes(15), now));
            prop_assert!(freeze::blocking(&w.freezes, &c.services, now, work_span(&c, now).1).is_none());
        }
        if let Some(at) = d.recheck_at {
            prop_assert!(d.status == GateStatus::Pending && at >= now);
        }
        prop_assert!(!d.reason.is_empty());
    }
}
