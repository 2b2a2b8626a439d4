//! Escalation of approvals that wait: the use case on both stores.

use changehub_tests::{aws, escalation_contract as contract};

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    overdue_approval_escalates_level_by_level_then_breaches,
    cancelled_or_rejected_changes_are_not_chased,
    overlapping_ticks_take_each_step_once,
    steps_name_the_delegate_of_an_approver,
    a_scheduled_change_is_reminded_once_its_lead_before_it_starts,
    a_cancelled_or_started_change_gets_no_reminder,
    a_late_tick_says_the_change_has_not_started,
    overlapping_ticks_send_each_reminder_once,
);

/// The escalate function's handler on DynamoDB (moto), invoked with the
/// schedule's input: a tick at the deadline escalates, a second one finds the step taken.
#[tokio::test]
async fn the_escalate_function_escalates_on_a_scheduler_invocation() {
    use changehub::app::Changes;
    use changehub::app::escalation::Escalator;
    use changehub::domain::ChangeState;
    use changehub::ports::FixedClock;
    use changehub_tests::fixtures::{alice, seed, to};
    use changehub_tests::{new_change, t0};
    let store = aws::dynamo_store().await;
    let clock = FixedClock::new(t0());
    let app = Changes::new(store.clone(), &clock);
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    let change = app
        .create(&alice(&tenant), new_change("x", &["payments"], t0() + chrono::Duration::days(10), 1))
        .await
        .expect("create");
    app.transition(&alice(&tenant), &change.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    let event: escalate::Scheduled =
        serde_json::from_str(include_str!("../../../events/scheduler/escalate.json")).expect("the sample input");
    let freezes = freezes(&store, &app, &clock);
    let gates = gates(&store, &clock);
    let escalator = Escalator { store, catalog: app.catalog.clone(), clock: &clock };
    clock.set(t0() + chrono::Duration::hours(4));
    let summary = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    let escalated = escalate::Summary { read: 1, escalations: 1, ..escalate::Summary::default() };
    assert_eq!(summary, escalated, "the reminder collapses into the escalation due at the deadline");
    let again = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    assert_eq!(again, escalate::Summary::default(), "the change waits for its next step in the index");
}

/// The escalate function on DynamoDB (moto) with a scheduled change due
/// for its "starting soon" reminder: one reminder, counted in the summary.
#[tokio::test]
async fn the_escalate_function_sends_a_starting_soon_reminder() {
    use changehub::app::Changes;
    use changehub::app::escalation::Escalator;
    use changehub::domain::ChangeState;
    use changehub::ports::FixedClock;
    use changehub_tests::fixtures::{alice, seed, submit_and_approve, to};
    use changehub_tests::{new_change, t0};
    let store = aws::dynamo_store().await;
    let clock = FixedClock::new(t0());
    let app = Changes::new(store.clone(), &clock);
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    let start = t0() + chrono::Duration::days(1);
    let change = app.create(&alice(&tenant), new_change("x", &["payments"], start, 1)).await.expect("create");
    let approved = submit_and_approve(&app, &tenant, &change.id).await;
    app.transition(&alice(&tenant), &change.id, to(ChangeState::Scheduled, approved.version)).await.expect("schedule");
    let event: escalate::Scheduled =
        serde_json::from_str(include_str!("../../../events/scheduler/escalate.json")).expect("the sample input");
    let freezes = freezes(&store, &app, &clock);
    let gates = gates(&store, &clock);
    let escalator = Escalator { store, catalog: app.catalog.clone(), clock: &clock };
    clock.set(start - chrono::Duration::minutes(59));
    let summary = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    assert_eq!(summary, escalate::Summary { read: 1, starting_soon: 1, ..escalate::Summary::default() });
    let again = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    assert_eq!(again, escalate::Summary::default(), "sent once: off the index");
}

type Freezes<'c> = changehub::app::freeze_starting::FreezeTicker<
    changehub::adapters::dynamodb::DynamoStore,
    changehub::app::catalog::CachedCatalog<changehub::adapters::dynamodb::DynamoStore>,
    &'c changehub::ports::FixedClock,
    changehub::adapters::local_bus::LocalBus,
    changehub_tests::drift_contract::Told,
>;

/// The escalate function's "freeze starting" part, on `store`, telling into memory.
fn freezes<'c>(
    store: &changehub::adapters::dynamodb::DynamoStore,
    app: &changehub::app::Changes<changehub::adapters::dynamodb::DynamoStore, &'c changehub::ports::FixedClock>,
    clock: &'c changehub::ports::FixedClock,
) -> Freezes<'c> {
    let (bus, told) =
        (changehub::adapters::local_bus::LocalBus::new(), changehub_tests::drift_contract::Told::default());
    changehub::app::freeze_starting::FreezeTicker::new(store.clone(), app.catalog.clone(), clock, bus, told)
}

/// The escalate function's hand-back of deployment protection rule requests, on `store`.
fn gates<'c>(
    store: &changehub::adapters::dynamodb::DynamoStore,
    clock: &'c changehub::ports::FixedClock,
) -> changehub::app::protection::ProtectionTicker<
    changehub::adapters::dynamodb::DynamoStore,
    changehub::adapters::local_bus::LocalBus,
    &'c changehub::ports::FixedClock,
> {
    let bus = changehub::adapters::local_bus::LocalBus::new();
    changehub::app::protection::ProtectionTicker { store: store.clone(), bus, clock }
}

/// The escalate function on DynamoDB (moto) with a freeze of payments
/// declared to start within the lead: told once, counted in the summary.
#[tokio::test]
async fn the_escalate_function_tells_a_freeze_starting() {
    use changehub::app::Changes;
    use changehub::app::escalation::Escalator;
    use changehub::ports::FixedClock;
    use changehub_tests::fixtures::{carol, seed};
    use changehub_tests::t0;
    let store = aws::dynamo_store().await;
    let clock = FixedClock::new(t0());
    let app = Changes::new(store.clone(), &clock);
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    let start = t0() + chrono::Duration::minutes(30);
    let window = serde_json::from_value(serde_json::json!({
        "id": "dns", "name": "DNS move", "services": ["payments"],
        "schedule": {"kind": "one_off", "start": start, "end": start + chrono::Duration::hours(1)},
    }))
    .expect("window");
    app.governance().put_freeze(&carol(&tenant), window).await.expect("declare");
    let event: escalate::Scheduled =
        serde_json::from_str(include_str!("../../../events/scheduler/escalate.json")).expect("the sample input");
    let freezes = freezes(&store, &app, &clock);
    let gates = gates(&store, &clock);
    let escalator = Escalator { store, catalog: app.catalog.clone(), clock: &clock };
    let summary = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    assert_eq!(summary, escalate::Summary { freezes_read: 1, freeze_starting: 1, ..escalate::Summary::default() });
    assert_eq!(freezes.notifier.all().len(), 4, "the feed, payments-team and two stakeholders");
    let again = escalate::handle(&escalator, &freezes, &gates, &event).await.expect("tick");
    assert_eq!(again, escalate::Summary::default(), "told once: off the index");
}
