//! The "freeze starting" contract: a freeze window declared through the
//! governance use case is armed in the due index with its document, and the
//! tick tells each occurrence once, through the router, on both stores. The
//! sample catalog's payments: owners payments-team, stakeholders finance-ops
//! (Europe/Paris) and cfo@acme.example; `changes.starting_soon` 1h (default).

use changehub::adapters::local_bus::LocalBus;
use changehub::app::Changes;
use changehub::app::catalog::CachedCatalog;
use changehub::app::changes::ChangeStore;
use changehub::app::freeze_starting::{FreezeTick, FreezeTicker};
use changehub::app::governance::LiftFreeze;
use changehub::domain::audit::AuditAction;
use changehub::domain::freeze::FreezeWindow;
use changehub::domain::{EventPattern, TenantId};
use changehub::ports::{Dedupe, FixedClock, FreezesDue};
use chrono::{DateTime, Duration, Utc};

use crate::drift_contract::Told;
use crate::fixtures::{carol, seed};
use crate::t0;

pub trait FreezeStore: ChangeStore + FreezesDue + Dedupe {}
impl<T: ChangeStore + FreezesDue + Dedupe> FreezeStore for T {}

type Ticker<'c, S> = FreezeTicker<S, CachedCatalog<S>, &'c FixedClock, LocalBus, Told>;

/// A tenant with the sample catalog, its use cases on `clock`, and what the tick tells.
struct Hub<'c, S: FreezeStore> {
    app: Changes<S, &'c FixedClock>,
    tenant: String,
    told: Told,
    bus: LocalBus,
}

async fn hub<S: FreezeStore>(store: S, clock: &FixedClock) -> Hub<'_, S> {
    let app = Changes::new(store, clock);
    let tenant = crate::unique("acme");
    seed(&app, &tenant).await;
    Hub { app, tenant, told: Told::default(), bus: LocalBus::new() }
}

impl<'c, S: FreezeStore> Hub<'c, S> {
    fn ticker(&self, clock: &'c FixedClock) -> Ticker<'c, S> {
        FreezeTicker::new(self.app.store.clone(), self.app.catalog.clone(), clock, self.bus.clone(), self.told.clone())
    }

    async fn declare(&self, window: serde_json::Value) {
        let window: FreezeWindow = serde_json::from_value(window).expect("window");
        self.app.governance().put_freeze(&carol(&self.tenant), window).await.expect("declare");
    }

    /// What the tick publishes on the bus from now on.
    fn freeze_events(&self) -> tokio::sync::mpsc::UnboundedReceiver<changehub::domain::HubEvent> {
        let pattern = serde_json::json!({"source": [changehub::app::freeze_starting::SOURCE]});
        self.bus.add_rule("freezes", EventPattern::parse(pattern).expect("pattern"))
    }

    /// The governance trail's `freeze_starting` entries.
    async fn starting_entries(&self) -> usize {
        let tenant = TenantId::parse(&self.tenant).expect("tenant");
        let trail = self.app.store.trail(&tenant, 100, None).await.expect("trail");
        trail.items.iter().filter(|e| e.action == AuditAction::FreezeStarting).count()
    }

    /// Who was told, as (audience, notify).
    fn recipients(&self) -> Vec<(String, String)> {
        let get = |n: &changehub::ports::Notification, k: &str| n.attributes.get(k).cloned().unwrap_or_default();
        self.told.all().iter().map(|n| (get(n, "audience"), get(n, "notify"))).collect()
    }
}

fn one_off(id: &str, start: DateTime<Utc>, hours: i64) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": "Payments freeze", "services": ["payments"], "reason": "Card network migration",
        "schedule": {"kind": "one_off", "start": start, "end": start + Duration::hours(hours)},
    })
}

fn row(audience: &str, notify: &str) -> (String, String) {
    (audience.to_owned(), notify.to_owned())
}

/// The sample catalog's `freeze_starting` recipients for a freeze of payments.
fn payments_recipients() -> Vec<(String, String)> {
    vec![
        row("feed", ""),
        row("owners", "payments-team"),
        row("stakeholders", "finance-ops"),
        row("stakeholders", "cfo@acme.example"),
    ]
}

async fn tick<S: FreezeStore>(ticker: &Ticker<'_, S>, clock: &FixedClock, at: DateTime<Utc>) -> FreezeTick {
    clock.set(at);
    ticker.tick().await.expect("tick")
}

pub async fn a_freeze_is_told_once_its_lead_before_it_starts<S: FreezeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let h = hub(store, &clock).await;
    let mut events = h.freeze_events();
    let start = t0() + Duration::days(1);
    h.declare(one_off("migration", start, 6)).await;
    let ticker = h.ticker(&clock);
    let early = tick(&ticker, &clock, start - Duration::minutes(61)).await;
    assert_eq!((early.read, early.told.len()), (0, 0), "not due: nothing read");
    let due = tick(&ticker, &clock, start - Duration::minutes(59)).await;
    assert_eq!(due.read, 1);
    assert_eq!((due.sent(), due.late()), (1, 0));
    assert_eq!((due.told[0].window.as_str(), due.told[0].start), ("migration", start));
    assert_eq!(h.recipients(), payments_recipients(), "routed: the feed, the owners, the stakeholders");
    let business =
        h.told.all().into_iter().find(|n| n.attributes.get("notify").map(String::as_str) == Some("finance-ops"));
    let business = business.expect("finance-ops told").message;
    assert!(business.headline.starts_with("A change freeze starts for payments"), "{business:?}");
    assert!(business.facts[0].value.ends_with("CET"), "in the stakeholder's zone: {business:?}");
    let event = events.try_recv().expect("Freeze Starting on the bus");
    assert_eq!(
        (event.detail_type.as_str(), &event.detail["window"]),
        ("Freeze Starting", &serde_json::json!("migration"))
    );
    let again = tick(&ticker, &clock, start - Duration::minutes(30)).await;
    assert_eq!((again.read, again.told.len()), (0, 0), "taken: off the index");
    assert_eq!((h.told.all().len(), h.starting_entries().await), (4, 1), "told once, one trail entry");
}

pub async fn a_recurring_freeze_is_armed_again_and_a_late_tick_skips_a_started_one<S: FreezeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let h = hub(store, &clock).await;
    // t0 is Tuesday 2026-12-01 22:00 UTC; the freeze covers Saturdays.
    h.declare(serde_json::json!({
        "id": "saturdays", "name": "Saturday freeze", "services": ["payments"],
        "schedule": {"kind": "weekly", "days": ["sat"]},
    }))
    .await;
    let ticker = h.ticker(&clock);
    let saturday = |week: i64| "2026-12-05T00:00:00Z".parse::<DateTime<Utc>>().expect("time") + Duration::weeks(week);
    let first = tick(&ticker, &clock, saturday(0) - Duration::minutes(50)).await;
    assert_eq!((first.sent(), first.told[0].start), (1, saturday(0)));
    // The hub is down from before the next notice until the freeze is in force.
    let late = tick(&ticker, &clock, saturday(1) + Duration::hours(2)).await;
    assert_eq!((late.sent(), late.late()), (0, 1), "started 2 h ago: skipped, not told");
    assert_eq!(h.told.all().len(), 4, "only the first Saturday's copies");
    let third = tick(&ticker, &clock, saturday(2) - Duration::minutes(10)).await;
    assert_eq!((third.sent(), third.told[0].start), (1, saturday(2)), "armed again, week after week");
    assert_eq!(h.starting_entries().await, 3, "each occurrence recorded once, the late one too");
}

pub async fn a_lifted_freeze_is_not_told<S: FreezeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let h = hub(store, &clock).await;
    let start = t0() + Duration::days(1);
    h.declare(one_off("migration", start, 6)).await;
    let lift = LiftFreeze { reason: "migration postponed".into() };
    h.app.governance().delete_freeze(&carol(&h.tenant), "migration", lift).await.expect("lift");
    let ticker = h.ticker(&clock);
    let t = tick(&ticker, &clock, start - Duration::minutes(30)).await;
    assert_eq!((t.read, t.told.len(), h.told.all().len()), (0, 0, 0), "lifted: out of the index");
}

/// Four ticks at once on the same due document: each notice goes out once
/// (one copy per recipient, one bus event) and is recorded once.
pub async fn overlapping_ticks_tell_each_freeze_once<S: FreezeStore>(store: S) {
    let clock = FixedClock::new(t0());
    let h = hub(store, &clock).await;
    let mut events = h.freeze_events();
    let start = t0() + Duration::days(1);
    h.declare(one_off("migration", start, 6)).await;
    h.declare(one_off("network", start + Duration::minutes(20), 2)).await;
    clock.set(start - Duration::minutes(30));
    let [a, b, c, d] = [0; 4].map(|_| h.ticker(&clock));
    let (x, y, z, w) = tokio::join!(a.tick(), b.tick(), c.tick(), d.tick());
    let mut ticks: Vec<FreezeTick> = [x, y, z, w].into_iter().map(|t| t.expect("tick")).collect();
    // A tick that found a notice being sent leaves the document to the next one.
    ticks.push(a.tick().await.expect("a later tick"));
    let mut windows: Vec<String> = ticks.iter().flat_map(|t| t.told.iter().map(|f| f.window.clone())).collect();
    windows.sort();
    assert_eq!(windows, ["migration", "network"], "each window told by one tick");
    assert_eq!(h.told.all().len(), 8, "four copies per window, once each: {:?}", h.recipients());
    let mut published = 0;
    while events.try_recv().is_ok() {
        published += 1;
    }
    assert_eq!(published, 2, "one bus event per window");
    assert_eq!(h.starting_entries().await, 1, "one write took both");
}
