//! What runs in a service's production environment: the sha its latest
//! successful deployment put there, and the one it replaced. One small
//! record per service and environment, read in one call: it tells a
//! deployment of the replaced sha from any other (a rollback) and names
//! the sha a rollback returns to.
//!
//! The record moves by the deployments' own times, never by when their
//! events arrive: a late or repeated event of an older deployment leaves it
//! as it is ([`InProduction::after`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ChangeId, ServiceName, TenantId};

/// A sha that ran in production, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ran {
    pub sha: String,
    /// When the deployment that put it there ended (the source's time).
    pub at: DateTime<Utc>,
    /// That deployment, for people (`github deployment 1234 of acme/payments-api`).
    pub deployment: String,
    /// The change it was recorded on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeId>,
}

/// A service's production environment as its deployments left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProduction {
    pub tenant: TenantId,
    pub service: ServiceName,
    /// The environment, lowercased.
    pub environment: String,
    /// What runs there now.
    pub current: Ran,
    /// What ran there before it, when it was another sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Ran>,
    /// 1 for the first record; each write the next (optimistic locking).
    pub version: u64,
}

impl InProduction {
    /// The first record of `service`'s `environment`.
    pub fn first(tenant: TenantId, service: ServiceName, environment: &str, ran: Ran) -> Self {
        Self {
            tenant,
            service,
            environment: environment.to_ascii_lowercase(),
            current: ran,
            previous: None,
            version: 1,
        }
    }

    /// The record after `ran` succeeded there, or `None` when it is not
    /// later than what the record holds (at equal times the greater sha
    /// wins, so any order of the same deployments gives the same record).
    pub fn after(&self, ran: Ran) -> Option<Self> {
        let key = |r: &Ran| (r.at, r.sha.to_ascii_lowercase());
        if key(&ran) <= key(&self.current) {
            return None;
        }
        let previous =
            if same_sha(&ran.sha, &self.current.sha) { self.previous.clone() } else { Some(self.current.clone()) };
        Some(Self { current: ran, previous, version: self.version + 1, ..self.clone() })
    }

    /// Whether a successful deployment of `sha` at `at` puts back the sha
    /// the current one replaced: a rollback.
    pub fn returns_to_previous(&self, sha: &str, at: DateTime<Utc>) -> bool {
        at > self.current.at
            && !same_sha(sha, &self.current.sha)
            && self.previous.as_ref().is_some_and(|p| same_sha(sha, &p.sha))
    }
}

/// Whether two shas name the same commit (one may be abbreviated).
pub fn same_sha(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let short = a.chars().count().min(b.chars().count());
    short >= 7 && a.chars().take(short).eq(b.chars().take(short))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().unwrap_or_default() + Duration::minutes(m)
    }

    fn ran(sha: &str, m: i64) -> Ran {
        Ran { sha: sha.into(), at: t(m), deployment: format!("deployment of {sha}"), change: None }
    }

    fn first() -> InProduction {
        let (tenant, service) =
            (TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")), ServiceName::parse("payments"));
        InProduction::first(tenant, service.unwrap_or_else(|e| panic!("{e}")), "Production", ran("aaaaaaa1", 0))
    }

    #[test]
    fn a_later_deployment_moves_the_record_and_keeps_what_it_replaced() {
        let one = first();
        assert_eq!(one.environment, "production");
        let two = one.after(ran("bbbbbbb2", 10)).expect("later");
        assert_eq!((two.current.sha.as_str(), two.version), ("bbbbbbb2", 2));
        assert_eq!(two.previous.as_ref().map(|p| p.sha.as_str()), Some("aaaaaaa1"));
        let again = two.after(ran("bbbbbbb2", 20)).expect("the same sha, later");
        assert_eq!(again.previous, two.previous, "a redeploy of the same sha keeps what it replaced");
    }

    #[test]
    fn a_late_event_of_an_older_deployment_leaves_the_record() {
        let two = first().after(ran("bbbbbbb2", 10)).expect("later");
        assert_eq!(two.after(ran("ccccccc3", 5)), None, "older");
        assert_eq!(two.after(ran("bbbbbbb2", 10)), None, "the same, repeated");
        assert_eq!(two.after(ran("aaaaaaa0", 10)), None, "equal time, smaller sha");
        assert!(two.after(ran("ccccccc3", 10)).is_some(), "equal time, greater sha");
    }

    #[test]
    fn putting_back_the_replaced_sha_is_a_rollback() {
        let two = first().after(ran("bbbbbbb2", 10)).expect("later");
        assert!(two.returns_to_previous("AAAAAAA1", t(20)));
        assert!(two.returns_to_previous("aaaaaaa1ffff", t(20)), "a longer form of the same sha");
        assert!(!two.returns_to_previous("aaaaaaa1", t(5)), "older than what runs");
        assert!(!two.returns_to_previous("ccccccc3", t(20)), "a new sha");
        assert!(!first().returns_to_previous("aaaaaaa1", t(20)), "nothing replaced yet");
    }
}
