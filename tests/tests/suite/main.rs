//! Every cross-crate suite in one test binary, so the AWS SDK and the router
//! are linked once. Each module is one suite; shared helpers live in the
//! `changehub-tests` library (`tests/src`).

mod activity;
mod api;
mod approval_sla;
mod audit;
mod bus_contract;
mod chat_hooks;
mod correlate;
mod dead_letters;
mod delegations;
mod deployments;
mod drift;
mod escalation;
mod flow_aws;
mod gates;
mod incidents;
mod ingest;
mod ingest_aws;
mod notifier_contract;
mod openapi;
mod policy;
mod problems;
mod publish;
mod recheck;
mod rules;
mod store_contract;
mod tagging;
mod tell;
mod template;
