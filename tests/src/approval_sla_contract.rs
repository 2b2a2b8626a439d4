//! The approval-wait counters (mean time to approve), on both stores: each
//! decision that closes a step counts its wait in the same write, each
//! escalation and breach in the escalation's write, and the report reads
//! them back. The sample catalog's payments chain: team-lead (4h), cab (1d).

use changehub::app::Changes;
use changehub::app::changes::ChangeStore;
use changehub::app::changes::sla::SlaPeriod;
use changehub::app::escalation::Escalator;
use changehub::domain::approval::Verdict;
use changehub::domain::{ChangeId, ChangeState, TenantId};
use changehub::ports::{FixedClock, WaitCounts, WaitDimension};
use chrono::Duration;

use crate::fixtures::{self, approve, seed, to};
use crate::{new_change, t0};

/// A change on payments, submitted at `t0`.
async fn submitted<S: ChangeStore>(app: &Changes<S, &FixedClock>, tenant: &str, title: &str) -> ChangeId {
    let alice = fixtures::alice(tenant);
    let created =
        app.create(&alice, new_change(title, &["payments"], t0() + Duration::days(10), 1)).await.expect("create");
    app.transition(&alice, &created.id, to(ChangeState::Submitted, 1)).await.expect("submit");
    created.id
}

/// The counts under `name` of `dimension` in December 2026.
async fn counted<S: ChangeStore>(
    app: &Changes<S, &FixedClock>,
    tenant: &str,
    dimension: WaitDimension,
    name: &str,
) -> WaitCounts {
    let tenant = TenantId::parse(tenant).expect("tenant");
    let all = app.store.waits(&tenant, "2026-12").await.expect("waits");
    all.into_iter().find(|(d, n, _)| *d == dimension && n == name).map(|(_, _, c)| c).unwrap_or_default()
}

fn histogram(at: &[(usize, u64)]) -> [u64; changehub::ports::WAIT_BUCKETS.len() + 1] {
    let mut b = [0; changehub::ports::WAIT_BUCKETS.len() + 1];
    for (i, n) in at {
        b[*i] = *n;
    }
    b
}

/// Two changes: one approved at 30m then 3h30m; one escalated at 4h,
/// approved at 5h, rejected by the cab an hour later. Every figure of the
/// counters and of the report follows from those times.
pub async fn decisions_and_escalations_fill_the_wait_counters<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let tenant = crate::unique("acme");
    seed(&app, &tenant).await;
    let (pat, carol) = (fixtures::pat(&tenant), fixtures::carol(&tenant));
    let a = submitted(&app, &tenant, "a").await;
    let b = submitted(&app, &tenant, "b").await;
    clock.set(t0() + Duration::minutes(30));
    app.decide(&pat, &a, approve()).await.expect("a, level 1");
    clock.set(t0() + Duration::minutes(210));
    app.decide(&carol, &a, approve()).await.expect("a, level 2");
    let escalator = Escalator { store: app.store.clone(), catalog: app.catalog.clone(), clock: &clock };
    clock.set(t0() + Duration::hours(4));
    assert_eq!(escalator.tick().await.expect("tick").taken.len(), 1, "b's level 1 escalates");
    clock.set(t0() + Duration::hours(5));
    app.decide(&pat, &b, approve()).await.expect("b, level 1");
    clock.set(t0() + Duration::hours(6));
    let reject = changehub::app::changes::DecisionRequest { decision: Verdict::Reject, ..approve() };
    app.decide(&carol, &b, reject).await.expect("b, rejected at level 2");

    // team-lead: 30m (bucket 30m, index 5) and 5h (bucket 8h, index 9), one escalation.
    let lead = WaitCounts {
        decided: 2,
        wait_seconds: 1800 + 5 * 3600,
        buckets: histogram(&[(5, 1), (9, 1)]),
        escalations: 1,
        breaches: 0,
    };
    assert_eq!(counted(&app, &tenant, WaitDimension::Level, "team-lead").await, lead);
    // cab: 3h (bucket 4h, index 8) and 1h (bucket 1h, index 6).
    let cab = WaitCounts {
        decided: 2,
        wait_seconds: 3 * 3600 + 3600,
        buckets: histogram(&[(6, 1), (8, 1)]),
        escalations: 0,
        breaches: 0,
    };
    assert_eq!(counted(&app, &tenant, WaitDimension::Level, "cab").await, cab);
    let mut all = lead.clone();
    all.add(&cab);
    assert_eq!(counted(&app, &tenant, WaitDimension::Service, "payments").await, all);
    assert_eq!(counted(&app, &tenant, WaitDimension::Team, "payments-team").await, all);
    assert_eq!(counted(&app, &tenant, WaitDimension::ChangeType, "normal").await, all);

    let report = app
        .approval_sla(&fixtures::alice(&tenant), &SlaPeriod { period: Some("2026-12".into()), ..SlaPeriod::default() })
        .await
        .expect("report");
    assert_eq!(report.bottleneck.as_deref(), Some("team-lead"));
    let rows: Vec<_> = report
        .levels
        .iter()
        .map(|r| (r.key.as_str(), r.count, r.mean_seconds, r.p50_seconds, r.p90_seconds, r.escalations))
        .collect();
    assert_eq!(
        rows,
        [
            ("team-lead", 2, Some(9900), Some(1800), Some(8 * 3600), 1),
            ("cab", 2, Some(7200), Some(3600), Some(4 * 3600), 0)
        ],
        "slowest level first; percentiles at bucket resolution"
    );
    assert_eq!(report.teams.len(), 1);
    assert_eq!((report.teams[0].count, report.teams[0].mean_seconds), (4, Some(8550)));
    let earlier = SlaPeriod { period: Some("2026-11".into()), ..SlaPeriod::default() };
    let none = app.approval_sla(&fixtures::alice(&tenant), &earlier).await.expect("report");
    assert!(none.levels.is_empty() && none.bottleneck.is_none(), "{none:?}");
}

/// Two approvers deciding the same level at once: one decision wins and is
/// counted once; decisions on several changes at once are each counted.
pub async fn concurrent_decisions_are_counted_once_each<S: ChangeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let app = Changes::new(store, &clock);
    let tenant = crate::unique("acme");
    seed(&app, &tenant).await;
    let pat = fixtures::pat(&tenant);
    let sam = fixtures::who(&tenant, "sam@example.com", &["payments-leads"]);
    let (a, b, c) =
        (submitted(&app, &tenant, "a").await, submitted(&app, &tenant, "b").await, submitted(&app, &tenant, "c").await);
    clock.set(t0() + Duration::minutes(10));
    let decide = |who, id| {
        let app = &app;
        async move { app.decide(who, &id, approve()).await.is_ok() }
    };
    let won = tokio::join!(
        decide(&pat, a),
        decide(&sam, a),
        decide(&pat, b),
        decide(&sam, b),
        decide(&pat, c),
        decide(&sam, c)
    );
    let won = [won.0, won.1, won.2, won.3, won.4, won.5].iter().filter(|ok| **ok).count();
    assert_eq!(won, 3, "one decision per change wins");
    let lead = counted(&app, &tenant, WaitDimension::Level, "team-lead").await;
    assert_eq!((lead.decided, lead.wait_seconds, lead.buckets[3]), (3, 3 * 600, 3));
}
