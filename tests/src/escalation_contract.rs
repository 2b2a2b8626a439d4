//! The escalation contract: ticks read the due index and take each step of
//! an approval's cadence once, on both stores. The sample catalog's payments
//! chain: level 1 (payments-leads, 4h, escalating to payments-managers),
//! level 2 (cab, 1d, to cto-office), each with the default cadence (a
//! reminder at 50%, escalations at the deadline and one SLA later, the breach
//! one SLA after that).

use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::app::escalation::{Escalator, Tick};
use changehub::domain::audit::AuditAction;
use changehub::domain::escalation::{Audience, NudgeKind};
use changehub::domain::{Change, ChangeId, ChangeState};
use changehub::ports::{DuePartition, FixedClock};
use chrono::{DateTime, Duration, Utc};

use crate::fixtures::{self, approve, seed, to};
use crate::{new_change, t0};

fn h(n: i64) -> Duration {
    Duration::hours(n)
}

/// A tenant with the sample catalog, and a change on payments submitted at `t0`.
async fn submitted<S: ChangeStore>(app: &Changes<S, &FixedClock>) -> (String, ChangeId) {
    let tenant = crate::unique("acme");
    seed(app, &tenant).await;
    let alice = fixtures::alice(&tenant);
    let created =
        app.create(&alice, new_change("x", &["payments"], t0() + Duration::days(10), 1)).await.expect("create");
    app.transition(&alice, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    (tenant, created.id)
}

fn escalator<'c, S: ChangeStore>(
    app: &Changes<S, &'c FixedClock>,
    clock: &'c FixedClock,
) -> Escalator<S, changehub::app::catalog::CachedCatalog<S>, &'c FixedClock> {
    Escalator { store: app.store.clone(), catalog: app.catalog.clone(), clock }
}

/// One tick at `at`: the steps it took, as (kind, number, to).
async fn tick_at<S: ChangeStore>(
    esc: &Escalator<S, changehub::app::catalog::CachedCatalog<S>, &FixedClock>,
    clock: &FixedClock,
    at: DateTime<Utc>,
) -> Vec<(NudgeKind, u32, String)> {
    clock.set(at);
    steps(&esc.tick().await.expect("tick"))
}

fn steps(tick: &Tick) -> Vec<(NudgeKind, u32, String)> {
    tick.taken.iter().map(|t| (t.kind, t.number, t.to.clone())).collect()
}

async fn current<S: ChangeStore>(app: &Changes<S, &FixedClock>, tenant: &str, id: &ChangeId) -> Change {
    let tenant = changehub::domain::TenantId::parse(tenant).expect("tenant");
    app.store.get_change(&tenant, id).await.expect("get").expect("the change")
}

async fn actions<S: ChangeStore>(app: &Changes<S, &FixedClock>, tenant: &str, id: &ChangeId) -> Vec<AuditAction> {
    let tenant = changehub::domain::TenantId::parse(tenant).expect("tenant");
    app.store.audit_trail(&tenant, id).await.expect("trail").iter().map(|e| e.action).collect()
}

fn one(kind: NudgeKind, number: u32, to: &str) -> Vec<(NudgeKind, u32, String)> {
    vec![(kind, number, to.to_owned())]
}

/// Reminder, escalation, a decision that stops level 1 and opens level 2's
/// own cadence, then a late tick that takes the breach once.
pub async fn overdue_approval_escalates_level_by_level_then_breaches<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, id) = submitted(&app).await;
    let esc = escalator(&app, &clock);
    assert_eq!(tick_at(&esc, &clock, t0() + h(1)).await, [], "nothing is due before the first reminder");
    assert_eq!(tick_at(&esc, &clock, t0() + h(2)).await, one(NudgeKind::Reminder, 1, "payments-leads"));
    assert_eq!(tick_at(&esc, &clock, t0() + h(2)).await, [], "a step is taken once");
    assert_eq!(tick_at(&esc, &clock, t0() + h(4)).await, one(NudgeKind::Escalation, 1, "payments-managers"));
    let change = current(&app, &tenant, &id).await;
    let step = &change.approval.as_ref().expect("plan").steps[0];
    let state = step.escalation.as_ref().expect("escalation state");
    assert_eq!((state.taken, state.escalations, state.next_at), (2, 1, Some(t0() + h(8))));
    let last = state.last.as_ref().expect("the last step");
    assert_eq!((last.audience, last.seq, last.due_at), (Audience::EscalateTo, change.version, t0() + h(4)));
    let partition = DuePartition::approvals_of(&id);
    let due = app.store.due(&partition, t0() + h(8), 100, None).await.expect("due");
    assert!(due.items.iter().any(|c| c.id == id), "the index holds the next step");
    let early = app.store.due(&partition, t0() + h(8) - Duration::seconds(1), 100, None).await.expect("due");
    assert!(!early.items.iter().any(|c| c.id == id), "and not before it");

    clock.set(t0() + h(5));
    app.decide(&fixtures::pat(&tenant), &id, approve()).await.expect("level 1");
    assert_eq!(tick_at(&esc, &clock, t0() + h(8)).await, [], "level 1's cadence stopped with its decision");
    // Level 2 opened at 5h with a 1d SLA: the reminder at 17h, escalations at 29h and 53h, the breach at 77h.
    assert_eq!(tick_at(&esc, &clock, t0() + h(17)).await, one(NudgeKind::Reminder, 1, "cab"));
    let late = tick_at(&esc, &clock, t0() + h(100)).await;
    assert_eq!(late, one(NudgeKind::Breach, 1, "cab"), "a late tick takes the latest step only");
    let change = current(&app, &tenant, &id).await;
    let plan = change.approval.as_ref().expect("plan");
    assert!(plan.sla_breached);
    assert_eq!(plan.steps[1].escalation.as_ref().map(|e| (e.escalations, e.next_at)), Some((2, None)));
    assert_eq!(tick_at(&esc, &clock, t0() + h(1000)).await, [], "nothing follows the breach");
    assert!(app.store.due(&partition, t0() + h(1000), 100, None).await.expect("due").items.iter().all(|c| c.id != id));
    use AuditAction::*;
    assert_eq!(
        actions(&app, &tenant, &id).await,
        [Created, Transitioned, ApprovalReminded, ApprovalEscalated, Decided, ApprovalReminded, ApprovalSlaBreached]
    );
}

/// Cancelling (withdrawing) a waiting change stops its cadence at once, and so does rejecting it.
pub async fn cancelled_or_rejected_changes_are_not_chased<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, cancelled) = submitted(&app).await;
    let alice = fixtures::alice(&tenant);
    let rejected = app.create(&alice, new_change("y", &["payments"], t0() + Duration::days(10), 1)).await.expect("y");
    app.transition(&alice, &rejected.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let esc = escalator(&app, &clock);
    assert_eq!(tick_at(&esc, &clock, t0() + h(2)).await.len(), 2, "both reminded");
    clock.set(t0() + h(3));
    app.transition(&alice, &cancelled, to(ChangeState::Cancelled, 3)).await.expect("withdraw");
    let no = changehub::app::changes::DecisionRequest {
        decision: changehub::domain::approval::Verdict::Reject,
        ..approve()
    };
    app.decide(&fixtures::pat(&tenant), &rejected.id, no).await.expect("reject");
    clock.set(t0() + h(100));
    let tick = esc.tick().await.expect("tick");
    assert_eq!((tick.read, tick.taken.len()), (0, 0), "neither is in the due index any more");
}

/// Two to four ticks at once: each step is taken once, by one of them.
pub async fn overlapping_ticks_take_each_step_once<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let mut changes = Vec::new();
    for _ in 0..3 {
        changes.push(submitted(&app).await);
    }
    let [a, b, c, d] = [0; 4].map(|_| escalator(&app, &clock));
    let taken = |ticks: &[&Result<Tick, _>]| -> usize {
        ticks.iter().map(|r| r.as_ref().map_or(0, |t: &Tick| t.taken.len())).sum()
    };
    clock.set(t0() + h(2));
    let (x, y) = tokio::join!(a.tick(), b.tick());
    assert!(x.is_ok() && y.is_ok());
    assert_eq!(taken(&[&x, &y]), changes.len(), "two ticks: one reminder per change");
    clock.set(t0() + h(4));
    let (x, y, z) = tokio::join!(a.tick(), b.tick(), c.tick());
    assert!(x.is_ok() && y.is_ok() && z.is_ok());
    assert_eq!(taken(&[&x, &y, &z]), changes.len(), "three ticks: one escalation per change");
    clock.set(t0() + h(8));
    let (x, y, z, w) = tokio::join!(a.tick(), b.tick(), c.tick(), d.tick());
    assert!(x.is_ok() && y.is_ok() && z.is_ok() && w.is_ok());
    assert_eq!(taken(&[&x, &y, &z, &w]), changes.len(), "four ticks: one second escalation per change");
    for (tenant, id) in &changes {
        use AuditAction::*;
        let trail = actions(&app, tenant, id).await;
        assert_eq!(trail, [Created, Transitioned, ApprovalReminded, ApprovalEscalated, ApprovalEscalated]);
    }
}

/// A reminder and an escalation name the delegate who decides the level for
/// one of its approvers while the delegation is in force (on the step and in
/// the audit entry); once it is revoked the next step names nobody.
pub async fn steps_name_the_delegate_of_an_approver<S: ChangeStore>(store: S) {
    use changehub::domain::delegation::NewDelegation;
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, id) = submitted(&app).await;
    let pat = fixtures::pat(&tenant);
    let leave = NewDelegation {
        delegate: "dave@example.com".into(),
        levels: vec!["team-lead".into()],
        from: t0(),
        until: t0() + h(24 * 7),
        reason: "on leave".into(),
    };
    let delegation = app.governance().delegate(&pat, leave).await.expect("delegate");
    let esc = escalator(&app, &clock);
    let named = ["dave@example.com for pat@example.com".to_owned()];
    let delegates_of_last = |c: &Change| {
        let step = &c.approval.as_ref().expect("plan").steps[0];
        step.escalation.as_ref().and_then(|e| e.last.as_ref()).map(|n| n.delegates.clone()).unwrap_or_default()
    };
    assert_eq!(tick_at(&esc, &clock, t0() + h(2)).await, one(NudgeKind::Reminder, 1, "payments-leads"));
    assert_eq!(delegates_of_last(&current(&app, &tenant, &id).await), named);
    assert_eq!(tick_at(&esc, &clock, t0() + h(4)).await, one(NudgeKind::Escalation, 1, "payments-managers"));
    assert_eq!(delegates_of_last(&current(&app, &tenant, &id).await), named);
    let tenant_id = changehub::domain::TenantId::parse(&tenant).expect("tenant");
    let trail = app.store.audit_trail(&tenant_id, &id).await.expect("trail");
    let reason = trail.last().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(
        reason.ends_with("; delegates deciding for its approvers: dave@example.com for pat@example.com"),
        "{reason}"
    );
    clock.set(t0() + h(5));
    app.governance().revoke_delegation(&pat, &delegation.id, None).await.expect("revoke");
    assert_eq!(tick_at(&esc, &clock, t0() + h(8)).await, one(NudgeKind::Escalation, 2, "payments-managers"));
    assert!(delegates_of_last(&current(&app, &tenant, &id).await).is_empty(), "a revoked delegation is not named");
}

/// A tenant with the sample catalog (a one-hour starting-soon lead), and a
/// change on payments planned ten days after `t0`, approved and scheduled at `t0`.
async fn scheduled<S: ChangeStore>(app: &Changes<S, &FixedClock>) -> (String, Change) {
    let tenant = crate::unique("acme");
    seed(app, &tenant).await;
    let alice = fixtures::alice(&tenant);
    let created =
        app.create(&alice, new_change("x", &["payments"], t0() + Duration::days(10), 1)).await.expect("create");
    let approved = fixtures::submit_and_approve(app, &tenant, &created.id).await;
    let scheduled = app.transition(&alice, &created.id, to(ChangeState::Scheduled, approved.version)).await;
    (tenant, scheduled.expect("schedule"))
}

/// One tick at `at`: the changes it reminded.
async fn reminded_at<S: ChangeStore>(
    esc: &Escalator<S, changehub::app::catalog::CachedCatalog<S>, &FixedClock>,
    clock: &FixedClock,
    at: DateTime<Utc>,
) -> Vec<ChangeId> {
    clock.set(at);
    esc.tick().await.expect("tick").starting_soon.iter().map(|r| r.change_id).collect()
}

/// A scheduled change waits in its starting-soon partition (and in no
/// approvals partition) until its lead before the planned start; a tick
/// then sends its reminder once, and a new planned start arms it again.
pub async fn a_scheduled_change_is_reminded_once_its_lead_before_it_starts<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, change) = scheduled(&app).await;
    let id = change.id;
    let (_, waiting) = submitted(&app).await;
    let due_at = t0() + Duration::days(10) - h(1);
    let (store, soon) = (&app.store, &DuePartition::starting_soon_of(&id));
    let read = move |until| async move { store.due(soon, until, 100, None).await.expect("due").items };
    let ids = |items: Vec<Change>| items.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert!(!ids(read(due_at - Duration::seconds(1)).await).contains(&id), "not before its lead");
    let items = read(due_at).await;
    assert!(items.iter().any(|c| c.id == id), "its partition holds it from its lead on");
    assert!(items.iter().all(|c| c.state == ChangeState::Scheduled), "and nothing else: {:?}", ids(items));
    for shard in 0..changehub::ports::DUE_SHARDS {
        let approvals = DuePartition::Approvals { shard };
        let due = app.store.due(&approvals, due_at + h(1000), 100, None).await.expect("due");
        assert!(due.items.iter().all(|c| c.id != id), "no approvals partition holds a scheduled change");
        let reminders = DuePartition::StartingSoon { shard };
        let due = app.store.due(&reminders, due_at + h(1000), 100, None).await.expect("due");
        assert!(due.items.iter().all(|c| c.id != waiting), "no starting-soon partition holds a submitted change");
    }

    let esc = escalator(&app, &clock);
    assert_eq!(reminded_at(&esc, &clock, due_at - Duration::seconds(1)).await, [] as [ChangeId; 0]);
    assert_eq!(reminded_at(&esc, &clock, due_at).await, [id], "reminded at its lead");
    assert_eq!(reminded_at(&esc, &clock, due_at + Duration::minutes(1)).await, [] as [ChangeId; 0], "once");
    assert!(read(due_at + h(1000)).await.iter().all(|c| c.id != id), "off the index once sent");
    let sent = current(&app, &tenant, &id).await;
    let mark = sent.starting_soon.as_ref().and_then(|s| s.sent.clone()).expect("recorded on the change");
    assert_eq!((mark.at, mark.seq), (due_at, sent.version));
    use AuditAction::*;
    assert_eq!(
        actions(&app, &tenant, &id).await,
        [Created, Transitioned, Decided, Decided, Transitioned, ChangeStartingSoon]
    );

    let later = changehub::app::changes::RescheduleRequest {
        version: sent.version,
        planned_start: sent.planned_start + Duration::minutes(30),
        planned_end: sent.planned_end,
        reason: "start after the batch job".into(),
        override_reason: None,
    };
    app.reschedule(&fixtures::alice(&tenant), &id, later).await.expect("reschedule");
    assert_eq!(reminded_at(&esc, &clock, due_at + Duration::minutes(29)).await, [] as [ChangeId; 0]);
    assert_eq!(reminded_at(&esc, &clock, due_at + Duration::minutes(30)).await, [id], "armed again for the new start");
}

/// Cancelling a scheduled change, or starting its implementation, takes it
/// off the index in the same write: no reminder, even from a late tick.
pub async fn a_cancelled_or_started_change_gets_no_reminder<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, cancelled) = scheduled(&app).await;
    let alice = fixtures::alice(&tenant);
    app.transition(&alice, &cancelled.id, to(ChangeState::Cancelled, cancelled.version)).await.expect("cancel");
    let (tenant, started) = scheduled(&app).await;
    clock.set(started.planned_start);
    let alice = fixtures::alice(&tenant);
    app.transition(&alice, &started.id, to(ChangeState::Implementing, started.version)).await.expect("start");
    let esc = escalator(&app, &clock);
    clock.set(t0() + Duration::days(20));
    let tick = esc.tick().await.expect("tick");
    assert_eq!((tick.read, tick.starting_soon.len()), (0, 0), "neither is in the due index any more");
}

/// A tick after the planned start still sends the reminder once, saying the change has not started.
pub async fn a_late_tick_says_the_change_has_not_started<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let (tenant, change) = scheduled(&app).await;
    let esc = escalator(&app, &clock);
    clock.set(change.planned_start + Duration::minutes(15));
    let tick = esc.tick().await.expect("tick");
    assert_eq!(tick.starting_soon.iter().map(|r| (r.change_id, r.late)).collect::<Vec<_>>(), [(change.id, true)]);
    let tenant = changehub::domain::TenantId::parse(&tenant).expect("tenant");
    let trail = app.store.audit_trail(&tenant, &change.id).await.expect("trail");
    let reason = trail.last().and_then(|e| e.reason.clone()).unwrap_or_default();
    assert!(reason.contains("15 min ago, and not started yet"), "{reason}");
}

/// Two to four ticks at once: each change's reminder goes out once.
pub async fn overlapping_ticks_send_each_reminder_once<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let mut changes = Vec::new();
    for _ in 0..3 {
        changes.push(scheduled(&app).await);
    }
    let [a, b, c, d] = [0; 4].map(|_| escalator(&app, &clock));
    clock.set(t0() + Duration::days(10) - h(1));
    let (x, y, z, w) = tokio::join!(a.tick(), b.tick(), c.tick(), d.tick());
    let ticks = [x, y, z, w].map(|t| t.expect("tick"));
    let mut sent: Vec<ChangeId> = ticks.iter().flat_map(|t| t.starting_soon.iter().map(|r| r.change_id)).collect();
    sent.sort();
    let mut expected: Vec<ChangeId> = changes.iter().map(|(_, c)| c.id).collect();
    expected.sort();
    assert_eq!(sent, expected, "one reminder per change, whichever tick sent it");
    for (tenant, change) in &changes {
        let trail = actions(&app, tenant, &change.id).await;
        assert_eq!(trail.iter().filter(|a| **a == AuditAction::ChangeStartingSoon).count(), 1);
    }
}
