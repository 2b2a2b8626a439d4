//! Each rule of the change process, through the use cases on the embedded
//! store with a fixed clock: approval policy by change type, peer review,
//! checklists, freeze windows, conflicts, major incidents, risk, roles.

use changehub::adapters::embedded::EmbeddedStore;
use changehub::app::changes::{ChangeError, NoteRequest, RescheduleRequest, ReviewRequest, TransitionRequest};
use changehub::app::governance::{DeclareIncident, IncidentAction, LiftFreeze};
use changehub::app::{Caller, Changes};
use changehub::domain::approval::{EMERGENCY_APPROVAL, PEER_REVIEW};
use changehub::domain::audit::{self, AuditAction};
use changehub::domain::freeze::{FreezeWindow, Schedule};
use changehub::domain::risk::{AvailabilityImpact, Complexity, DataImpact, RiskLevel};
use changehub::domain::{ChangeState, ChangeType, NewChange, ServiceName};
use changehub::ports::FixedClock;
use changehub::ports::{ChangeReader, ChangeWriter};
use changehub_tests::fixtures::{
    alice, approve, carol, edit, pat, peer_review, root, seed, submit_and_approve, to, who,
};
use changehub_tests::{new_change, t0};
use chrono::Duration;
use serde_json::json;

const T: &str = "acme";

struct Hub {
    app: Changes<EmbeddedStore, FixedClock>,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Changes::new(EmbeddedStore::open(dir.path().join("rules.db")).expect("open"), FixedClock::new(t0()));
    seed(&app, T).await;
    Hub { app, _dir: dir }
}

fn code(e: &ChangeError) -> &str {
    match e {
        ChangeError::Refused { code, .. } => code,
        ChangeError::Forbidden(_) => "forbidden",
        ChangeError::Invalid(_) => "invalid",
        ChangeError::VersionConflict { .. } => "version_conflict",
        _ => "other",
    }
}

fn with(mut c: NewChange, edit: impl FnOnce(&mut NewChange)) -> NewChange {
    edit(&mut c);
    c
}

fn override_reason(state: ChangeState, version: u64, reason: &str) -> TransitionRequest {
    TransitionRequest { override_reason: Some(reason.into()), ..to(state, version) }
}

#[tokio::test]
async fn standard_changes_are_approved_on_submission_with_a_receipt_and_only_within_their_template() {
    let h = hub().await;
    let standard = |services: &[&str]| {
        with(new_change("Rotate certificate", services, t0() + Duration::days(2), 1), |c| {
            c.change_type = ChangeType::Standard;
            c.template = Some("rotate-tls-cert".into());
        })
    };
    // Issue 9, point 7: the change names no category; it takes its template's.
    let c = h.app.create(&alice(T), standard(&["payments"])).await.expect("create");
    assert_eq!(c.category, "certificate");
    let approved = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(approved.state, ChangeState::Approved);
    assert!(approved.approval.is_none(), "no approval chain for a standard change");
    let trail = h.app.audit(&alice(T), &c.id).await.expect("audit");
    let receipt = trail.last().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(
        receipt.contains("pre-approved template rotate-tls-cert (Rotate a TLS certificate), catalog version 1"),
        "{receipt}"
    );

    let mut catalog = changehub_tests::fixtures::catalog();
    catalog.templates[0].services.retain(|s| s.as_str() != "search");
    h.app.catalog.replace(&root(T), catalog, None, &h.app.clock).await.expect("narrow the template");
    let outside = h.app.create(&alice(T), standard(&["search"])).await.expect("create");
    let err = h.app.transition(&alice(T), &outside.id, to(ChangeState::Submitted, 1)).await.expect_err("outside");
    assert_eq!(code(&err), "template_mismatch");
    assert!(err.to_string().contains("does not cover service search"), "{err}");
}

#[tokio::test]
async fn emergencies_need_one_approval_by_the_emergency_approvers_never_their_requester_and_stay_in_the_report_until_reviewed()
 {
    let h = hub().await;
    let input = with(new_change("Hotfix", &["payments"], t0(), 1), |c| c.change_type = ChangeType::Emergency);
    let c = h.app.create(&alice(T), input).await.expect("create");
    let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(submitted.state, ChangeState::Submitted, "an emergency is not approved by submitting it");
    let plan = submitted.approval.as_ref().expect("a one-level plan");
    let steps: Vec<_> = plan.steps.iter().map(|s| (s.name.as_str(), s.groups.clone())).collect();
    assert_eq!(steps, [(EMERGENCY_APPROVAL, vec!["cab".to_owned()])], "default approvers: the cab role's groups");
    assert_eq!(plan.due_at(), Some(t0() + Duration::hours(1)), "the fast path's deadline");
    let err = h.app.transition(&alice(T), &c.id, to(ChangeState::Approved, 2)).await.expect_err("not by moving");
    assert_eq!(code(&err), "decision_required");
    let own = who(T, "alice@example.com", &["engineers", "cab"]);
    let err = h.app.decide(&own, &c.id, approve()).await.expect_err("own emergency");
    assert!(err.to_string().starts_with("dual control: alice@example.com requested this change"), "{err}");
    let err = h.app.decide(&pat(T), &c.id, approve()).await.expect_err("not an emergency approver");
    assert!(err.to_string().contains("level 1 (emergency) needs a member of any of: cab"), "{err}");
    assert!(h.app.pending_reviews(&carol(T), None, None).await.expect("report").items.is_empty());
    let approved = h.app.decide(&carol(T), &c.id, approve()).await.expect("the cab approves").change;
    assert_eq!(approved.state, ChangeState::Approved);
    assert_eq!(approved.review.as_ref().map(|r| r.due_at), Some(t0() + Duration::hours(72)));
    let trail = h.app.audit(&alice(T), &c.id).await.expect("audit");
    let last = trail.last().expect("entries");
    assert_eq!((last.actor.as_str(), last.action), ("carol@example.com", AuditAction::Decided));
    let report = h.app.pending_reviews(&carol(T), None, None).await.expect("report");
    assert_eq!(report.items.iter().map(|c| c.id).collect::<Vec<_>>(), [c.id]);

    let note = |version| ReviewRequest {
        version,
        note: Some("root cause: expired certificate; follow-up filed".into()),
        ..ReviewRequest::default()
    };
    let early = h.app.review(&carol(T), &c.id, note(approved.version)).await.expect_err("not implemented yet");
    assert_eq!(code(&early), "review_too_early");
    assert!(early.to_string().ends_with("must be completed, failed, rolled_back or closed; it is approved"), "{early}");
    let mut version = approved.version;
    for state in [ChangeState::Scheduled, ChangeState::Implementing, ChangeState::Completed] {
        version = h.app.transition(&alice(T), &c.id, to(state, version)).await.expect("move").version;
    }
    let err = h.app.review(&own, &c.id, note(version)).await.expect_err("own review");
    assert!(err.to_string().starts_with("dual control: alice@example.com requested this change"), "{err}");
    let err = h.app.review(&pat(T), &c.id, note(version)).await.expect_err("not cab");
    assert_eq!(code(&err), "forbidden");
    let reviewed = h.app.review(&carol(T), &c.id, note(version)).await.expect("review");
    assert_eq!(reviewed.review.and_then(|r| r.done).map(|d| d.by), Some("carol@example.com".to_owned()));
    assert!(h.app.pending_reviews(&carol(T), None, None).await.expect("report").items.is_empty());

    // A tenant with an ECAB: only its members approve emergencies.
    let mut catalog = changehub_tests::fixtures::catalog();
    catalog.emergency.approvers = vec!["ecab".into()];
    h.app.catalog.replace(&root(T), catalog, None, &h.app.clock).await.expect("name an ECAB");
    let input = with(new_change("Hotfix 2", &["search"], t0(), 1), |c| c.change_type = ChangeType::Emergency);
    let c = h.app.create(&alice(T), input).await.expect("create");
    h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let err = h.app.decide(&carol(T), &c.id, approve()).await.expect_err("cab is not the ECAB");
    assert!(err.to_string().contains("needs a member of any of: ecab"), "{err}");
    let ecab = who(T, "erin@example.com", &["ecab", "cab"]);
    assert_eq!(h.app.decide(&ecab, &c.id, approve()).await.expect("ECAB").change.state, ChangeState::Approved);
}

#[tokio::test]
async fn an_emergency_fixing_an_open_major_incident_is_confirmed_by_its_commander_while_they_command_it() {
    let h = hub().await;
    let fix = |incident: &str| {
        with(new_change("Roll back the deploy", &["payments"], t0(), 1), |c| {
            c.change_type = ChangeType::Emergency;
            c.incident = Some(incident.into());
        })
    };
    let c = h.app.create(&alice(T), fix("INC-9")).await.expect("create");
    let err = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect_err("no such incident");
    assert_eq!(code(&err), "incident_not_open");
    h.app
        .governance()
        .declare_incident(&carol(T), ivy_commands("INC-42", "Card payments failing"))
        .await
        .expect("declare");
    let first = h.app.create(&alice(T), fix("INC-42")).await.expect("create");
    let second = h.app.create(&alice(T), fix("INC-42")).await.expect("create");
    for id in [&first.id, &second.id] {
        let submitted = h.app.transition(&alice(T), id, to(ChangeState::Submitted, 1)).await.expect("submit");
        assert_eq!(submitted.approval.expect("plan").steps[0].users, ["ivy@example.com"]);
    }
    // The commander confirms without an approving role; nobody else without one may.
    let ivy = who(T, "ivy@example.com", &["engineers"]);
    let err = h.app.decide(&who(T, "eve@example.com", &["engineers"]), &first.id, approve()).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("forbidden"), "{err:?}");
    let confirmed = h.app.decide(&ivy, &first.id, approve()).await.expect("commander confirms").change;
    assert_eq!(confirmed.state, ChangeState::Approved);
    // Once the incident is resolved its commander no longer confirms; the cab still does.
    h.app.governance().resolve_incident(&carol(T), "INC-42").await.expect("resolve");
    let err = h.app.decide(&ivy, &second.id, approve()).await.expect_err("no longer commands");
    assert_eq!(code(&err), "forbidden");
    assert_eq!(h.app.decide(&carol(T), &second.id, approve()).await.expect("cab").change.state, ChangeState::Approved);

    // An incident on other services does not fix this change.
    let on_ledger = DeclareIncident {
        services: vec![ServiceName::parse("ledger").expect("svc")],
        ..ivy_commands("INC-50", "Ledger lag")
    };
    h.app.governance().declare_incident(&carol(T), on_ledger).await.expect("declare");
    let unrelated = h.app.create(&alice(T), fix("INC-50")).await.expect("create");
    let err = h.app.transition(&alice(T), &unrelated.id, to(ChangeState::Submitted, 1)).await.expect_err("unrelated");
    assert_eq!(code(&err), "incident_unrelated");
    // A commander who declared the incident themselves is not named: only
    // the emergency approvers decide (nobody self-appoints an approver).
    let self_declared = ivy_commands("INC-51", "Card payments slow");
    h.app
        .governance()
        .declare_incident(&who(T, "ivy@example.com", &["payments-leads"]), self_declared)
        .await
        .expect("declare");
    let own = h.app.create(&alice(T), fix("INC-51")).await.expect("create");
    let submitted = h.app.transition(&alice(T), &own.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert!(submitted.approval.expect("plan").steps[0].users.is_empty(), "no commander named");
    let err = h.app.decide(&ivy, &own.id, approve()).await.expect_err("self-declared commander");
    assert_eq!(code(&err), "forbidden");
}

#[tokio::test]
async fn high_risk_and_privileged_changes_need_a_peer_review_first() {
    let h = hub().await;
    let risky = with(new_change("Rotate the KMS key", &["payments"], t0() + Duration::days(2), 1), |c| {
        c.cryptographic_keys = true;
    });
    let c = h.app.create(&alice(T), risky).await.expect("create");
    let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let steps: Vec<_> = submitted.approval.as_ref().expect("plan").steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, [PEER_REVIEW, "team-lead", "cab"]);
    // An auditor only reads: they cannot give the peer review.
    let err = h.app.decide(&who(T, "aud@example.com", &["audit"]), &c.id, peer_review()).await.expect_err("auditor");
    assert!(matches!(err, ChangeError::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("an auditor only reads"), "{err}");
    // The peer review is level 1, given by anyone else holding a role; the team lead then decides level 2.
    let reviewed = h.app.decide(&root(T), &c.id, peer_review()).await.expect("anyone else holding a role");
    assert_eq!(reviewed.receipt.counted_for.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), [PEER_REVIEW]);
    let trail = h.app.audit(&alice(T), &c.id).await.expect("audit");
    assert_eq!(trail.last().map(|e| e.action), Some(AuditAction::PeerReviewed));
    let after = h.app.decide(&pat(T), &c.id, approve()).await.expect("level 2").change;
    assert_eq!(after.approval.expect("plan").current_level(), Some(3));

    let high = with(new_change("Schema rewrite", &["payments"], t0() + Duration::days(2), 1), |c| {
        c.impact.data = DataImpact::Destructive;
        c.impact.availability = AvailabilityImpact::Outage;
        c.complexity = Complexity::High;
    });
    let c = h.app.create(&alice(T), high).await.expect("create");
    assert!(c.risk.as_ref().is_some_and(|r| r.level >= RiskLevel::High), "{:?}", c.risk);
    let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(submitted.approval.expect("plan").steps[0].name, PEER_REVIEW);
}

/// Issue 9, point 5: a critical change on payments, whose one team lead is
/// Pat. Pat's approval is never spent on the peer review; someone else gives
/// it, and the change is approved. Every answer says what it counted for.
#[tokio::test]
async fn a_critical_change_with_one_team_lead_is_approved_after_someone_elses_peer_review() {
    let h = hub().await;
    let critical = with(new_change("Re-key the card vault", &["payments"], t0() + Duration::days(2), 1), |c| {
        c.impact.data = DataImpact::Destructive;
        c.impact.availability = AvailabilityImpact::Outage;
        c.impact.compliance = true;
        c.complexity = Complexity::High;
        c.cryptographic_keys = true;
    });
    let c = h.app.create(&alice(T), critical).await.expect("create");
    assert_eq!(c.risk.as_ref().map(|r| r.level), Some(RiskLevel::Critical), "{:?}", c.risk);
    h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");

    let err = h.app.decide(&pat(T), &c.id, approve()).await.expect_err("an approval is not a peer review");
    assert_eq!(code(&err), "peer_review_required");
    assert!(err.to_string().contains(r#"{"decision": "peer_review"}"#), "{err}");
    let unchanged = h.app.get(&alice(T), &c.id).await.expect("get");
    assert_eq!(unchanged.version, 2, "the refused approval recorded nothing");

    let dev = who(T, "dev@example.com", &["engineers"]);
    let err = h.app.decide(&dev, &c.id, approve()).await.expect_err("not an approver either");
    assert_eq!(code(&err), "peer_review_required");
    let reviewed = h.app.decide(&dev, &c.id, peer_review()).await.expect("peer review");
    let counted = |d: &changehub::app::changes::Decided| {
        d.receipt.counted_for.iter().map(|s| (s.level, s.name.clone())).collect::<Vec<_>>()
    };
    assert_eq!(counted(&reviewed), [(1, PEER_REVIEW.to_owned())]);
    assert_eq!(reviewed.receipt.waiting_for.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["team-lead"]);
    let err = h.app.decide(&dev, &c.id, peer_review()).await.expect_err("no second peer review");
    assert_eq!(code(&err), "no_peer_review_pending");

    let level2 = h.app.decide(&pat(T), &c.id, approve()).await.expect("Pat's approval counts for his level");
    assert_eq!(counted(&level2), [(2, "team-lead".to_owned())]);
    let level3 = h.app.decide(&carol(T), &c.id, approve()).await.expect("the cab");
    assert_eq!(counted(&level3), [(3, "cab".to_owned())]);
    assert!(level3.receipt.waiting_for.is_empty());
    assert_eq!(level3.change.state, ChangeState::Approved);
}

/// The changes of `service` planned around t0 + 2 days, by title.
async fn listed(h: &Hub, service: &str) -> Vec<String> {
    let req = changehub::app::ListRequest {
        service: Some(service.into()),
        from: Some(t0()),
        to: Some(t0() + Duration::days(5)),
        ..changehub::app::ListRequest::default()
    };
    h.app.list(&alice(T), req).await.expect("list").items.into_iter().map(|c| c.title).collect()
}

/// Issue 9, point 14: a draft is edited (requester or cab/admin, at its
/// version, draft only), admitted and scored again, audited with what
/// changed, and its service index entries move with it.
#[tokio::test]
async fn a_draft_is_edited_rescored_and_audited_and_its_index_follows() {
    let h = hub().await;
    let draft =
        h.app.create(&alice(T), new_change("Tune", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    assert_eq!(listed(&h, "payments").await, ["Tune"]);
    let moved = json!({"services": ["ledger", "search"], "planned_start": t0() + Duration::days(3),
        "planned_end": t0() + Duration::days(3) + Duration::hours(2), "category": "database_schema",
        "impact": {"availability": "outage"}, "title": "Tune the ledger"});
    let err = h.app.edit(&pat(T), &draft.id, edit(1, moved.clone())).await.expect_err("not the requester");
    assert!(matches!(err, ChangeError::Forbidden(_)), "{err}");
    let err = h.app.edit(&alice(T), &draft.id, edit(2, moved.clone())).await.expect_err("stale");
    assert_eq!(code(&err), "version_conflict");
    for (fields, field) in [
        (json!({"services": ["ledgr"]}), "services[0]"),
        (json!({"planned_start": "2020-01-01T00:00:00Z", "planned_end": "2020-01-01T01:00:00Z"}), "planned_start"),
        (json!({"type": "standard"}), "template"),
        (json!({"colour": "red"}), "colour"),
    ] {
        match h.app.edit(&alice(T), &draft.id, edit(1, fields.clone())).await {
            Err(ChangeError::Invalid(e)) => assert_eq!(e.field, field, "{fields}: {e:?}"),
            other => panic!("{fields}: expected a 400 on {field}, got {other:?}"),
        }
    }

    let edited = h.app.edit(&alice(T), &draft.id, edit(1, moved)).await.expect("edit");
    assert_eq!((edited.version, edited.state, edited.title.as_str()), (2, ChangeState::Draft, "Tune the ledger"));
    assert_eq!(
        edited.checklist.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["backup_verified", "rollback_script"]
    );
    assert!(edited.risk.as_ref().map(|r| r.score) != draft.risk.as_ref().map(|r| r.score), "scored again");
    let trail = h.app.audit(&alice(T), &draft.id).await.expect("audit");
    let last = trail.last().expect("entries");
    assert_eq!(last.action, AuditAction::Edited);
    let fields: Vec<&str> = last.changes.iter().map(|c| c.field.as_str()).collect();
    for field in ["title", "services", "planned_start", "planned_end", "category", "impact", "checklist", "risk"] {
        assert!(fields.contains(&field), "the entry records {field}: {fields:?}");
    }
    assert!(listed(&h, "payments").await.is_empty(), "the payments index entry is gone");
    assert_eq!(listed(&h, "ledger").await, ["Tune the ledger"]);
    assert_eq!(listed(&h, "search").await, ["Tune the ledger"]);

    // The cab may edit it too; once submitted, nobody does.
    let by_cab = h.app.edit(&carol(T), &draft.id, edit(2, json!({"description": null}))).await.expect("cab");
    assert_eq!((by_cab.version, by_cab.description.as_str()), (3, ""));
    h.app.transition(&alice(T), &draft.id, to(ChangeState::Submitted, 3)).await.expect("submit");
    let err = h.app.edit(&alice(T), &draft.id, edit(4, json!({"title": "late"}))).await.expect_err("submitted");
    assert_eq!(code(&err), "not_draft");
}

/// Issue 9, point 14: a rejected change is reworked into a new draft that
/// copies it (with edits), linked both ways, audited on both, in one write.
#[tokio::test]
async fn a_rejected_change_is_reworked_into_a_linked_draft_once() {
    let h = hub().await;
    let c = h
        .app
        .create(&alice(T), new_change("Swap the HSM", &["payments"], t0() + Duration::days(2), 1))
        .await
        .expect("create");
    let err = h.app.rework(&alice(T), &c.id, edit(1, json!({}))).await.expect_err("a draft");
    assert_eq!(code(&err), "not_rejected");
    h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let reject = changehub::app::changes::DecisionRequest {
        decision: changehub::domain::approval::Verdict::Reject,
        comment: Some("no rollback plan".into()),
        ..approve()
    };
    let rejected = h.app.decide(&pat(T), &c.id, reject).await.expect("reject").change;
    let fix = json!({"description": "rollback: keep the old HSM online for a day"});
    let err = h.app.rework(&pat(T), &c.id, edit(rejected.version, fix.clone())).await.expect_err("not hers");
    assert!(matches!(err, ChangeError::Forbidden(_)), "{err}");
    let err = h.app.rework(&alice(T), &c.id, edit(rejected.version - 1, fix.clone())).await.expect_err("stale");
    assert_eq!(code(&err), "version_conflict");
    let ids_before = h.app.store.change_ids(&alice(T).tenant).await.expect("ids").len();

    let draft = h.app.rework(&alice(T), &c.id, edit(rejected.version, fix.clone())).await.expect("rework");
    assert_eq!((draft.state, draft.version, draft.reworks), (ChangeState::Draft, 1, Some(c.id)));
    assert_eq!(
        (draft.title.as_str(), draft.description.as_str()),
        ("Swap the HSM", "rollback: keep the old HSM online for a day")
    );
    assert!(draft.approval.is_none() && draft.risk.is_some());
    let old = h.app.get(&alice(T), &c.id).await.expect("get");
    assert_eq!(
        (old.state, old.version, old.reworked_as),
        (ChangeState::Rejected, rejected.version + 1, Some(draft.id))
    );
    let old_trail = h.app.audit(&alice(T), &c.id).await.expect("audit");
    assert_eq!(old_trail.last().map(|e| e.action), Some(AuditAction::Reworked));
    let new_trail = h.app.audit(&alice(T), &draft.id).await.expect("audit");
    assert_eq!(new_trail.len(), 1);
    assert_eq!(
        new_trail[0].reason.as_deref(),
        Some(format!("rework of change {}, rejected by pat@example.com", c.id).as_str())
    );
    assert_eq!(h.app.store.change_ids(&alice(T).tenant).await.expect("ids").len(), ids_before + 1);

    let err = h.app.rework(&alice(T), &c.id, edit(old.version, json!({}))).await.expect_err("twice");
    assert_eq!(code(&err), "already_reworked");
    assert!(err.to_string().contains(&draft.id.to_string()), "{err}");
    // The new draft goes its own way.
    let submitted = h.app.transition(&alice(T), &draft.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(submitted.state, ChangeState::Submitted);
}

#[tokio::test]
async fn a_category_checklist_must_be_complete_before_implementing() {
    let h = hub().await;
    let input = with(new_change("Add index", &["payments"], t0() + Duration::days(2), 1), |c| {
        c.category = Some("database_schema".into());
    });
    let c = h.app.create(&alice(T), input).await.expect("create");
    assert_eq!(c.checklist.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["backup_verified", "rollback_script"]);
    let approved = submit_and_approve(&h.app, T, &c.id).await;
    let scheduled =
        h.app.transition(&alice(T), &c.id, to(ChangeState::Scheduled, approved.version)).await.expect("schedule");
    let err = h
        .app
        .transition(&alice(T), &c.id, to(ChangeState::Implementing, scheduled.version))
        .await
        .expect_err("open items");
    assert_eq!(code(&err), "checklist_incomplete");
    assert!(err.to_string().contains("backup_verified") && err.to_string().contains("rollback_script"), "{err}");
    let note = |version, note: &str| NoteRequest { version, note: note.into() };
    let one = h
        .app
        .complete_item(
            &alice(T),
            &c.id,
            "backup_verified",
            note(scheduled.version, "snapshot rds:payments-2026-12-01, restore tested"),
        )
        .await
        .expect("item");
    let again =
        h.app.complete_item(&alice(T), &c.id, "backup_verified", note(one.version, "twice")).await.expect_err("done");
    assert_eq!(code(&again), "already_done");
    let unknown = h.app.complete_item(&alice(T), &c.id, "coffee", note(one.version, "x")).await.expect_err("unknown");
    assert!(matches!(unknown, ChangeError::Missing(_)), "{unknown}");
    let two =
        h.app.complete_item(&alice(T), &c.id, "rollback_script", note(one.version, "PR #4312")).await.expect("item");
    h.app.clock.set(t0() + Duration::days(2));
    let started =
        h.app.transition(&alice(T), &c.id, to(ChangeState::Implementing, two.version)).await.expect("implement");
    assert_eq!(started.state, ChangeState::Implementing);
    let trail = h.app.audit(&alice(T), &c.id).await.expect("audit");
    assert!(
        trail
            .iter()
            .any(|e| e.reason.as_deref() == Some("backup_verified: snapshot rds:payments-2026-12-01, restore tested"))
    );
}

#[tokio::test]
async fn freezes_refuse_submission_and_scheduling_unless_an_emergency_records_an_override() {
    let h = hub().await;
    let month_end = FreezeWindow {
        id: "month-end".into(),
        name: "Month-end close".into(),
        services: vec![],
        schedule: Schedule::MonthEnd { business_days: 2 },
        reason: "finance close".into(),
    };
    h.app.governance().put_freeze(&root(T), month_end).await.expect("declare");
    // t0 is 2026-12-01; December 2026's last two business days are Wed 30 and Thu 31.
    let inside = t0() + Duration::days(29);
    let normal = h.app.create(&alice(T), new_change("Deploy", &["search"], inside, 2)).await.expect("create");
    let err = h.app.transition(&alice(T), &normal.id, to(ChangeState::Submitted, 1)).await.expect_err("frozen");
    assert_eq!(code(&err), "freeze_window");
    assert!(
        err.to_string().contains("\"Month-end close\" (month-end): 2026-12-30T00:00:00Z to 2027-01-01T00:00:00Z"),
        "{err}"
    );
    let err = h.app.transition(&alice(T), &normal.id, override_reason(ChangeState::Submitted, 1, "please")).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("freeze_window"), "a normal change cannot override");

    let emergency = with(new_change("Fix", &["search"], inside, 2), |c| c.change_type = ChangeType::Emergency);
    let e = h.app.create(&alice(T), emergency).await.expect("create");
    let err = h.app.transition(&alice(T), &e.id, to(ChangeState::Submitted, 1)).await.expect_err("no reason");
    assert!(err.to_string().contains("override_reason"), "{err}");
    let moved = h
        .app
        .transition(&alice(T), &e.id, override_reason(ChangeState::Submitted, 1, "card payments failing"))
        .await
        .expect("override");
    let trail = h.app.audit(&alice(T), &e.id).await.expect("audit");
    let entered = trail.iter().find(|x| x.changes.iter().any(|f| f.field == "state" && f.after == "submitted"));
    let reason = entered.and_then(|x| x.reason.clone()).unwrap_or_default();
    assert!(
        reason
            .starts_with("freeze override requested, to hold once another person approves (freeze \"Month-end close\"")
            && reason.ends_with("card payments failing"),
        "{reason}"
    );
    // The override holds once someone else approved the emergency, and each use is audited.
    let approved = h.app.decide(&carol(T), &e.id, approve()).await.expect("the cab approves").change;
    let err = h.app.transition(&alice(T), &e.id, to(ChangeState::Scheduled, approved.version)).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("freeze_window"), "every gate needs the reason");
    h.app
        .transition(&alice(T), &e.id, override_reason(ChangeState::Scheduled, approved.version, "still failing"))
        .await
        .expect("approved by another: the override holds");
    let reason = last_reason(&h, &e.id).await;
    assert!(reason.starts_with("freeze override (freeze \"Month-end close\"") && reason.ends_with("still failing"));

    // An emergency approved by nobody but the hub (as stored before this rule) cannot override a freeze.
    let legacy = with(new_change("Old fix", &["search"], inside, 2), |c| c.change_type = ChangeType::Emergency);
    let legacy = h.app.create(&alice(T), legacy).await.expect("create");
    let (submitted, first) = audit::record(
        Some(&legacy),
        legacy.transition(ChangeState::Submitted, t0()).expect("legal"),
        "alice@example.com",
        AuditAction::Transitioned,
        None,
    );
    let (approved, second) = audit::record(
        Some(&submitted),
        submitted.transition(ChangeState::Approved, t0()).expect("legal"),
        "changehub",
        AuditAction::Transitioned,
        Some("approved on submission: emergency change".into()),
    );
    let entries = [first, second];
    let update = changehub_tests::store_contract::plain_update(&legacy, &approved, &entries);
    h.app.store.update_change(update).await.expect("store the old-style approval");
    let err = h
        .app
        .transition(&alice(T), &legacy.id, override_reason(ChangeState::Scheduled, approved.version, "urgent"))
        .await
        .expect_err("not approved by another person");
    assert_eq!(code(&err), "freeze_window");
    assert!(err.to_string().contains("only once someone other than its requester approved it"), "{err}");

    // Scheduling into a freeze declared after approval is refused too.
    let later =
        h.app.create(&alice(T), new_change("Later", &["payments"], t0() + Duration::days(3), 1)).await.expect("create");
    let approved = submit_and_approve(&h.app, T, &later.id).await;
    let xmas = FreezeWindow {
        id: "xmas".into(),
        name: "Holidays".into(),
        services: vec![ServiceName::parse("payments").expect("svc")],
        schedule: Schedule::OneOff { start: t0() + Duration::days(2), end: t0() + Duration::days(10) },
        reason: String::new(),
    };
    h.app.governance().put_freeze(&root(T), xmas).await.expect("declare");
    let err =
        h.app.transition(&alice(T), &later.id, to(ChangeState::Scheduled, approved.version)).await.expect_err("frozen");
    assert!(err.to_string().starts_with("scheduling this change enters a freeze \"Holidays\" (xmas)"), "{err}");
    assert_eq!(moved.state, ChangeState::Submitted);
}

#[tokio::test]
async fn overlapping_changes_on_a_service_or_its_dependencies_are_listed_as_conflicts() {
    let h = hub().await;
    let at = t0() + Duration::days(5);
    let ledger = h.app.create(&alice(T), new_change("Ledger upgrade", &["ledger"], at, 2)).await.expect("create");
    h.app.transition(&alice(T), &ledger.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let same = h
        .app
        .create(&alice(T), new_change("Payments flag", &["payments"], at + Duration::minutes(30), 1))
        .await
        .expect("create");
    h.app.transition(&alice(T), &same.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let apart =
        h.app.create(&alice(T), new_change("Later", &["payments"], at + Duration::hours(5), 1)).await.expect("create");
    h.app.transition(&alice(T), &apart.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let draft = h.app.create(&alice(T), new_change("Draft only", &["payments"], at, 1)).await.expect("create");

    let c = h.app.create(&alice(T), new_change("Payments deploy", &["payments"], at, 1)).await.expect("create");
    let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let found: Vec<(String, String)> =
        submitted.conflicts.iter().map(|x| (x.title.clone(), x.reason.clone())).collect();
    assert_eq!(
        found,
        [
            ("Payments flag".to_owned(), "same service".to_owned()),
            ("Ledger upgrade".to_owned(), "payments depends on ledger".to_owned())
        ]
    );
    assert!(!submitted.conflicts.iter().any(|x| x.change_id == draft.id || x.change_id == apart.id));
}

#[tokio::test]
async fn during_a_major_incident_only_its_commander_schedules_high_risk_changes() {
    let h = hub().await;
    let risky = with(new_change("Failover drill", &["payments"], t0() + Duration::days(2), 1), |c| {
        c.impact.availability = AvailabilityImpact::Outage;
        c.complexity = Complexity::High;
    });
    let c = h.app.create(&alice(T), risky).await.expect("create");
    assert!(c.risk.as_ref().is_some_and(|r| r.level >= RiskLevel::High));
    let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let peer = who(T, "dev@example.com", &["engineers"]);
    h.app.decide(&peer, &c.id, peer_review()).await.expect("peer review");
    h.app.decide(&pat(T), &c.id, approve()).await.expect("level 2");
    let approved = h.app.decide(&carol(T), &c.id, approve()).await.expect("level 3").change;
    assert_eq!((submitted.state, approved.state), (ChangeState::Submitted, ChangeState::Approved));

    h.app
        .governance()
        .declare_incident(&carol(T), ivy_commands("INC-42", "Card payments failing"))
        .await
        .expect("declare");
    let err =
        h.app.transition(&alice(T), &c.id, to(ChangeState::Scheduled, approved.version)).await.expect_err("incident");
    assert_eq!(code(&err), "major_incident");
    assert!(err.to_string().contains("INC-42 \"Card payments failing\" (commander ivy@example.com)"), "{err}");
    let err =
        h.app.transition(&alice(T), &c.id, override_reason(ChangeState::Scheduled, approved.version, "please")).await;
    assert!(err.is_err(), "only the commander may authorize");
    // Issue 9, point 6: the commander holds only the approver role (no requester role, not the cab).
    let ivy = who(T, "ivy@example.com", &["payments-leads"]);
    let err = h
        .app
        .transition(&pat(T), &c.id, override_reason(ChangeState::Scheduled, approved.version, "please"))
        .await
        .expect_err("an approver who does not command the incident");
    assert!(err.to_string().contains("needs the requester role and to be the change's requester"), "{err}");
    let err = h.app.transition(&ivy, &c.id, to(ChangeState::Scheduled, approved.version)).await.expect_err("no reason");
    assert_eq!(code(&err), "major_incident");
    let scheduled = h
        .app
        .transition(&ivy, &c.id, override_reason(ChangeState::Scheduled, approved.version, "the failover is the fix"))
        .await
        .expect("commander");
    assert_eq!(scheduled.state, ChangeState::Scheduled);
    let trail = h.app.audit(&ivy, &c.id).await.expect("audit");
    let reason = trail.last().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert_eq!(
        reason,
        "authorized by incident commander ivy@example.com during major incident INC-42 \"Card payments failing\" (commander ivy@example.com): the failover is the fix"
    );
    // And starts it, inside its window; the commander moves nothing else of it.
    h.app.clock.set(t0() + Duration::days(2));
    let err = h.app.transition(&ivy, &c.id, to(ChangeState::Cancelled, scheduled.version)).await.expect_err("cancel");
    assert_eq!(code(&err), "forbidden");
    let started = h
        .app
        .transition(&ivy, &c.id, override_reason(ChangeState::Implementing, scheduled.version, "the drill is the fix"))
        .await
        .expect("the commander starts it");
    assert_eq!(started.state, ChangeState::Implementing);
    h.app.clock.set(t0());

    // A low-risk change is not held up by the incident.
    let low = h
        .app
        .create(&alice(T), new_change("Copy fix", &["payments"], t0() + Duration::days(2), 1))
        .await
        .expect("create");
    let low = submit_and_approve(&h.app, T, &low.id).await;
    assert!(low.risk.as_ref().is_some_and(|r| r.level < RiskLevel::High));
    h.app.transition(&alice(T), &low.id, to(ChangeState::Scheduled, low.version)).await.expect("low risk schedules");
}

/// Dual control holds for the incident override: a commander does not lift
/// the hold on a change they requested; a commander with no role at all may
/// lift it on someone else's.
#[tokio::test]
async fn an_incident_commander_does_not_lift_the_hold_on_their_own_change() {
    let h = hub().await;
    let risky = |title: &str| {
        with(new_change(title, &["payments"], t0() + Duration::days(2), 1), |c| {
            c.impact.availability = AvailabilityImpact::Outage;
            c.complexity = Complexity::High;
        })
    };
    let approved = async |by: &Caller, title: &str| {
        let c = h.app.create(by, risky(title)).await.expect("create");
        h.app.transition(by, &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
        h.app.decide(&who_is("dev@example.com", &["engineers"]), &c.id, peer_review()).await.expect("peer review");
        h.app.decide(&pat(T), &c.id, approve()).await.expect("level 2");
        h.app.decide(&carol(T), &c.id, approve()).await.expect("level 3").change
    };
    let own = approved(&alice(T), "Alice's failover").await;
    let others = approved(&who_is("bob@example.com", &["engineers"]), "Bob's failover").await;
    let commands = DeclareIncident { commander: "alice@example.com".into(), ..ivy_commands("INC-8", "Payments down") };
    h.app.governance().declare_incident(&carol(T), commands).await.expect("declare");
    let err = h
        .app
        .transition(&alice(T), &own.id, override_reason(ChangeState::Scheduled, own.version, "mine"))
        .await
        .expect_err("own change");
    assert!(matches!(err, ChangeError::Forbidden(_)), "{err}");
    assert!(err.to_string().starts_with("dual control: alice@example.com requested this change"), "{err}");
    // Alice commands it without any role of the catalog: her command is what lets her move Bob's change.
    let roleless = who_is("alice@example.com", &["sre"]);
    let scheduled = h
        .app
        .transition(&roleless, &others.id, override_reason(ChangeState::Scheduled, others.version, "the fix"))
        .await
        .expect("the commander, on someone else's change");
    assert_eq!(scheduled.state, ChangeState::Scheduled);
}

#[tokio::test]
async fn a_major_incident_cannot_be_taken_over_and_only_its_commander_cab_or_admin_resolve_it() {
    let h = hub().await;
    let incident = |commander: &str| DeclareIncident {
        id: "INC-7".into(),
        title: "Card payments failing".into(),
        services: vec![ServiceName::parse("payments").expect("svc")],
        commander: commander.into(),
    };
    let governance = h.app.governance();
    governance.declare_incident(&pat(T), incident("ivy@example.com")).await.expect("declare");
    // Another approver declaring the same id would make themselves commander: refused.
    let lee = who(T, "lee@example.com", &["ledger-leads"]);
    let err = governance.declare_incident(&lee, incident("lee@example.com")).await.expect_err("taken over");
    assert_eq!(code(&err), "incident_exists");
    assert!(err.to_string().contains("already open (commander ivy@example.com, declared by pat@example.com)"), "{err}");
    let open = governance.incidents(&alice(T)).await.expect("read");
    assert_eq!(open.open.len(), 1);
    assert_eq!(open.open[0].commander, "ivy@example.com");

    // An approver who is not its commander cannot resolve it.
    for stranger in [pat(T), lee, who(T, "aud@example.com", &["audit"])] {
        let err = governance.resolve_incident(&stranger, "INC-7").await.expect_err("not the commander");
        assert!(matches!(err, ChangeError::Forbidden(_)), "{err}");
        assert!(err.to_string().contains("needs its commander (ivy@example.com) or the cab or admin role"), "{err}");
    }
    // The commander may, whatever their role; and the cab may.
    let ivy = who(T, "ivy@example.com", &["engineers"]);
    governance.resolve_incident(&ivy, "INC-7").await.expect("the commander resolves");
    governance.declare_incident(&pat(T), incident("ivy@example.com")).await.expect("declared again once resolved");
    governance.resolve_incident(&carol(T), "INC-7").await.expect("the cab resolves");

    // Every declaration and resolution is recorded: who, when, what.
    let log = governance.incidents(&alice(T)).await.expect("read").log;
    let seen: Vec<_> = log.iter().map(|e| (e.action, e.by.as_str(), e.incident.id.as_str())).collect();
    assert_eq!(
        seen,
        [
            (IncidentAction::Declared, "pat@example.com", "INC-7"),
            (IncidentAction::Resolved, "ivy@example.com", "INC-7"),
            (IncidentAction::Declared, "pat@example.com", "INC-7"),
            (IncidentAction::Resolved, "carol@example.com", "INC-7"),
        ]
    );
    assert!(log.iter().all(|e| e.at == t0()), "{log:?}");
}

#[tokio::test]
async fn risk_is_scored_from_tier_attributes_and_the_failure_history_of_similar_changes() {
    let h = hub().await;
    let score = |c: &changehub::domain::Change| {
        c.risk.as_ref().map(|r| (r.score, r.factors.iter().map(|f| f.points).sum::<i64>()))
    };
    let tier1 =
        h.app.create(&alice(T), new_change("a", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    let tier3 =
        h.app.create(&alice(T), new_change("b", &["search"], t0() + Duration::days(2), 1)).await.expect("create");
    let (s1, sum1) = score(&tier1).expect("scored");
    let (s3, _) = score(&tier3).expect("scored");
    assert_eq!(s1, sum1, "factors add up to the score");
    assert!(s1 > s3, "a tier 1 service scores higher than a tier 3 one: {s1} vs {s3}");

    // Three search changes fail: similar changes now carry a failure history.
    h.app.clock.set(t0() + Duration::days(2));
    for _ in 0..3 {
        let c =
            h.app.create(&alice(T), new_change("c", &["search"], t0() + Duration::days(2), 1)).await.expect("create");
        let submitted = h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
        let approved = h
            .app
            .decide(&who(T, "sam@example.com", &["search-leads"]), &c.id, approve())
            .await
            .expect("approve")
            .change;
        let mut v = approved.version;
        for state in [ChangeState::Scheduled, ChangeState::Implementing, ChangeState::Failed] {
            v = h.app.transition(&alice(T), &c.id, to(state, v)).await.expect("move").version;
        }
        assert_eq!(submitted.state, ChangeState::Submitted);
    }
    let after =
        h.app.create(&alice(T), new_change("d", &["search"], t0() + Duration::days(2), 1)).await.expect("create");
    let history =
        after.risk.as_ref().and_then(|r| r.factors.iter().find(|f| f.factor == "failure_history")).expect("factor");
    assert_eq!(history.points, 20, "3 of 3 failed: the full failure_rate_points");
    assert!(history.detail.contains("3 of 3 similar changes failed"), "{}", history.detail);
    assert!(score(&after).expect("scored").0 > s3);
}

#[tokio::test]
async fn roles_decide_who_may_do_what_and_refusals_say_what_is_missing() {
    let h = hub().await;
    let approver_only = pat(T);
    let err = h.app.create(&approver_only, new_change("x", &["payments"], t0(), 1)).await.expect_err("approver");
    assert_eq!(
        err.to_string(),
        "opening a change needs the requester or cab or admin role in tenant acme; you hold: approver"
    );
    let c = h.app.create(&alice(T), new_change("x", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    let other_requester = who(T, "eve@example.com", &["engineers"]);
    let err = h.app.transition(&other_requester, &c.id, to(ChangeState::Submitted, 1)).await.expect_err("not hers");
    assert!(err.to_string().contains("to be the change's requester (alice@example.com)"), "{err}");
    let auditor = who(T, "ava@example.com", &["audit"]);
    assert!(h.app.audit(&auditor, &c.id).await.is_ok(), "auditors read trails");
    assert_eq!(
        code(&h.app.transition(&auditor, &c.id, to(ChangeState::Submitted, 1)).await.expect_err("read only")),
        "forbidden"
    );
    let stranger = who(T, "sol@example.com", &["visitors"]);
    let err = h.app.get(&stranger, &c.id).await.expect_err("no role");
    assert!(err.to_string().contains("your groups (visitors) grant no role"), "{err}");
    let err = h
        .app
        .catalog
        .replace(&carol(T), changehub_tests::fixtures::catalog(), None, &h.app.clock)
        .await
        .expect_err("cab");
    assert!(err.to_string().starts_with("replacing the catalog needs the admin role"), "{err}");
    let cab_moves_any: Caller = carol(T);
    h.app.transition(&cab_moves_any, &c.id, to(ChangeState::Cancelled, 1)).await.expect("cab may cancel any change");
}

#[tokio::test]
async fn a_rejection_ends_the_chain_and_the_change_can_only_close() {
    let h = hub().await;
    let c = h.app.create(&alice(T), new_change("x", &["payments"], t0() + Duration::days(2), 1)).await.expect("create");
    h.app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let reject = changehub::app::changes::DecisionRequest {
        decision: changehub::domain::approval::Verdict::Reject,
        version: None,
        comment: Some("no rollback plan".into()),
    };
    let rejected = h.app.decide(&pat(T), &c.id, reject).await.expect("reject").change;
    assert_eq!(rejected.state, ChangeState::Rejected);
    assert_eq!(
        rejected.approval.as_ref().and_then(|p| p.rejected.as_ref()).map(|d| d.by.as_str()),
        Some("pat@example.com")
    );
    let err = h.app.decide(&carol(T), &c.id, approve()).await.expect_err("closed");
    assert_eq!(code(&err), "no_pending_approval");
    h.app.transition(&alice(T), &c.id, to(ChangeState::Closed, rejected.version)).await.expect("close");
}

#[tokio::test]
async fn starting_implementation_rechecks_the_window_freezes_and_major_incidents() {
    let h = hub().await;
    let at = t0() + Duration::days(2);
    let scheduled = |title: &'static str, edit: fn(&mut NewChange)| {
        let app = &h.app;
        async move {
            let c = app.create(&alice(T), with(new_change(title, &["payments"], at, 1), edit)).await.expect("create");
            let submitted = app.transition(&alice(T), &c.id, to(ChangeState::Submitted, 1)).await.expect("submit");
            let mut version = submitted.version;
            for (who, _) in submitted.approval.iter().flat_map(|p| p.steps.iter()).map(|s| (s.name.clone(), ())) {
                let (by, decision) = match who.as_str() {
                    "team-lead" => (pat(T), approve()),
                    PEER_REVIEW => (who_is("dev@example.com", &["engineers"]), peer_review()),
                    _ => (carol(T), approve()),
                };
                version = app.decide(&by, &c.id, decision).await.expect("approve").change.version;
            }
            app.transition(&alice(T), &c.id, to(ChangeState::Scheduled, version)).await.expect("schedule")
        }
    };
    let a = scheduled("Deploy", |_| {}).await;

    // Before the window, beyond the default 15 minutes' grace.
    h.app.clock.set(at - Duration::minutes(20));
    let err = h.app.transition(&alice(T), &a.id, to(ChangeState::Implementing, a.version)).await.expect_err("early");
    assert_eq!(code(&err), "outside_window");
    assert_eq!(
        err.to_string(),
        format!(
            "now (2026-12-03T21:40:00Z) is outside the change's planned window 2026-12-03T22:00:00Z to 2026-12-03T23:00:00Z (starts may be 15m early); reschedule it (POST /changes/{}/reschedule), or an approved emergency may start with an override_reason",
            a.id
        )
    );
    // The grace is the tenant's to set.
    let mut catalog = changehub_tests::fixtures::catalog();
    catalog.implementation.start_grace = changehub::domain::catalog::Span::parse("30m").expect("span");
    h.app.catalog.replace(&root(T), catalog, None, &h.app.clock).await.expect("a longer grace");

    // A freeze declared after scheduling holds at the start.
    let freeze = FreezeWindow {
        id: "incident-freeze".into(),
        name: "Stabilise".into(),
        services: vec![ServiceName::parse("payments").expect("svc")],
        schedule: Schedule::OneOff { start: at + Duration::minutes(30), end: at + Duration::days(1) },
        reason: String::new(),
    };
    h.app.governance().put_freeze(&root(T), freeze).await.expect("declare");
    let err = h.app.transition(&alice(T), &a.id, to(ChangeState::Implementing, a.version)).await.expect_err("frozen");
    assert_eq!(code(&err), "freeze_window");
    assert!(err.to_string().starts_with("implementing this change enters a freeze \"Stabilise\""), "{err}");
    let lift = LiftFreeze { reason: "stable again".into() };
    h.app.governance().delete_freeze(&root(T), "incident-freeze", lift).await.expect("lift");
    let started = h.app.transition(&alice(T), &a.id, to(ChangeState::Implementing, a.version)).await.expect("start");
    assert_eq!(started.state, ChangeState::Implementing);

    // A major incident declared after scheduling holds a high-risk change at the start.
    let risky = scheduled("Failover", |c| {
        c.impact.availability = AvailabilityImpact::Outage;
        c.complexity = Complexity::High;
    })
    .await;
    h.app.governance().declare_incident(&carol(T), ivy_commands("INC-7", "Latency")).await.expect("declare");
    let err = h.app.transition(&alice(T), &risky.id, to(ChangeState::Implementing, risky.version)).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("major_incident"), "{err:?}");
    let ivy = who_is("ivy@example.com", &["cab"]);
    h.app
        .transition(
            &ivy,
            &risky.id,
            override_reason(ChangeState::Implementing, risky.version, "the failover is the fix"),
        )
        .await
        .expect("the commander starts it");
    h.app.governance().resolve_incident(&carol(T), "INC-7").await.expect("resolve");

    // After the window: a normal change must be rescheduled; an approved emergency may override, audited.
    let late = scheduled("Late", |_| {}).await;
    let hotfix = scheduled("Hotfix", |c| c.change_type = ChangeType::Emergency).await;
    h.app.clock.set(at + Duration::hours(2));
    let err =
        h.app.transition(&alice(T), &late.id, override_reason(ChangeState::Implementing, late.version, "x")).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("outside_window"), "only an emergency overrides the window");
    let err = h.app.transition(&alice(T), &hotfix.id, to(ChangeState::Implementing, hotfix.version)).await;
    assert_eq!(err.as_ref().map_err(code).err(), Some("outside_window"), "the override needs its reason");
    h.app
        .transition(&alice(T), &hotfix.id, override_reason(ChangeState::Implementing, hotfix.version, "still down"))
        .await
        .expect("an approved emergency overrides its window");
    let reason = last_reason(&h, &hotfix.id).await;
    assert!(
        reason.starts_with("window override (now 2026-12-04T00:00:00Z is outside the planned window")
            && reason.ends_with("still down"),
        "{reason}"
    );

    // Rescheduled (audited; the freeze gate applies to the new window), the late change starts.
    let holiday = FreezeWindow {
        id: "afternoon".into(),
        name: "Afternoon".into(),
        services: vec![],
        schedule: Schedule::OneOff { start: at + Duration::hours(3), end: at + Duration::hours(5) },
        reason: String::new(),
    };
    h.app.governance().put_freeze(&root(T), holiday).await.expect("declare");
    let moving = |start: chrono::DateTime<chrono::Utc>| RescheduleRequest {
        version: late.version,
        planned_start: start,
        planned_end: start + Duration::hours(1),
        reason: "missed the window: the deploy pipeline was down".into(),
        override_reason: None,
    };
    let err = h.app.reschedule(&alice(T), &late.id, moving(at + Duration::hours(6))).await.expect_err("her own");
    assert_eq!(code(&err), "forbidden");
    assert!(err.to_string().contains("outside its approved window"), "{err}");
    let narrowed =
        RescheduleRequest { planned_end: late.planned_end - Duration::minutes(30), ..moving(late.planned_start) };
    let narrowed = h.app.reschedule(&alice(T), &late.id, narrowed).await.expect("the requester narrows her window");
    let moving =
        |start: chrono::DateTime<chrono::Utc>| RescheduleRequest { version: narrowed.version, ..moving(start) };
    let err = h.app.reschedule(&carol(T), &late.id, moving(at + Duration::hours(3))).await.expect_err("frozen");
    assert_eq!(code(&err), "freeze_window");
    assert!(err.to_string().starts_with("rescheduling this change enters a freeze \"Afternoon\""), "{err}");
    let err = h.app.reschedule(&pat(T), &late.id, moving(at + Duration::hours(6))).await.expect_err("not hers");
    assert_eq!(code(&err), "forbidden");
    let moved = h.app.reschedule(&carol(T), &late.id, moving(at + Duration::hours(6))).await.expect("reschedule");
    assert_eq!((moved.state, moved.planned_start), (ChangeState::Scheduled, at + Duration::hours(6)));
    let trail = h.app.audit(&alice(T), &late.id).await.expect("audit");
    let last = trail.last().expect("entries");
    assert_eq!(last.action, AuditAction::Rescheduled);
    assert_eq!(last.reason.as_deref(), Some("missed the window: the deploy pipeline was down"));
    assert!(last.changes.iter().any(|f| f.field == "planned_start"), "{:?}", last.changes);
    h.app.clock.set(at + Duration::hours(6));
    let started = h.app.transition(&alice(T), &late.id, to(ChangeState::Implementing, moved.version)).await;
    let started = started.expect("starts in its new window");
    assert_eq!(started.state, ChangeState::Implementing);
    let again = RescheduleRequest { version: started.version, ..moving(at + Duration::hours(8)) };
    let err = h.app.reschedule(&alice(T), &late.id, again).await.expect_err("started");
    assert_eq!(code(&err), "not_reschedulable");
}

/// A major incident on payments, commanded by Ivy.
fn ivy_commands(id: &str, title: &str) -> DeclareIncident {
    DeclareIncident {
        id: id.into(),
        title: title.into(),
        services: vec![ServiceName::parse("payments").expect("svc")],
        commander: "ivy@example.com".into(),
    }
}

/// The reason of the latest audit entry of change `id`.
async fn last_reason(h: &Hub, id: &changehub::domain::ChangeId) -> String {
    let trail = h.app.audit(&alice(T), id).await.expect("audit");
    trail.last().and_then(|x| x.reason.clone()).unwrap_or_default()
}

fn who_is(user: &str, groups: &[&str]) -> Caller {
    who(T, user, groups)
}
