//! The `changehub` binary end to end, as one test binary (the AWS SDK and
//! the helpers are linked once): `serve` driven over HTTP with signed
//! deliveries, its clock file, its webhooks and the fake forge, and
//! `audit verify --table` against moto. Run one suite with
//! `cargo test -p changehub-local --test e2e -- gates_e2e::`.

mod common;

mod audit_aws;
mod drift_e2e;
mod escalation_e2e;
mod gates_e2e;
mod hooks;
mod serve;
mod tagging_matrix;
