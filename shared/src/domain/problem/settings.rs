//! The catalog's problem settings: `problems:` at the top of the document
//! (the tenant's) and under a service (its own threshold and period).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::domain::catalog::Span;
use crate::domain::validation::Problems;

/// Incidents of one kind on a service, within one period, that open a problem, by default.
pub const DEFAULT_THRESHOLD: u32 = 3;
/// The period those incidents must fall within, by default.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(7 * 86_400);
/// The fewest and the most incidents a catalog may ask for: a problem is
/// decided from the service's [`super::RECENT_INCIDENTS`] most recent incidents.
pub const THRESHOLD_RANGE: (u32, u32) = (2, 20);
/// The shortest and the longest period a catalog may set.
pub const PERIOD_RANGE: (Duration, Duration) = (Duration::from_secs(3600), Duration::from_secs(90 * 86_400));

/// The tenant's problem settings (`problems:`); every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemPolicy {
    /// How many incidents of one kind (change-related, or one alert
    /// fingerprint) on a service within `period` open a problem.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// How close together, by the incidents' start times, they must be.
    #[serde(default = "default_period")]
    pub period: Span,
}

fn default_threshold() -> u32 {
    DEFAULT_THRESHOLD
}

fn default_period() -> Span {
    Span::new(DEFAULT_PERIOD)
}

impl Default for ProblemPolicy {
    fn default() -> Self {
        Self { threshold: default_threshold(), period: default_period() }
    }
}

/// A service's own problem settings (`services[].problems:`); a field left out keeps the tenant's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Span>,
}

/// The threshold and period that apply to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub threshold: u32,
    pub period: Span,
}

impl ProblemPolicy {
    /// The settings for a service with `own` settings (or none).
    pub fn settings(&self, own: Option<&ProblemOverride>) -> Recurrence {
        let own = own.cloned().unwrap_or_default();
        Recurrence {
            threshold: own.threshold.unwrap_or(self.threshold),
            period: own.period.unwrap_or_else(|| self.period.clone()),
        }
    }

    /// Adds the problems of the tenant's settings, under `problems`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        check_threshold(p, "problems.threshold", self.threshold);
        check_period(p, "problems.period", &self.period);
    }
}

impl crate::domain::catalog::Catalog {
    /// The problem settings of `service`: its own over the tenant's.
    pub fn problem_settings(&self, service: &crate::domain::ServiceName) -> Recurrence {
        self.problems.settings(self.service(service).and_then(|s| s.problems.as_ref()))
    }
}

impl ProblemOverride {
    /// Adds the problems of a service's own settings, under `at` (`services[2].problems`).
    pub(in crate::domain) fn check(&self, p: &mut Problems, at: &str) {
        if let Some(threshold) = self.threshold {
            check_threshold(p, &format!("{at}.threshold"), threshold);
        }
        if let Some(period) = &self.period {
            check_period(p, &format!("{at}.period"), period);
        }
    }
}

fn check_threshold(p: &mut Problems, path: &str, threshold: u32) {
    let (min, max) = THRESHOLD_RANGE;
    if !(min..=max).contains(&threshold) {
        p.add(path, format!("threshold must be between {min} and {max} incidents; got {threshold}"));
    }
}

fn check_period(p: &mut Problems, path: &str, period: &Span) {
    let (min, max) = PERIOD_RANGE;
    if period.0 < min || period.0 > max {
        p.add(path, format!("period must be between {} and {}; got {period}", Span::new(min), Span::new(max)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_keeps_the_tenant_settings_it_does_not_override() {
        let tenant = ProblemPolicy::default();
        assert_eq!(tenant.settings(None), Recurrence { threshold: 3, period: Span::new(DEFAULT_PERIOD) });
        let own = ProblemOverride { threshold: Some(5), period: None };
        assert_eq!(tenant.settings(Some(&own)), Recurrence { threshold: 5, period: Span::new(DEFAULT_PERIOD) });
    }

    #[test]
    fn settings_out_of_range_name_their_field() {
        let mut p = Problems::default();
        let bad = ProblemPolicy { threshold: 1, period: Span::new(Duration::from_secs(60)) };
        bad.check(&mut p);
        ProblemOverride { threshold: Some(21), period: Some(Span::new(Duration::from_secs(91 * 86_400))) }
            .check(&mut p, "services[0].problems");
        let errors = p.finish().expect_err("four problems");
        let fields: Vec<&str> = errors.listed().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["problems.threshold", "problems.period", "services[0].problems.threshold", "services[0].problems.period"]
        );
        let mut ok = Problems::default();
        ProblemPolicy::default().check(&mut ok);
        assert!(ok.finish().is_ok());
    }
}
