//! The store contract, run against both adapters: the embedded redb store and
//! DynamoDB on the AWS emulator (moto server, started by `make test`).

use changehub::adapters::embedded::EmbeddedStore;
use changehub_tests::{aws, store_contract as contract};

pub(crate) async fn embedded() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("contract.db")).expect("open");
    (store, dir)
}

macro_rules! contract_cases {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = embedded().await;
                    contract::$case(store).await;
                }
            )*
        }
        mod dynamodb_store {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    contract::$case(aws::dynamo_store().await).await;
                }
            )*
        }
    };
}

/// Runs each case of the `contract` module in scope on both stores (the
/// activity log's suite uses it too).
pub(crate) use contract_cases;

contract_cases!(
    create_then_get,
    insert_refuses_an_existing_id,
    lists_changes_touching_a_service_in_a_time_range,
    stale_version_update_is_a_conflict,
    audit_entries_append_and_read_in_order,
    one_update_appends_several_entries,
    audit_entries_are_read_by_number,
    tenant_documents_are_replaced_conditionally,
    outcomes_bump_counters,
    emergency_submissions_count_per_requester_and_team,
    rescheduling_moves_the_service_index,
    editing_a_draft_moves_the_service_index,
    a_rework_writes_both_changes_or_neither,
    due_index_follows_the_record,
    freezes_documents_are_due_in_their_own_partition,
    dedupe_claims_once_until_expiry,
    an_expired_lease_is_claimed_again,
    a_released_lease_can_be_claimed_at_once,
    a_release_never_takes_another_attempts_lease,
    a_claim_takes_every_key_or_none,
    concurrent_claims_have_one_winner,
    empty_service_window_is_empty,
    foreign_cursors_are_refused,
    lists_a_tenants_changes_filtered,
    waiting_index_follows_the_approval_levels,
    security_events_collapse_repeats_per_caller_and_minute,
    governance_writes_are_chained_on_the_tenants_trail,
    the_plannable_index_holds_what_a_plan_may_still_authorize,
);

#[tokio::test]
async fn embedded_store_keeps_committed_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("durable.db");
    let c = changehub_tests::fixtures::alice("acme");
    let id = {
        let app = changehub::app::Changes::new(
            EmbeddedStore::open(&path).expect("open"),
            changehub::ports::FixedClock::new(changehub_tests::t0()),
        );
        changehub_tests::fixtures::seed(&app, "acme").await;
        app.create(&c, changehub_tests::new_change("durable", &["payments"], changehub_tests::t0(), 1))
            .await
            .expect("create")
            .id
    };
    let app = changehub::app::Changes::new(
        EmbeddedStore::open(&path).expect("reopen"),
        changehub::ports::FixedClock::new(changehub_tests::t0()),
    );
    assert_eq!(app.get(&c, &id).await.expect("get after reopen").title, "durable");
}
