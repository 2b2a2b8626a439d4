//! Use cases: what the functions do, written against the ports.

pub mod activity;
pub mod audit;
pub mod catalog;
pub mod changes;
pub mod correlate;
pub mod delegations;
pub mod deployments;
pub mod drift;
pub mod escalation;
pub mod findings;
pub mod freeze_starting;
pub mod gate;
pub mod governance;
pub mod incidents;
pub mod ingest;
pub mod merge_gate;
pub mod migrate;
pub mod once;
pub mod problems;
pub mod protection;
pub mod publish;
pub mod recheck;
pub mod rollback;
pub mod routed;
pub mod security;
pub mod suppressions;
pub mod tagging;
pub mod tell;

pub use changes::{Caller, ChangeError, Changes, ListRequest, TransitionRequest};
