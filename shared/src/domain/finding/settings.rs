//! The catalog's drift settings (`drift:`): how unauthorized changes are
//! judged and grouped for one tenant.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::domain::catalog::Span;
use crate::domain::validation::Problems;

/// How long before and after a change's window an observation still counts as inside it, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);
/// How long one actor's burst on one service is gathered into one finding, by default.
pub const DEFAULT_STORM_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How far apart a configuration item and the API call behind it may be to be joined.
pub const JOIN_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The longest grace a catalog may set.
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);
/// The shortest and the longest storm window a catalog may set.
pub const STORM_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));

/// The tenant's drift settings; every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftPolicy {
    /// Slack around a change's window (planned or actual) and after it completes.
    #[serde(default = "default_grace")]
    pub grace: Span,
    /// The AWS accounts watched; empty: every account whose events reach the hub.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Deployment pipelines' own principals (CI role ARNs; a trailing `*`
    /// matches any suffix): authorized only while a change for the service
    /// is implementing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline_principals: Vec<String>,
    /// Outsourced vendors' principals (same form): judged as anyone, and
    /// their findings flagged `vendor: true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendor_principals: Vec<String>,
    /// One actor's changes on one service within this window are one finding with a count.
    #[serde(default = "default_storm_window")]
    pub storm_window: Span,
}

fn default_grace() -> Span {
    Span::new(DEFAULT_GRACE)
}

fn default_storm_window() -> Span {
    Span::new(DEFAULT_STORM_WINDOW)
}

impl Default for DriftPolicy {
    fn default() -> Self {
        Self {
            grace: default_grace(),
            accounts: Vec::new(),
            pipeline_principals: Vec::new(),
            vendor_principals: Vec::new(),
            storm_window: default_storm_window(),
        }
    }
}

impl DriftPolicy {
    /// Whether events of `account` are judged.
    pub fn watches(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a == account)
    }

    /// Adds the problems of the settings, under `drift`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        if std_of(&self.grace) > MAX_GRACE {
            p.add("drift.grace", format!("at most {}; got {}", Span::new(MAX_GRACE), self.grace));
        }
        let storm = std_of(&self.storm_window);
        if storm < STORM_RANGE.0 || storm > STORM_RANGE.1 {
            p.add(
                "drift.storm_window",
                format!(
                    "between {} and {}; got {}",
                    Span::new(STORM_RANGE.0),
                    Span::new(STORM_RANGE.1),
                    self.storm_window
                ),
            );
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                p.add(format!("drift.accounts[{i}]"), format!("an AWS account id is 12 digits; got {a:?}"));
            }
        }
        for (field, list) in
            [("pipeline_principals", &self.pipeline_principals), ("vendor_principals", &self.vendor_principals)]
        {
            for (i, principal) in list.iter().enumerate() {
                if !principal.starts_with("arn:") || principal.len() > 2048 {
                    p.add(format!("drift.{field}[{i}]"), format!("a principal is an ARN (arn:...); got {principal:?}"));
                }
            }
        }
    }
}

fn std_of(span: &Span) -> Duration {
    span.chrono().to_std().unwrap_or(Duration::MAX)
}

/// Whether `principal` (an ARN, or a prefix ending in `*`) names `arn`.
pub fn principal_matches(principal: &str, arn: &str) -> bool {
    match principal.strip_suffix('*') {
        Some(prefix) => arn.starts_with(prefix),
        None => principal == arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_match_exactly_or_by_a_trailing_star() {
        let role = "arn:aws:iam::123456789012:role/github-actions-deployer";
        assert!(principal_matches(role, role));
        assert!(principal_matches("arn:aws:iam::123456789012:role/github-*", role));
        assert!(!principal_matches("arn:aws:iam::123456789012:role/github", role));
        assert!(!principal_matches("arn:aws:iam::999999999999:role/*", role));
    }

    #[test]
    fn settings_are_checked_naming_the_field() {
        let policy = DriftPolicy {
            grace: Span::new(Duration::from_secs(2 * 86_400)),
            accounts: vec!["12345".into()],
            pipeline_principals: vec!["github-actions".into()],
            vendor_principals: vec![],
            storm_window: Span::new(Duration::from_secs(10)),
        };
        let mut p = Problems::default();
        policy.check(&mut p);
        let errors = p.finish().expect_err("four problems");
        let fields: Vec<&str> = errors.listed().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["drift.grace", "drift.storm_window", "drift.accounts[0]", "drift.pipeline_principals[0]"]);
    }

    #[test]
    fn every_account_is_watched_unless_some_are_listed() {
        let mut policy = DriftPolicy::default();
        assert!(policy.watches("123456789012"));
        policy.accounts = vec!["111111111111".into()];
        assert!(!policy.watches("123456789012"));
        assert!(policy.watches("111111111111"));
    }
}
