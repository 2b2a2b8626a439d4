//! Bulk-change maintenance windows: declared by the cab or an admin for
//! some services (or the whole tenant), from a start to an end, optionally
//! for some principals only. An unauthorized observation inside one, by its
//! own time, is still recorded as a finding, counted and listed, but with
//! status `suppressed` and nobody paged: the security engineer sees what
//! happened during the bulk change without a flood of alerts.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::observation::Observation;
use super::settings::principal_matches;
use crate::domain::ServiceName;
use crate::domain::slug::Slug;
use crate::domain::validation::FieldError;

/// Most windows a tenant holds at once (ended ones are dropped on the next write).
pub const MAX_SUPPRESSIONS: usize = 100;
/// The longest window: a bulk change, not a standing exemption.
pub const MAX_SPAN: Duration = Duration::days(7);
/// How long an ended window is kept (then dropped on the next write).
pub const KEPT_AFTER_END: Duration = Duration::days(30);
/// Most principals one window names.
pub const MAX_PRINCIPALS: usize = 50;

/// One window, as declared (`POST /suppressions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// A slug naming it (`q3-sg-cleanup`); declaring it again replaces it.
    pub id: String,
    /// The services it covers; none: the whole tenant (unmapped resources included).
    #[serde(default)]
    pub services: Vec<ServiceName>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Why: the bulk change it is for.
    pub reason: String,
    /// Only these principals' changes (ARNs; a trailing `*` matches any
    /// suffix), matched against the role a session was issued from or the
    /// caller's ARN; none: anyone's.
    #[serde(default)]
    pub principals: Vec<String>,
}

impl Suppression {
    /// The window's own rules, naming the field at fault.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !Slug::is_valid(&self.id) {
            let message = format!(
                "id must be 1 to {} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
                Slug::MAX_LEN
            );
            return Err(FieldError::new("id", message));
        }
        if self.end <= self.start {
            return Err(FieldError::new("end", "end must be after start"));
        }
        if self.end - self.start > MAX_SPAN {
            return Err(FieldError::new("end", "a suppression window lasts at most 7 days"));
        }
        if self.reason.trim().is_empty() || self.reason.chars().count() > 2000 {
            return Err(FieldError::new("reason", "a reason of 1 to 2000 characters is required"));
        }
        if self.principals.len() > MAX_PRINCIPALS {
            return Err(FieldError::new("principals", format!("at most {MAX_PRINCIPALS} principals")));
        }
        for (i, p) in self.principals.iter().enumerate() {
            if !p.starts_with("arn:") || p.len() > 2048 {
                return Err(FieldError::new(format!("principals[{i}]"), format!("a principal is an ARN; got {p:?}")));
            }
        }
        Ok(())
    }

    /// Whether the window covers `o`: its time (the event's own) inside,
    /// its service listed (or the window tenant-wide), its actor one of the
    /// principals (or the window anyone's).
    pub fn covers(&self, o: &Observation) -> bool {
        let inside = self.start <= o.at && o.at <= self.end;
        let service = self.services.is_empty() || o.service.as_ref().is_some_and(|s| self.services.contains(s));
        let principal = self.principals.is_empty()
            || o.actor.as_ref().is_some_and(|a| {
                a.principal
                    .iter()
                    .chain(&a.session)
                    .any(|arn| self.principals.iter().any(|p| principal_matches(p, arn)))
            });
        inside && service && principal
    }

    /// Kept at `at`: still to come, running, or ended less than
    /// [`KEPT_AFTER_END`] ago (late evidence of the bulk change, such as a
    /// redelivery, is still judged by it).
    pub fn is_kept(&self, at: DateTime<Utc>) -> bool {
        self.end + KEPT_AFTER_END >= at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;
    use crate::domain::finding::observation::{Actor, Evidence};
    use chrono::TimeZone;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 14, 14, 0, 0).single().unwrap_or_default() + Duration::minutes(minutes)
    }

    fn window(services: &[&str], principals: &[&str]) -> Suppression {
        Suppression {
            id: "sg-cleanup".into(),
            services: services.iter().map(|s| ServiceName::parse(s).expect("service")).collect(),
            start: t(0),
            end: t(60),
            reason: "security-group clean-up, CHG-1042".into(),
            principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn observation(at: i64, service: Option<&str>, role: &str) -> Observation {
        let actor = Actor {
            principal: Some(format!("arn:aws:iam::123456789012:role/{role}")),
            ..Actor::reported("someone", &Default::default())
        };
        Observation {
            tenant: TenantId::parse("acme").expect("tenant"),
            event_id: "e".into(),
            evidence: Evidence::ApiCall,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            at: t(at),
            resources: vec![],
            service: service.map(|s| ServiceName::parse(s).expect("service")),
            what: "x".into(),
            action: None,
            actor: Some(actor),
        }
    }

    #[test]
    fn a_window_covers_its_services_principals_and_time_only() {
        let w = window(&["payments"], &["arn:aws:iam::123456789012:role/netops-*"]);
        assert!(w.covers(&observation(0, Some("payments"), "netops-bulk")));
        assert!(w.covers(&observation(60, Some("payments"), "netops-bulk")), "the end is inside");
        assert!(!w.covers(&observation(61, Some("payments"), "netops-bulk")), "after it");
        assert!(!w.covers(&observation(30, Some("ledger"), "netops-bulk")), "another service");
        assert!(!w.covers(&observation(30, None, "netops-bulk")), "an unmapped resource");
        assert!(!w.covers(&observation(30, Some("payments"), "ops-break-glass")), "another principal");
        let tenant_wide = window(&[], &[]);
        assert!(tenant_wide.covers(&observation(30, None, "ops-break-glass")));
    }

    #[test]
    fn windows_are_checked_naming_the_field() {
        assert_eq!(window(&[], &[]).validate(), Ok(()));
        let field = |w: Suppression| w.validate().expect_err("refused").field;
        assert_eq!(field(Suppression { end: t(0), ..window(&[], &[]) }), "end");
        assert_eq!(field(Suppression { end: t(60 * 24 * 8), ..window(&[], &[]) }), "end");
        assert_eq!(field(Suppression { reason: " ".into(), ..window(&[], &[]) }), "reason");
        assert_eq!(field(Suppression { id: "Not A Slug".into(), ..window(&[], &[]) }), "id");
        assert_eq!(field(window(&[], &["netops"])), "principals[0]");
    }
}
