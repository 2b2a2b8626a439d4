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
