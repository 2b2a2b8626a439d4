//! Test support: the AWS emulator connection and the port contract suites
//! that every adapter must pass.

pub mod activity_contract;
pub mod approval_sla_contract;
pub mod aws;
pub mod bus_contract;
pub mod correlate_contract;
pub mod drift_contract;
pub mod escalation_contract;
pub mod fixtures;
pub mod forge;
pub mod freeze_contract;
pub mod http;
pub mod incident_contract;
pub mod notifier_contract;
pub mod problem_contract;
pub mod protection_contract;
pub mod pull_links_contract;
pub mod recheck_contract;
pub mod samples;
pub mod scripted;
pub mod store_contract;
pub mod tagging_contract;
pub mod tamper;

use changehub::domain::NewChange;
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A fixed reference time for tests.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 22, 0, 0).single().unwrap_or_else(Utc::now)
}

/// A valid change request on `services`, planned at `start` for `hours`.
pub fn new_change(title: &str, services: &[&str], start: DateTime<Utc>, hours: i64) -> NewChange {
    NewChange {
        description: "contract test".to_owned(),
        ..NewChange::basic(title, services, "production", start, start + Duration::hours(hours))
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}
