//! Every cross-crate suite in one test binary, so the AWS SDK and the router
//! are linked once. Each module is one suite; shared helpers live in the
//! `changehub-tests` library (`tests/src`).

/// Runs each `case(api)` of the calling module on both stores: its
/// `embedded()` (an embedded store in a temporary directory) and
/// `Api::on` a DynamoDB store on moto. Defined before the modules so that
/// every one of them may use it.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let (api, _dir) = super::embedded().await;
                    super::$case(api).await;
                }
            )*
        }
        mod dynamodb_store {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Api::on(super::aws::dynamo_store().await).await).await;
                }
            )*
        }
    };
}

mod activity;
mod api;
mod approval_sla;
mod audit;
mod bake;
mod bus_contract;
mod chat_hooks;
mod correlate;
mod dead_letters;
mod delegations;
mod deployments;
mod drift;
mod drift_aws;
mod escalation;
mod flow_aws;
mod freeze_starting;
mod gates;
mod incidents;
mod ingest;
mod ingest_aws;
mod merge_gate;
mod notifier_contract;
mod openapi;
mod policy;
mod problems;
mod protection;
mod publish;
mod recheck;
mod rollback;
mod rules;
mod scm_aws;
mod store_contract;
mod tagging;
mod tell;
mod template;
