//! Use cases: what the functions do, written against the ports.

pub mod changes;
pub mod ingest;
pub mod publish;

pub use changes::{Caller, ChangeError, Changes, ListRequest, TransitionRequest};
