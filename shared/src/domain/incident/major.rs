//! What makes an incident major: the catalog's `incidents.major` section,
//! per tenant. A major incident holds high-risk changes to its service while
//! it is open (`app::governance::hold`).

use serde::{Deserialize, Serialize};

use super::Source;
use crate::domain::validation::Problems;

/// Most names one list of the rule may hold.
pub const MAX_NAMES: usize = 20;
/// Longest name (a priority, a severity) the rule may hold, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The tenant's incident settings (`incidents:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentPolicy {
    /// What makes an incident major.
    #[serde(default)]
    pub major: MajorRule,
}

/// Which incidents are major, by what their source says (names compared
/// without regard to case). Every field is optional and defaults to the
/// hub's rule: PagerDuty urgency high or priority `P1`, incident.io severity
/// `SEV1` or `Critical`, an alert's `severity` label `critical`. An empty
/// list makes nothing major by that field. CloudWatch alarms carry no
/// severity and are never major; an incident declared in the hub always is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MajorRule {
    /// A PagerDuty incident of urgency `high` is major.
    #[serde(default = "yes")]
    pub pagerduty_urgency_high: bool,
    /// PagerDuty priorities that make an incident major.
    #[serde(default = "pagerduty_priorities")]
    pub pagerduty_priorities: Vec<String>,
    /// incident.io severities that make an incident major.
    #[serde(default = "incidentio_severities")]
    pub incidentio_severities: Vec<String>,
    /// Values of an Alertmanager alert's `severity` label that make it major.
    #[serde(default = "alert_severities")]
    pub alert_severities: Vec<String>,
}

fn yes() -> bool {
    true
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn pagerduty_priorities() -> Vec<String> {
    names(&["P1"])
}

fn incidentio_severities() -> Vec<String> {
    names(&["SEV1", "Critical"])
}

fn alert_severities() -> Vec<String> {
    names(&["critical"])
}

impl Default for MajorRule {
    fn default() -> Self {
        MajorRule {
            pagerduty_urgency_high: yes(),
            pagerduty_priorities: pagerduty_priorities(),
            incidentio_severities: incidentio_severities(),
            alert_severities: alert_severities(),
        }
    }
}

impl MajorRule {
    /// Whether an incident from `source` with this priority, urgency and
    /// severity (as the record holds them) is major.
    pub fn is_major(
        &self,
        source: Source,
        priority: Option<&str>,
        urgency: Option<&str>,
        severity: Option<&str>,
    ) -> bool {
        let any =
            |names: &[String], v: Option<&str>| v.is_some_and(|v| names.iter().any(|n| n.eq_ignore_ascii_case(v)));
        match source {
            Source::Pagerduty => {
                (self.pagerduty_urgency_high && urgency.is_some_and(|u| u.eq_ignore_ascii_case("high")))
                    || any(&self.pagerduty_priorities, priority)
            }
            Source::Incidentio => any(&self.incidentio_severities, severity),
            Source::Alertmanager => any(&self.alert_severities, severity),
            Source::Cloudwatch | Source::Hub => false,
        }
    }

    /// Adds the problems of the rule, under `incidents.major`.
    pub(in crate::domain) fn check(&self, p: &mut Problems) {
        for (field, list) in [
            ("pagerduty_priorities", &self.pagerduty_priorities),
            ("incidentio_severities", &self.incidentio_severities),
            ("alert_severities", &self.alert_severities),
        ] {
            let path = format!("incidents.major.{field}");
            if list.len() > MAX_NAMES {
                p.add(&path, format!("at most {MAX_NAMES} names; got {}", list.len()));
                continue;
            }
            for (i, name) in list.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if name.trim().is_empty() || name.trim() != name || name.chars().count() > MAX_NAME_CHARS {
                    p.add(at, format!("names are 1 to {MAX_NAME_CHARS} characters without surrounding spaces"));
                } else if list[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    p.add(at, format!("{name:?} is listed twice (names are compared without regard to case)"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_urgency_high_p1_sev1_critical_and_critical_alerts_without_regard_to_case() {
        let rule = MajorRule::default();
        assert!(rule.is_major(Source::Pagerduty, None, Some("high"), None));
        assert!(rule.is_major(Source::Pagerduty, Some("p1"), Some("low"), None));
        assert!(!rule.is_major(Source::Pagerduty, Some("P2"), Some("low"), None));
        assert!(rule.is_major(Source::Incidentio, None, None, Some("critical")));
        assert!(rule.is_major(Source::Incidentio, None, None, Some("sev1")));
        assert!(!rule.is_major(Source::Incidentio, None, None, Some("SEV2")));
        assert!(rule.is_major(Source::Alertmanager, None, None, Some("Critical")));
        assert!(!rule.is_major(Source::Alertmanager, None, None, Some("warning")));
        assert!(!rule.is_major(Source::Cloudwatch, Some("P1"), Some("high"), Some("critical")));
    }

    #[test]
    fn each_source_is_read_by_its_own_list() {
        let rule: MajorRule = serde_json::from_value(serde_json::json!({
            "pagerduty_urgency_high": false,
            "pagerduty_priorities": ["P1", "P2"],
            "alert_severities": ["critical", "page"],
        }))
        .expect("rule");
        assert_eq!(rule.incidentio_severities, MajorRule::default().incidentio_severities, "left out: the default");
        assert!(!rule.is_major(Source::Pagerduty, Some("P3"), Some("high"), None), "urgency no longer counts");
        assert!(rule.is_major(Source::Pagerduty, Some("p2"), Some("low"), None));
        assert!(rule.is_major(Source::Alertmanager, None, None, Some("page")));
        assert!(!rule.is_major(Source::Incidentio, Some("P2"), None, Some("page")), "another source's names");
    }
}
