//! "Freeze starting": the tick's contract on both stores, and a freeze
//! declared over HTTP told through the router, on both stores.

use axum::Router;
use axum::http::StatusCode;
use changehub::adapters::local_bus::LocalBus;
use changehub::app::Changes;
use changehub::app::freeze_starting::FreezeTicker;
use changehub::ports::FixedClock;
use changehub_tests::drift_contract::Told;
use changehub_tests::fixtures::{carol, seed};
use changehub_tests::freeze_contract::{self as contract, FreezeStore};
use changehub_tests::http::{Tokens, call_as};
use changehub_tests::{aws, t0};
use serde_json::json;
use std::sync::Arc;

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    a_freeze_is_told_once_its_lead_before_it_starts,
    a_recurring_freeze_is_armed_again_and_a_late_tick_skips_a_started_one,
    a_lifted_freeze_is_not_told,
    overlapping_ticks_tell_each_freeze_once,
);

/// The cab declares a freeze of payments starting in 45 minutes (within the
/// catalog's 1h lead) with `POST /freezes`; the next tick tells the feed,
/// payments' owners and its stakeholders, once each, and a second tick nothing.
async fn a_freeze_declared_over_http_is_told_through_the_router<
    S: FreezeStore + changehub::ports::ActivityLog + changehub::ports::ProblemStore + changehub::ports::FindingStore,
>(
    store: S,
) {
    let app = Arc::new(Changes::new(store, FixedClock::new(t0())));
    let tenant = changehub_tests::unique("acme");
    seed(&app, &tenant).await;
    let tokens = Tokens::new();
    let router: Router = changehub::http::router(app.clone(), tokens.authenticator());
    let start = t0() + chrono::Duration::minutes(45);
    let window = json!({
        "id": "card-migration", "name": "Card network migration", "services": ["payments"],
        "reason": "the card network moves", "schedule": {"kind": "one_off", "start": start, "end": start + chrono::Duration::hours(4)},
    });
    let declared = call_as(&router, &tokens.of(&carol(&tenant)), "POST", "/freezes", Some(window)).await;
    assert!(declared.status == StatusCode::CREATED || declared.status == StatusCode::OK, "{:?}", declared.body);
    let told = Told::default();
    let ticker = FreezeTicker::new(app.store.clone(), app.catalog.clone(), &app.clock, LocalBus::new(), told.clone());
    let tick = ticker.tick().await.expect("tick");
    assert_eq!((tick.read, tick.sent()), (1, 1));
    let copies: Vec<(String, String)> = told
        .all()
        .iter()
        .map(|n| {
            let get = |k: &str| n.attributes.get(k).cloned().unwrap_or_default();
            assert_eq!(
                (get("type"), get("kind"), get("service")),
                ("freeze_starting".into(), "Freeze Starting".into(), "payments".into())
            );
            (get("audience"), get("notify"))
        })
        .collect();
    let row = |a: &str, n: &str| (a.to_owned(), n.to_owned());
    assert_eq!(
        copies,
        [
            row("feed", ""),
            row("owners", "payments-team"),
            row("stakeholders", "finance-ops"),
            row("stakeholders", "cfo@acme.example")
        ]
    );
    let again = ticker.tick().await.expect("tick");
    assert_eq!((again.read, told.all().len()), (0, 4), "told once");
}

mod over_http {
    use super::*;

    #[tokio::test]
    async fn embedded_store() {
        let (store, _dir) = embedded().await;
        a_freeze_declared_over_http_is_told_through_the_router(store).await;
    }

    #[tokio::test]
    async fn dynamodb_store() {
        a_freeze_declared_over_http_is_told_through_the_router(aws::dynamo_store().await).await;
    }
}
