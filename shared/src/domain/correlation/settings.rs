//! The catalog's correlation settings: `correlation:` at the top of the
//! document (the tenant's) and under a service (its own window and hops).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::domain::catalog::Span;
use crate::domain::validation::Problems;

/// How far back from an incident's start a finished change is still a suspect, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);
/// The shortest and the longest window a catalog may set.
pub const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(7 * 86_400));
/// How many `depends_on` steps from the incident's service are followed, by default.
pub const DEFAULT_HOPS: u8 = 1;
/// The most steps a catalog may ask for: each one widens the services read per incident.
pub const MAX_HOPS: u8 = 3;
/// The environments that count as production unless the catalog names others.
pub const DEFAULT_PRODUCTION_ENVIRONMENTS: [&str; 2] = ["production", "prod"];
/// Most production environment names a catalog may list.
pub const MAX_PRODUCTION_ENVIRONMENTS: usize = 20;

/// The tenant's correlation settings (`correlation:`); every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationPolicy {
    /// How long before an incident's start a change may have finished and still be related.
    #[serde(default = "default_window")]
    pub window: Span,
    /// How many `depends_on` steps from the incident's service are followed (0: its own changes only).
    #[serde(default = "default_hops")]
    pub hops: u8,
    /// The environment names (compared ignoring ASCII case) of production
    /// changes; no other change is ever related to an incident.
    #[serde(default = "default_production_environments")]
    pub production_environments: Vec<String>,
}

fn default_window() -> Span {
    Span::new(DEFAULT_WINDOW)
}

fn default_hops() -> u8 {
    DEFAULT_HOPS
}

fn default_production_environments() -> Vec<String> {
    DEFAULT_PRODUCTION_ENVIRONMENTS.map(str::to_owned).to_vec()
}

impl Default for CorrelationPolicy {
    fn default() -> Self {
        Self {
            window: default_window(),
            hops: default_hops(),
            production_environments: default_production_environments(),
        }
    }
}

/// A service's own correlation settings (`services[].correlation:`), for
/// incidents on that service; a field left out keeps the tenant's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u8>,
}

/// The window and hops that apply to one incident's service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub window: Span,
    pub hops: u8,
}

impl CorrelationPolicy {
    /// The settings for an incident on a service with `own` settings (or none).
    pub fn settings(&self, own: Option<&CorrelationOverride>) -> Settings {
        let own = own.cloned().unwrap_or_default();
        Settings { window: own.window.unwrap_or_else(|| self.window.clone()), hops: own.hops.unwrap_or(self.hops) }
    }

    /// Whether `environment` names production.
    pub fn is_production(&self, environment: &str) -> bool {
        let environment = environment.trim();
        self.production_environments.iter().any(|p| p.eq_ignore_ascii_case(environment))
    }

    /// Adds the problems of the tenant's settings, under `correlation`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        check_window(p, "correlation.window", self.window.clone());
        check_hops(p, "correlation.hops", self.hops);
        let environments = &self.production_environments;
        if environments.is_empty() || environments.len() > MAX_PRODUCTION_ENVIRONMENTS {
            p.add(
                "correlation.production_environments",
                format!("name 1 to {MAX_PRODUCTION_ENVIRONMENTS} environments: without one, no incident is ever change-related"),
            );
        }
        for (i, name) in environments.iter().enumerate() {
            let clean = name.trim() == name && !name.chars().any(char::is_control);
            if !clean || name.is_empty() || name.chars().count() > 64 {
                p.add(
                    format!("correlation.production_environments[{i}]"),
                    format!(
                        "an environment name is 1 to 64 characters, without control characters or surrounding spaces; got {name:?}"
                    ),
                );
            }
        }
    }
}

impl CorrelationOverride {
    /// Adds the problems of a service's own settings, under `at` (`services[2].correlation`).
    pub(in crate::domain) fn check(&self, p: &mut Problems, at: &str) {
        if let Some(window) = self.window.clone() {
            check_window(p, &format!("{at}.window"), window);
        }
        if let Some(hops) = self.hops {
            check_hops(p, &format!("{at}.hops"), hops);
        }
    }
}

fn check_window(p: &mut Problems, path: &str, window: Span) {
    let (min, max) = WINDOW_RANGE;
    if window.0 < min || window.0 > max {
        p.add(path, "window must be between 1m and 7d");
    }
}

fn check_hops(p: &mut Problems, path: &str, hops: u8) {
    if hops > MAX_HOPS {
        p.add(path, format!("hops must be 0 to {MAX_HOPS}; got {hops}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{Catalog, parse_yaml};
    use serde_json::json;

    fn catalog(v: serde_json::Value) -> Catalog {
        serde_json::from_value(v).expect("catalog json")
    }

    fn services(correlation: serde_json::Value) -> serde_json::Value {
        json!([
            {"name": "payments", "owner_group": "payments-team", "tier": 1, "depends_on": ["ledger"],
             "correlation": correlation},
            {"name": "ledger", "owner_group": "ledger-team", "tier": 2}
        ])
    }

    fn problems(v: serde_json::Value) -> Vec<String> {
        catalog(v).validate().err().map(|e| e.listed().iter().map(ToString::to_string).collect()).unwrap_or_default()
    }

    #[test]
    fn a_catalog_without_correlation_settings_gets_the_defaults() {
        let c = catalog(json!({}));
        assert_eq!(c.correlation, CorrelationPolicy::default());
        assert_eq!(c.correlation.settings(None), Settings { window: Span::new(DEFAULT_WINDOW), hops: 1 });
        assert_eq!(
            serde_json::to_value(&c.correlation).expect("ser"),
            json!({"window": "4h", "hops": 1, "production_environments": ["production", "prod"]})
        );
    }

    #[test]
    fn a_service_overrides_only_the_fields_it_sets() {
        let c = catalog(json!({"correlation": {"window": "2h", "hops": 2}, "services": services(json!({"hops": 0}))}));
        c.validate().expect("valid");
        let own = c.services[0].correlation.as_ref();
        assert_eq!(c.correlation.settings(own), Settings { window: Span::new(Duration::from_secs(7200)), hops: 0 });
        assert_eq!(c.correlation.settings(c.services[1].correlation.as_ref()).hops, 2, "ledger sets nothing");
        let back = serde_json::to_value(&c).expect("ser");
        assert_eq!(back["services"][0]["correlation"], json!({"hops": 0}));
        assert_eq!(back["services"][1].get("correlation"), None, "nothing set, nothing written back");
    }

    #[test]
    fn production_is_any_listed_name_ignoring_case() {
        let c = CorrelationPolicy::default();
        for env in ["production", "Production", "PROD", " prod "] {
            assert!(c.is_production(env), "{env:?}");
        }
        for env in ["staging", "production-eu", "preprod", ""] {
            assert!(!c.is_production(env), "{env:?}");
        }
        let live = CorrelationPolicy { production_environments: vec!["live".into()], ..CorrelationPolicy::default() };
        assert!(live.is_production("live") && !live.is_production("production"));
    }

    #[test]
    fn bad_settings_are_named_by_their_path() {
        let found = problems(json!({
            "correlation": {"window": "30s", "hops": 4, "production_environments": ["production", " prod", "a\u{7}b"]},
            "services": services(json!({"window": "8d", "hops": 9}))
        }));
        assert_eq!(
            found,
            [
                "services[0].correlation.window: window must be between 1m and 7d",
                "services[0].correlation.hops: hops must be 0 to 3; got 9",
                "correlation.window: window must be between 1m and 7d",
                "correlation.hops: hops must be 0 to 3; got 4",
                "correlation.production_environments[1]: an environment name is 1 to 64 characters, without control characters or surrounding spaces; got \" prod\"",
                "correlation.production_environments[2]: an environment name is 1 to 64 characters, without control characters or surrounding spaces; got \"a\\u{7}b\"",
            ]
        );
        let none = problems(json!({"correlation": {"production_environments": []}}));
        assert_eq!(
            none,
            [
                "correlation.production_environments: name 1 to 20 environments: without one, no incident is ever change-related"
            ]
        );
        for edge in ["1m", "7d"] {
            assert_eq!(problems(json!({"correlation": {"window": edge}})), Vec::<String>::new(), "{edge}");
        }
        assert!(serde_json::from_value::<Catalog>(json!({"correlation": {"windw": "4h"}})).is_err(), "unknown field");
    }

    #[test]
    fn yaml_settings_problems_name_their_line() {
        let text = "correlation:\n  window: 4h\n  hops: 5\nservices:\n  - name: payments\n    owner_group: payments-team\n    tier: 1\n    correlation: {window: 10d}\n";
        let errors = parse_yaml(text).expect_err("two problems");
        let listed: Vec<(&str, &str)> =
            errors.listed().iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            listed,
            [
                ("services[0].correlation.window", "line 8: window must be between 1m and 7d"),
                ("correlation.hops", "line 3: hops must be 0 to 3; got 5"),
            ]
        );
        let spaced = parse_yaml("correlation:\n  window: 4 hours\n").expect_err("a spaced duration");
        assert_eq!(spaced.first().field, "correlation.window");
        assert!(spaced.first().message.starts_with("line 2: "), "{spaced}");
    }
}
