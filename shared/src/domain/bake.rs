//! Bake time: after a successful production deployment a change stays
//! `verifying` for its services' `bake_time` (the catalog's; the longest of
//! its services'; default off), then completes on its own: the bake's end is
//! a due entry the escalation tick takes once.
//!
//! An incident related to the change (the tagging consumer) that started
//! before the bake ended marks it `suspect`: it no longer completes on its
//! own, and the deployment gate holds the change's next stage (another
//! region or environment) until a person clears it (`POST
//! /changes/{id}/clear-suspect`) or the change is rolled back. Every time
//! comes from the deployments' own (the source's) times, so the bake's end
//! does not depend on the order statuses arrive in.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Span};
use super::change::{Change, ChangeState, Done};
use super::correlation::Outcome;

/// A verifying change's bake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bake {
    /// When it ends: its latest successful production deployment's end plus the bake time.
    pub until: DateTime<Utc>,
    /// The bake time it was given.
    pub time: Span,
    /// The incident that made it suspect, until a person clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<Suspect>,
    /// Who cleared it last, when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared: Option<Done>,
}

/// What made a bake suspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub incident_id: String,
    /// When the incident started, by its source's clock.
    pub started_at: DateTime<Utc>,
    pub reason: String,
}

/// The bake time of a change on `services`: the longest of theirs; zero (off) when none sets one.
pub fn bake_time(catalog: &Catalog, change: &Change) -> Span {
    change
        .services
        .iter()
        .filter_map(|s| catalog.service(s))
        .map(|s| s.bake_time.clone())
        .max_by_key(|s| s.0)
        .unwrap_or_else(|| Span::new(std::time::Duration::ZERO))
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Bake {
    /// Whether the bake holds the change's next stage.
    pub fn holds(&self) -> bool {
        self.suspect.is_some()
    }

    /// Why it holds, for people (the gate's reason).
    pub fn hold_reason(&self, change: &Change) -> Option<String> {
        let s = self.suspect.as_ref()?;
        Some(format!(
            "is suspect: incident {} started at {} during its bake (until {}): {}; a person clears it (POST /changes/{}/clear-suspect) or rolls it back",
            s.incident_id,
            secs(s.started_at),
            secs(self.until),
            s.reason,
            change.id
        ))
    }
}

impl Change {
    /// The bake this change is given by its successful production
    /// deployments (`production` tells which environments are), keeping
    /// what it already says (suspect, cleared); `None` when the bake time is off
    /// or none succeeded.
    pub fn baked(&self, time: &Span, production: impl Fn(&str) -> bool) -> Option<Bake> {
        if time.is_zero() {
            return None;
        }
        let last = self
            .deployments
            .iter()
            .filter(|d| production(&d.origin.environment))
            .filter_map(|d| d.ended.filter(|e| e.outcome == Outcome::Succeeded).map(|e| e.at))
            .max()?;
        let until = last + time.chrono();
        let (suspect, cleared) = self.bake.as_ref().map_or((None, None), |b| (b.suspect.clone(), b.cleared.clone()));
        Some(Bake { until, time: time.clone(), suspect, cleared })
    }

    /// When the bake ends and the change completes on its own: while it is
    /// verifying and not suspect.
    pub fn bake_due(&self) -> Option<DateTime<Utc>> {
        let bake = self.bake.as_ref().filter(|b| !b.holds())?;
        (self.state == ChangeState::Verifying).then_some(bake.until)
    }

    /// Marks the bake suspect for an incident that started at `started_at`,
    /// before the bake ended; whether it did (not when it already was, or
    /// the change is not verifying).
    pub fn mark_suspect(&mut self, incident_id: &str, started_at: DateTime<Utc>, reason: String) -> bool {
        let verifying = self.state == ChangeState::Verifying;
        match self.bake.as_mut() {
            Some(bake) if verifying && bake.suspect.is_none() && started_at <= bake.until => {
                bake.suspect = Some(Suspect { incident_id: incident_id.to_owned(), started_at, reason });
                true
            }
            _ => false,
        }
    }

    /// The change completed at `now` because its bake ended with no
    /// incident, and why; `None` while it bakes (or is suspect, or not verifying).
    pub fn bake_ended(&self, now: DateTime<Utc>) -> Option<(Change, String)> {
        let until = self.bake_due().filter(|until| *until <= now)?;
        let next = self.transition(ChangeState::Completed, now).ok()?;
        let time = self.bake.as_ref().map(|b| b.time.for_people()).unwrap_or_default();
        Some((next, format!("its bake of {time} ended at {} with no incident on its services", secs(until))))
    }

    /// Clears the bake's suspicion (`None` when it is not suspect).
    pub fn clear_suspect(&self, done: Done) -> Option<Change> {
        let mut next = self.revised(done.at);
        let bake = next.bake.as_mut().filter(|b| b.holds())?;
        bake.suspect = None;
        bake.cleared = Some(done);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deployment::{Deployed, DeploymentOrigin, Step};
    use crate::domain::new_change::NewChange;
    use chrono::{Duration, TimeZone};

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).single().unwrap_or_default() + Duration::minutes(m)
    }

    fn deployed(id: &str, environment: &str, step: Step, m: i64) -> Deployed {
        let origin = DeploymentOrigin {
            source: "github".into(),
            repository: "acme/payments".into(),
            deployment_id: id.into(),
            sha: None,
            git_ref: None,
            environment: environment.into(),
            url: None,
            actor: None,
        };
        Deployed::new(origin, step, t(m))
    }

    fn verifying() -> Change {
        let valid = NewChange::basic("Raise the pool", &["payments"], "production", t(-60), t(60)).validate();
        let mut c = valid.expect("valid").into_draft(
            crate::domain::ChangeId::new(),
            crate::domain::TenantId::parse("acme").expect("tenant"),
            "alice".into(),
            t(-120),
        );
        c.state = ChangeState::Verifying;
        c
    }

    fn production(e: &str) -> bool {
        e.starts_with("production")
    }

    #[test]
    fn the_bake_ends_its_time_after_the_latest_successful_production_deployment() {
        let mut c = verifying();
        let ok = Step::Finished(Outcome::Succeeded);
        c.deployments = vec![
            deployed("1", "production-eu", ok, 5),
            deployed("2", "staging", ok, 30),
            deployed("3", "production-us", Step::Finished(Outcome::Failed), 40),
        ];
        let hour = Span::parse("1h").expect("span");
        let bake = c.baked(&hour, production).expect("a bake");
        assert_eq!(bake.until, t(65));
        assert_eq!(c.baked(&Span::new(std::time::Duration::ZERO), production), None, "off");
        c.bake = Some(bake);
        assert_eq!(c.bake_due(), Some(t(65)));
        assert_eq!(c.due(), Some(crate::domain::change::Due::Bake(t(65))));
    }

    #[test]
    fn an_incident_during_the_bake_makes_it_suspect_until_a_person_clears_it() {
        let mut c = verifying();
        c.deployments = vec![deployed("1", "production", Step::Finished(Outcome::Succeeded), 0)];
        c.bake = c.baked(&Span::parse("30m").expect("span"), production);
        assert!(!c.mark_suspect("inc-late", t(31), "after".into()), "after the bake");
        assert!(c.mark_suspect("inc-1", t(10), "checkout errors".into()));
        assert!(!c.mark_suspect("inc-2", t(12), "again".into()), "once");
        assert_eq!(c.bake_due(), None, "a suspect change does not complete on its own");
        let reason = c.bake.as_ref().and_then(|b| b.hold_reason(&c)).expect("held");
        assert!(reason.contains("incident inc-1") && reason.contains("clear-suspect"), "{reason}");
        let done = Done { by: "olga".into(), at: t(20), note: "a false alarm".into() };
        let cleared = c.clear_suspect(done).expect("cleared");
        assert_eq!(cleared.bake_due(), Some(t(30)));
        assert!(cleared.clear_suspect(Done { by: "olga".into(), at: t(21), note: "x".into() }).is_none());
    }
}
