//! Problem records: incidents that keep recurring on a service, linked
//! under one record until a change fixes what causes them.
//!
//! What recurs is either the service's change-related incidents or the
//! incidents of one alert fingerprint on it ([`Recurs`]). When the
//! service's incidents of one kind reach the catalog's threshold within its
//! period (`problems:`, [`settings`]), a problem opens linking them; later
//! incidents of that kind join it while it is open. Everything is decided on
//! the incidents' own start times, never on when they were recorded: a late
//! incident counts in the period it started in.
//!
//! The rule ([`decide`]) reads only the service's [`RecentIncidents`], a
//! small ring of its latest incidents kept beside the problems, so deciding
//! costs the same whatever the service's history.

pub mod settings;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::ids::{ChangeId, ServiceName, TenantId};
use super::validation::FieldError;

pub use settings::{ProblemOverride, ProblemPolicy, Recurrence};

/// Incidents a service's ring keeps, latest started first: at least the
/// largest threshold, so a burst is never cut short.
pub const RECENT_INCIDENTS: usize = 64;
/// Open problems a service's ring remembers (the latest opened kept).
pub const MAX_OPEN_REMEMBERED: usize = 32;
/// Incident ids a problem lists; past it only `incident_count` grows.
pub const MAX_LINKED_INCIDENTS: usize = 200;
/// The actor of a problem's opening: the hub itself.
pub const HUB_ACTOR: &str = "changehub";
/// Longest incident id and alert fingerprint taken.
pub const MAX_REF_CHARS: usize = 256;

/// A problem id: a UUIDv7, so ids sort by when the problem opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProblemId(uuid::Uuid);

impl ProblemId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| FieldError::new("id", format!("problem id must be a UUID; got {s:?}")))
    }
}

impl Default for ProblemId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ProblemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// What an incident record tells the problem rule, when it is created or tagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSeen {
    pub tenant: TenantId,
    /// The incident record's id, unique in the tenant.
    pub incident_id: String,
    pub service: ServiceName,
    /// The fingerprint of the alert that raised it, if an alert did.
    pub fingerprint: Option<String>,
    pub change_related: bool,
    pub related_changes: Vec<ChangeId>,
    pub started_at: DateTime<Utc>,
}

impl IncidentSeen {
    /// Refuses an empty or oversized incident id or fingerprint, naming the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_ref("incident_id", Some(&self.incident_id))?;
        check_ref("fingerprint", self.fingerprint.as_ref())
    }

    /// The incident as the service's ring keeps it.
    pub fn recent(&self) -> RecentIncident {
        RecentIncident {
            id: self.incident_id.clone(),
            started_at: self.started_at,
            fingerprint: self.fingerprint.clone(),
            change_related: self.change_related,
        }
    }
}

fn check_ref(field: &str, value: Option<&String>) -> Result<(), FieldError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > MAX_REF_CHARS || v.chars().any(char::is_control) => {
            Err(FieldError::new(
                field,
                format!("{field} must be 1 to {MAX_REF_CHARS} characters without control characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// What a problem is about: the kind of incident that recurs on its service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recurs {
    /// Incidents related to changes on the service.
    ChangeRelated,
    /// Incidents raised by alerts with this fingerprint.
    Fingerprint { fingerprint: String },
}

impl Recurs {
    /// Whether `incident` is of this kind.
    pub fn covers(&self, incident: &RecentIncident) -> bool {
        match self {
            Recurs::ChangeRelated => incident.change_related,
            Recurs::Fingerprint { fingerprint } => incident.fingerprint.as_ref() == Some(fingerprint),
        }
    }

    /// The kinds `incident` is of, most specific first: its fingerprint, then change-related.
    pub fn of(incident: &RecentIncident) -> Vec<Recurs> {
        let fingerprint = incident.fingerprint.clone().map(|fingerprint| Recurs::Fingerprint { fingerprint });
        fingerprint.into_iter().chain(incident.change_related.then_some(Recurs::ChangeRelated)).collect()
    }

    /// A stable text key, for the ring's map of open problems.
    pub fn key(&self) -> String {
        match self {
            Recurs::ChangeRelated => "change_related".to_owned(),
            Recurs::Fingerprint { fingerprint } => format!("fingerprint:{fingerprint}"),
        }
    }

    /// In words, for a problem's title and history.
    pub fn describe(&self) -> String {
        match self {
            Recurs::ChangeRelated => "change-related incidents".to_owned(),
            Recurs::Fingerprint { fingerprint } => format!("incidents of alert {fingerprint}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemStatus {
    /// Incidents of its kind join it.
    Open,
    /// A change is linked as its fix; no incident joins it any more.
    Fixed,
    /// Done with, fixed or not.
    Closed,
}

impl ProblemStatus {
    pub const ALL: [ProblemStatus; 3] = [ProblemStatus::Open, ProblemStatus::Fixed, ProblemStatus::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemStatus::Open => "open",
            ProblemStatus::Fixed => "fixed",
            ProblemStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| FieldError::new("status", format!("status must be one of open, fixed, closed; got {s:?}")))
    }
}

/// One transition of a problem, as its history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemEvent {
    pub at: DateTime<Utc>,
    /// Who made it: a user, or the hub itself when incidents open it.
    pub actor: String,
    pub status: ProblemStatus,
    /// The change linked as the fix, on the transition to fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<ChangeId>,
    pub detail: String,
}

/// A problem record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub id: ProblemId,
    pub tenant: TenantId,
    pub service: ServiceName,
    pub recurs: Recurs,
    pub status: ProblemStatus,
    /// The linked incidents' ids, in the order they were linked (the first [`MAX_LINKED_INCIDENTS`]).
    pub incidents: Vec<String>,
    /// How many incidents are linked, listed or not.
    pub incident_count: u64,
    /// The earliest and the latest start of a linked incident.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Changes the linked incidents were related to (the first [`MAX_LINKED_INCIDENTS`]).
    #[serde(default)]
    pub related_changes: Vec<ChangeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<ChangeId>,
    /// Every transition, oldest first: opened, fixed, closed.
    pub history: Vec<ProblemEvent>,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
}

/// A transition a problem cannot make from its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("problem {id} is {from}; it cannot be {to}")]
pub struct IllegalProblemTransition {
    pub id: ProblemId,
    pub from: &'static str,
    pub to: &'static str,
}

impl Problem {
    /// A problem opened at `now` by the incidents that recur.
    pub fn open(
        service: &ServiceName,
        tenant: &TenantId,
        recurs: Recurs,
        linked: &[&RecentIncident],
        related_changes: &[ChangeId],
        now: DateTime<Utc>,
    ) -> Problem {
        let first = linked.iter().map(|i| i.started_at).min().unwrap_or(now);
        let last = linked.iter().map(|i| i.started_at).max().unwrap_or(now);
        let detail = format!("{} {} on {service} within the period", linked.len(), recurs.describe());
        let mut problem = Problem {
            id: ProblemId::new(),
            tenant: tenant.clone(),
            service: service.clone(),
            recurs,
            status: ProblemStatus::Open,
            incidents: vec![],
            incident_count: 0,
            first_seen: first,
            last_seen: last,
            related_changes: vec![],
            fix: None,
            history: vec![ProblemEvent {
                at: now,
                actor: HUB_ACTOR.to_owned(),
                status: ProblemStatus::Open,
                fix: None,
                detail,
            }],
            version: 1,
        };
        for incident in linked {
            problem.link(incident, &[]);
        }
        problem.add_related(related_changes);
        problem
    }

    /// Links an incident (once: a linked id is not counted again) and the
    /// changes it was related to; whether anything changed.
    pub fn link(&mut self, incident: &RecentIncident, related_changes: &[ChangeId]) -> bool {
        let mut changed = self.add_related(related_changes);
        if !self.incidents.contains(&incident.id) {
            if self.incidents.len() < MAX_LINKED_INCIDENTS {
                self.incidents.push(incident.id.clone());
            }
            self.incident_count = self.incident_count.saturating_add(1);
            self.first_seen = self.first_seen.min(incident.started_at);
            self.last_seen = self.last_seen.max(incident.started_at);
            changed = true;
        }
        changed
    }

    fn add_related(&mut self, changes: &[ChangeId]) -> bool {
        let before = self.related_changes.len();
        for id in changes {
            if !self.related_changes.contains(id) && self.related_changes.len() < MAX_LINKED_INCIDENTS {
                self.related_changes.push(*id);
            }
        }
        self.related_changes.len() != before
    }

    /// Links `change` as the fix: open → fixed (or a fixed problem's fix replaced).
    pub fn fixed_by(
        &self,
        change: ChangeId,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Problem, IllegalProblemTransition> {
        if self.status == ProblemStatus::Closed {
            return Err(self.illegal("linked to a fix"));
        }
        let detail = match self.fix {
            Some(old) => format!("fix changed from change {old} to change {change}"),
            None => format!("change {change} linked as the fix"),
        };
        Ok(self.next(ProblemStatus::Fixed, Some(change), actor, now, detail))
    }

    /// Closes the problem, from open or fixed.
    pub fn closed(
        &self,
        actor: &str,
        now: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<Problem, IllegalProblemTransition> {
        if self.status == ProblemStatus::Closed {
            return Err(self.illegal("closed"));
        }
        let detail = reason.map_or_else(|| "closed".to_owned(), |r| format!("closed: {r}"));
        Ok(self.next(ProblemStatus::Closed, self.fix, actor, now, detail))
    }

    fn next(
        &self,
        status: ProblemStatus,
        fix: Option<ChangeId>,
        actor: &str,
        now: DateTime<Utc>,
        detail: String,
    ) -> Problem {
        let mut next = self.clone();
        next.status = status;
        next.fix = fix;
        next.version = self.version.saturating_add(1);
        next.history.push(ProblemEvent { at: now, actor: actor.to_owned(), status, fix, detail });
        next
    }

    fn illegal(&self, to: &'static str) -> IllegalProblemTransition {
        IllegalProblemTransition { id: self.id, from: self.status.as_str(), to }
    }
}

/// One incident as a service's ring keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentIncident {
    pub id: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub change_related: bool,
}

/// A service's latest incidents (at most [`RECENT_INCIDENTS`], latest
/// started first) and the problem last opened for each kind: all the rule
/// reads. Written conditionally on `version`, so that every incident on a
/// service is decided against the ring as the one before left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentIncidents {
    pub incidents: Vec<RecentIncident>,
    /// [`Recurs::key`] → the problem last opened for it.
    pub problems: BTreeMap<String, ProblemId>,
    /// 0 while the service has none.
    pub version: u64,
}

impl RecentIncidents {
    /// The ring with `incident` in it (replacing an entry of the same id),
    /// latest started first, the earliest dropped past [`RECENT_INCIDENTS`].
    pub fn with(&self, incident: &RecentIncident) -> RecentIncidents {
        let mut next = self.clone();
        next.incidents.retain(|i| i.id != incident.id);
        next.incidents.push(incident.clone());
        next.incidents.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.id.cmp(&b.id)));
        next.incidents.truncate(RECENT_INCIDENTS);
        next.version = self.version.saturating_add(1);
        next
    }

    /// Remembers `problem` as the one opened for its kind, forgetting the
    /// oldest past [`MAX_OPEN_REMEMBERED`].
    pub fn remember(&mut self, problem: &Problem) {
        self.problems.insert(problem.recurs.key(), problem.id);
        while self.problems.len() > MAX_OPEN_REMEMBERED {
            let Some(oldest) = self.problems.iter().min_by_key(|(_, id)| **id).map(|(k, _)| k.clone()) else { break };
            self.problems.remove(&oldest);
        }
    }

    /// The problem last opened for `recurs`, if any (open or not).
    pub fn problem_for(&self, recurs: &Recurs) -> Option<ProblemId> {
        self.problems.get(&recurs.key()).copied()
    }
}

/// What an incident does to the service's problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// It joins this open problem.
    Join(ProblemId),
    /// It makes its kind recur: a problem opens linking these incidents (itself among them).
    Open { recurs: Recurs, linked: Vec<&'a RecentIncident> },
    /// Neither.
    Nothing,
}

/// Decides what `incident` does, from the ring with it already in
/// ([`RecentIncidents::with`]) and `known`, the problems the ring remembers
/// for the incident's kinds, as stored. An open problem of its kind takes
/// it, the most specific kind first (its fingerprint, then change-related);
/// otherwise a kind that reaches the threshold within one period around the
/// incident's start opens a problem. Incidents a fixed or closed problem of
/// the kind already covers (started by its `last_seen`) do not count again:
/// after a fix, the kind must recur afresh.
pub fn decide<'a>(
    settings: &Recurrence,
    ring: &'a RecentIncidents,
    incident: &RecentIncident,
    known: &[Problem],
) -> Decision<'a> {
    let kinds = Recurs::of(incident);
    let remembered =
        |kind: &Recurs| ring.problem_for(kind).and_then(|id| known.iter().find(|p| p.id == id && p.recurs == *kind));
    if let Some(open) = kinds.iter().filter_map(remembered).find(|p| p.status == ProblemStatus::Open) {
        return Decision::Join(open.id);
    }
    for recurs in kinds {
        let settled = remembered(&recurs).map(|p| p.last_seen);
        let same: Vec<&RecentIncident> = ring
            .incidents
            .iter()
            .filter(|i| recurs.covers(i) && settled.is_none_or(|last| i.started_at > last))
            .collect();
        if let Some(linked) = burst(&same, incident.started_at, settings) {
            return Decision::Open { recurs, linked };
        }
    }
    Decision::Nothing
}

/// The earliest run of at least `threshold` incidents that start within one
/// `period` of each other and include a start at `t`, if there is one.
fn burst<'a>(same: &[&'a RecentIncident], t: DateTime<Utc>, settings: &Recurrence) -> Option<Vec<&'a RecentIncident>> {
    let period = settings.period.chrono();
    let threshold = usize::try_from(settings.threshold).unwrap_or(usize::MAX);
    let mut starts: Vec<DateTime<Utc>> =
        same.iter().map(|i| i.started_at).filter(|s| *s <= t && t - *s <= period).collect();
    starts.sort();
    starts.into_iter().find_map(|from| {
        let to = from.checked_add_signed(period).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut run: Vec<&RecentIncident> =
            same.iter().copied().filter(|i| i.started_at >= from && i.started_at <= to).collect();
        run.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
        (run.len() >= threshold).then_some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Span;
    use chrono::Duration;

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("time").with_timezone(&Utc) + Duration::days(day)
    }

    fn incident(id: &str, day: i64, fingerprint: Option<&str>, change_related: bool) -> RecentIncident {
        RecentIncident {
            id: id.into(),
            started_at: at(day),
            fingerprint: fingerprint.map(str::to_owned),
            change_related,
        }
    }

    fn three_in_a_week() -> Recurrence {
        ProblemPolicy::default().settings(None)
    }

    fn ring_of(incidents: &[RecentIncident]) -> RecentIncidents {
        incidents.iter().fold(RecentIncidents::default(), |ring, i| ring.with(i))
    }

    fn ids(linked: &[&RecentIncident]) -> Vec<String> {
        linked.iter().map(|i| i.id.clone()).collect()
    }

    #[test]
    fn the_third_change_related_incident_in_a_week_opens_a_problem_linking_all_three() {
        let ring = ring_of(&[incident("a", 0, None, true), incident("b", 2, None, true)]);
        let third = incident("c", 5, None, true);
        let ring = ring.with(&third);
        match decide(&three_in_a_week(), &ring, &third, &[]) {
            Decision::Open { recurs, linked } => {
                assert_eq!(recurs, Recurs::ChangeRelated);
                assert_eq!(ids(&linked), ["a", "b", "c"]);
            }
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn incidents_further_apart_than_the_period_do_not_recur() {
        let ring = ring_of(&[incident("a", 0, None, true), incident("b", 4, None, true)]);
        let third = incident("c", 8, None, true);
        assert_eq!(decide(&three_in_a_week(), &ring.with(&third), &third, &[]), Decision::Nothing);
        let unrelated = ring_of(&[incident("a", 0, None, false), incident("b", 1, None, false)]);
        let plain = incident("c", 2, None, false);
        assert_eq!(decide(&three_in_a_week(), &unrelated.with(&plain), &plain, &[]), Decision::Nothing);
    }

    #[test]
    fn a_late_incident_counts_in_the_period_it_started_in() {
        // Recorded last, started between the two others: the three fall within one week.
        let ring = ring_of(&[incident("a", 0, Some("disk"), false), incident("c", 6, Some("disk"), false)]);
        let late = incident("b", 3, Some("disk"), false);
        let with_late = ring.with(&late);
        let Decision::Open { recurs, linked } = decide(&three_in_a_week(), &with_late, &late, &[]) else {
            panic!("expected a problem");
        };
        assert_eq!(recurs, Recurs::Fingerprint { fingerprint: "disk".into() });
        assert_eq!(ids(&linked), ["a", "b", "c"]);
        // Recorded late but started long before the others: it does not recur with them.
        let old = incident("z", -30, Some("disk"), false);
        assert_eq!(decide(&three_in_a_week(), &ring.with(&old), &old, &[]), Decision::Nothing);
    }

    #[test]
    fn an_incident_joins_the_open_problem_of_its_most_specific_kind() {
        let mut ring = RecentIncidents::default();
        let settings = three_in_a_week();
        let first = incident("a", 0, Some("cpu"), true);
        let by_fingerprint = Problem::open(
            &"api".parse_service(),
            &"acme".parse_tenant(),
            Recurs::Fingerprint { fingerprint: "cpu".into() },
            &[&first],
            &[],
            at(0),
        );
        let by_change =
            Problem::open(&"api".parse_service(), &"acme".parse_tenant(), Recurs::ChangeRelated, &[&first], &[], at(0));
        ring.remember(&by_change);
        ring.remember(&by_fingerprint);
        let next = incident("b", 1, Some("cpu"), true);
        let ring = ring.with(&next);
        let both = [by_change.clone(), by_fingerprint.clone()];
        assert_eq!(decide(&settings, &ring, &next, &both), Decision::Join(by_fingerprint.id));
        let fixed = by_fingerprint.fixed_by(ChangeId::new(), "olga", at(1)).expect("fix");
        let one_open = [by_change.clone(), fixed.clone()];
        assert_eq!(decide(&settings, &ring, &next, &one_open), Decision::Join(by_change.id));
        let closed = by_change.closed("olga", at(1), None).expect("close");
        assert_eq!(decide(&settings, &ring, &next, &[closed, fixed]), Decision::Nothing);
        assert_eq!(decide(&settings, &ring, &next, &[]), Decision::Nothing);
    }

    #[test]
    fn after_a_fix_only_incidents_since_the_problem_count_again() {
        let settings = three_in_a_week();
        let old = [incident("a", 0, None, true), incident("b", 1, None, true), incident("c", 2, None, true)];
        let ring = ring_of(&old);
        let linked: Vec<&RecentIncident> = old.iter().collect();
        let service = "api".parse_service();
        let problem = Problem::open(&service, &"acme".parse_tenant(), Recurs::ChangeRelated, &linked, &[], at(2));
        let fixed = problem.fixed_by(ChangeId::new(), "olga", at(3)).expect("fix");
        let mut ring = ring;
        ring.remember(&fixed);
        let next = incident("d", 4, None, true);
        let ring = ring.with(&next);
        assert_eq!(decide(&settings, &ring, &next, std::slice::from_ref(&fixed)), Decision::Nothing);
        let ring = ring.with(&incident("e", 5, None, true));
        let last = incident("f", 6, None, true);
        let ring = ring.with(&last);
        let Decision::Open { linked, .. } = decide(&settings, &ring, &last, &[fixed]) else { panic!("recurs afresh") };
        assert_eq!(ids(&linked), ["d", "e", "f"]);
    }

    #[test]
    fn a_custom_threshold_and_period_apply() {
        let two_in_a_day = Recurrence { threshold: 2, period: Span::new(std::time::Duration::from_secs(86_400)) };
        let ring = ring_of(&[incident("a", 0, Some("x"), false)]);
        let next = incident("b", 1, Some("x"), false);
        assert!(matches!(decide(&two_in_a_day, &ring.with(&next), &next, &[]), Decision::Open { .. }));
        let later = incident("b", 2, Some("x"), false);
        assert_eq!(decide(&two_in_a_day, &ring.with(&later), &later, &[]), Decision::Nothing);
    }

    #[test]
    fn the_ring_keeps_the_latest_started_incidents_once_each() {
        let mut ring = RecentIncidents::default();
        for day in 0..(RECENT_INCIDENTS as i64 + 10) {
            ring = ring.with(&incident(&format!("i{day}"), day, None, false));
        }
        assert_eq!(ring.incidents.len(), RECENT_INCIDENTS);
        assert_eq!(ring.incidents[0].id, format!("i{}", RECENT_INCIDENTS + 9));
        let tagged = incident(&format!("i{}", RECENT_INCIDENTS + 9), RECENT_INCIDENTS as i64 + 9, None, true);
        let again = ring.with(&tagged);
        assert_eq!(again.incidents.len(), RECENT_INCIDENTS);
        assert!(again.incidents[0].change_related);
        assert_eq!(again.version, ring.version + 1);
    }

    #[test]
    fn a_problem_links_an_incident_once_and_moves_open_fixed_closed_with_its_history() {
        let a = incident("a", 2, None, true);
        let change = ChangeId::new();
        let mut p = Problem::open(
            &"api".parse_service(),
            &"acme".parse_tenant(),
            Recurs::ChangeRelated,
            &[&a],
            &[change],
            at(3),
        );
        assert_eq!((p.incident_count, p.first_seen, p.last_seen), (1, at(2), at(2)));
        assert!(!p.link(&a, &[change]));
        assert!(p.link(&incident("b", 1, None, true), &[]));
        assert_eq!((p.incident_count, p.first_seen, p.last_seen), (2, at(1), at(2)));
        let fix = ChangeId::new();
        let fixed = p.fixed_by(fix, "alice", at(4)).expect("open → fixed");
        assert_eq!((fixed.status, fixed.fix, fixed.version), (ProblemStatus::Fixed, Some(fix), p.version + 1));
        let closed = fixed.closed("bob", at(5), Some("no recurrence in a month")).expect("fixed → closed");
        assert_eq!(closed.status, ProblemStatus::Closed);
        let actors: Vec<&str> = closed.history.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(actors, ["changehub", "alice", "bob"]);
        assert_eq!(closed.history[2].detail, "closed: no recurrence in a month");
        let err = closed.fixed_by(fix, "alice", at(6)).expect_err("closed");
        assert_eq!(err.to_string(), format!("problem {} is closed; it cannot be linked to a fix", closed.id));
    }

    #[test]
    fn an_incident_id_or_fingerprint_must_be_reasonable() {
        let seen = IncidentSeen {
            tenant: "acme".parse_tenant(),
            incident_id: String::new(),
            service: "api".parse_service(),
            fingerprint: None,
            change_related: false,
            related_changes: vec![],
            started_at: at(0),
        };
        assert_eq!(seen.validate().expect_err("empty").field, "incident_id");
        let seen = IncidentSeen { incident_id: "pd:1".into(), fingerprint: Some("x".repeat(257)), ..seen };
        assert_eq!(seen.validate().expect_err("long").field, "fingerprint");
    }

    trait Names {
        fn parse_service(&self) -> ServiceName;
        fn parse_tenant(&self) -> TenantId;
    }

    impl Names for str {
        fn parse_service(&self) -> ServiceName {
            ServiceName::parse(self).expect("service")
        }
        fn parse_tenant(&self) -> TenantId {
            TenantId::parse(self).expect("tenant")
        }
    }
}
