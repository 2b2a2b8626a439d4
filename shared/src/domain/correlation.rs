//! Change-related incidents: which production changes probably caused an
//! incident, why, and how confident the hub is. A pure decision over facts
//! the caller gathered; nothing here reads a clock or a store.
//!
//! **The rule.** For an incident on service S that started at t, a change is
//! related when all of these hold:
//! - it touched S, or a service S depends on within `hops` steps of the
//!   catalog's `depends_on`, followed from S outward ([`Scope`]). A change to
//!   a service that depends on S (downstream of it) never qualifies, nor does
//!   a change to an unrelated service, whatever its timing or resources;
//! - it is a production change (`correlation.production_environments`), and
//!   the incident is not known to be outside production;
//! - its implementation overlaps `[t − window, t]`, both edges included: it
//!   started at or before t, and it finished at or after `t − window` or had
//!   not finished at t. A change that starts after the incident started, even
//!   by a second, is not related; one still implementing at t is, however
//!   long ago it started.
//!
//! The incident is change-related when at least one change is related.
//!
//! **Scoring.** Each related change scores points out of 1000; its
//! confidence is points / 1000, so always in (0, 1]:
//!
//! | reason | points |
//! |---|---|
//! | `same_service`: it touched S | 400 |
//! | `dependency`: it touched a service S depends on, n hops away | 250 / n (when it did not touch S) |
//! | `same_resource`: it touched a resource the incident names | +200 |
//! | `failed_deployment` / `rolled_back`: its outcome | +200 |
//! | `in_progress`: it was implementing at t | +200 |
//! | closeness, when it had finished `gap` before t | +150 × (window − gap) / window |
//! | `time_proximity`: it finished within the last quarter of the window | (counted in closeness) |
//!
//! Related changes are ranked by points, highest first, ties by change id
//! (ids are UUIDv7, so the older change first).
//!
//! **Event times only.** Every time compared is the incident's own start
//! (the source's time) and the changes' recorded transitions or deployment
//! times, never the time of the computation: the same facts replayed a month
//! later give the same answer, and shifting every time by the same offset
//! changes nothing.

mod exposed;
mod settings;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use exposed::Exposed;
pub use settings::{
    CorrelationOverride, CorrelationPolicy, DEFAULT_HOPS, DEFAULT_PRODUCTION_ENVIRONMENTS, DEFAULT_WINDOW, MAX_HOPS,
    Settings, WINDOW_RANGE,
};

use super::audit::AuditEntry;
use super::catalog::{Catalog, Span};
use super::change::{Change, ChangeState};
use super::ids::{ChangeId, ServiceName};

/// What the correlation needs to know about an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentFacts {
    /// The service the incident is on, as ingest resolved it.
    pub service: ServiceName,
    /// When the incident started, by the source's own clock (never the time it was received).
    pub started_at: DateTime<Utc>,
    /// The environment, when the source says (an alert's label); `None`
    /// counts as production, as PagerDuty, incident.io and CloudWatch do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Resources the incident names (ARNs, resource ids), compared exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// How an implementation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
}

/// When a change was implemented, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Implementation {
    /// Started, and not finished as far as the record says.
    Ongoing { started_at: DateTime<Utc> },
    /// Started and finished (a deployment known only by its time starts and ends then).
    Finished { started_at: DateTime<Utc>, ended_at: DateTime<Utc>, outcome: Outcome },
}

impl Implementation {
    /// A deployment known only by its time and outcome.
    pub fn deployed(at: DateTime<Utc>, outcome: Outcome) -> Self {
        Implementation::Finished { started_at: at, ended_at: at, outcome }
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        match *self {
            Implementation::Ongoing { started_at } | Implementation::Finished { started_at, .. } => started_at,
        }
    }

    /// When it finished; never before it started (an end recorded earlier counts as the start).
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        match *self {
            Implementation::Ongoing { .. } => None,
            Implementation::Finished { started_at, ended_at, .. } => Some(ended_at.max(started_at)),
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match *self {
            Implementation::Ongoing { .. } => None,
            Implementation::Finished { outcome, .. } => Some(outcome),
        }
    }
}

/// What the correlation needs to know about a candidate change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeFacts {
    pub id: ChangeId,
    pub services: Vec<ServiceName>,
    pub environment: String,
    pub implementation: Implementation,
    /// Resources the change touched (ARNs, resource ids), compared exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl ChangeFacts {
    /// The facts of a change record, by the implementation it records
    /// (`Change::implementation`, kept by its transitions). `None` for a
    /// change that never started implementing. The record names no
    /// resources: the caller adds them.
    pub fn of(change: &Change) -> Option<ChangeFacts> {
        change.implementation.map(|implementation| ChangeFacts::with(change, implementation))
    }

    /// The facts of a change record with its whole audit trail, for records
    /// written before they kept their implementation: it started when it
    /// moved to `implementing`, and ended at its last outcome (`completed`,
    /// `failed`, `rolled_back`; a rollback after a failure counts, as rolling
    /// back is production work too), each at the time its audit entry
    /// records. A record that keeps its implementation is read as [`ChangeFacts::of`].
    pub fn from_record(change: &Change, trail: &[AuditEntry]) -> Option<ChangeFacts> {
        if let Some(facts) = ChangeFacts::of(change) {
            return Some(facts);
        }
        let mut started_at = None;
        let mut finished = None;
        for entry in trail {
            match entry.moved_to() {
                Some(ChangeState::Implementing) => started_at = started_at.or(Some(entry.at)),
                Some(ChangeState::Completed) => finished = Some((entry.at, Outcome::Succeeded)),
                Some(ChangeState::Failed) => finished = Some((entry.at, Outcome::Failed)),
                Some(ChangeState::RolledBack) => finished = Some((entry.at, Outcome::RolledBack)),
                _ => {}
            }
        }
        let started_at = started_at?;
        let implementation = match finished {
            Some((ended_at, outcome)) => Implementation::Finished { started_at, ended_at, outcome },
            None => Implementation::Ongoing { started_at },
        };
        Some(ChangeFacts::with(change, implementation))
    }

    fn with(change: &Change, implementation: Implementation) -> ChangeFacts {
        ChangeFacts {
            id: change.id,
            services: change.services.clone(),
            environment: change.environment.clone(),
            implementation,
            resources: vec![],
        }
    }
}

/// A service whose changes may be related to an incident, and how many
/// `depends_on` steps it lies from the incident's service (0: that service).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Link {
    pub service: ServiceName,
    pub hops: u8,
}

/// Where to look for the changes related to an incident on one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The window and hops that apply: the service's own settings, else the tenant's.
    pub settings: Settings,
    /// The incident's service first, then the services it depends on,
    /// nearest first, by name. Read the changes of exactly these: those whose
    /// implementation overlaps `[t − window, t]`, and those still implementing at t.
    pub services: Vec<Link>,
}

impl Scope {
    /// The scope of an incident on `service`. A service the catalog does not
    /// list has no dependencies and the tenant's settings.
    pub fn of(catalog: &Catalog, service: &ServiceName) -> Scope {
        let by_name: HashMap<&ServiceName, _> = catalog.services.iter().map(|s| (&s.name, s)).collect();
        let own = by_name.get(service).and_then(|s| s.correlation.as_ref());
        let settings = catalog.correlation.settings(own);
        let mut services = vec![Link { service: service.clone(), hops: 0 }];
        let mut seen = BTreeSet::from([service]);
        let mut frontier = vec![service];
        for hops in 1..=settings.hops {
            let next: BTreeSet<&ServiceName> = frontier
                .iter()
                .filter_map(|s| by_name.get(s))
                .flat_map(|s| &s.depends_on)
                .filter(|d| !seen.contains(d))
                .collect();
            services.extend(next.iter().map(|&d| Link { service: d.clone(), hops }));
            seen.extend(next.iter().copied());
            frontier = next.into_iter().collect();
        }
        Scope { settings, services }
    }

    /// The earliest time a finished change may have ended and still be related to an incident started at `t`.
    pub fn since(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.checked_sub_signed(self.settings.window.chrono()).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The links of the services in scope the change touched, nearest first.
    fn links_of(&self, change: &ChangeFacts) -> Vec<Link> {
        self.services.iter().filter(|l| change.services.contains(&l.service)).cloned().collect()
    }
}

/// Why a change is suspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    SameService,
    Dependency,
    SameResource,
    FailedDeployment,
    RolledBack,
    InProgress,
    TimeProximity,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SameService => "same_service",
            Reason::Dependency => "dependency",
            Reason::SameResource => "same_resource",
            Reason::FailedDeployment => "failed_deployment",
            Reason::RolledBack => "rolled_back",
            Reason::InProgress => "in_progress",
            Reason::TimeProximity => "time_proximity",
        }
    }
}

/// A change related to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedChange {
    pub change_id: ChangeId,
    /// In the order of [`Reason`].
    pub reasons: Vec<Reason>,
    /// In (0, 1]: the points scored, out of 1000.
    pub confidence: f64,
    /// The services in scope the change touched, nearest first.
    pub links: Vec<Link>,
    /// The resources both the change and the incident name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// How long before the incident started the change finished; `None` when it was implementing then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_before: Option<Span>,
    /// Why it is suspected, as a sentence for people (notifications, the incident's record).
    pub explanation: String,
}

impl RelatedChange {
    /// Everything the assessment found, to choose between two of one change's
    /// (listed twice with different facts) whatever their order.
    fn key(&self) -> (&[Reason], &[Link], &[String], Option<std::time::Duration>) {
        (&self.reasons, &self.links, &self.resources, self.finished_before.as_ref().map(|s| s.0))
    }
}

/// The answer for one incident: the related changes, most likely first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Where the hub looked.
    pub scope: Scope,
    pub related: Vec<RelatedChange>,
}

impl Correlation {
    /// Whether the incident is tagged change-related.
    pub fn change_related(&self) -> bool {
        !self.related.is_empty()
    }
}

/// Points at which confidence is 1.
const FULL: u32 = 1000;
const SAME_SERVICE: u32 = 400;
const DEPENDENCY: u32 = 250;
const SAME_RESOURCE: u32 = 200;
const BAD_OUTCOME: u32 = 200;
const IN_PROGRESS: u32 = 200;
const CLOSENESS: u32 = 150;

/// Which of `candidates` are related to `incident`, ranked. A change listed
/// twice (found through two of its services) counts once, as its best
/// assessment; the order of `candidates` never matters.
pub fn correlate(catalog: &Catalog, incident: &IncidentFacts, candidates: &[ChangeFacts]) -> Correlation {
    let scope = Scope::of(catalog, &incident.service);
    let policy = &catalog.correlation;
    if incident.environment.as_deref().is_some_and(|e| !policy.is_production(e)) {
        return Correlation { scope, related: vec![] };
    }
    let mut best: BTreeMap<ChangeId, (u32, RelatedChange)> = BTreeMap::new();
    for change in candidates.iter().filter(|c| policy.is_production(&c.environment)) {
        let Some((points, related)) = assess(&scope, incident, change) else { continue };
        let better = best.get(&change.id).is_none_or(|(p, r)| (points, related.key()) > (*p, r.key()));
        if better {
            best.insert(change.id, (points, related));
        }
    }
    let mut ranked: Vec<(u32, RelatedChange)> = best.into_values().collect();
    ranked.sort_by(|(pa, a), (pb, b)| pb.cmp(pa).then_with(|| a.change_id.cmp(&b.change_id)));
    Correlation { scope, related: ranked.into_iter().map(|(_, r)| r).collect() }
}

/// The change's points and what it becomes, if it is related.
fn assess(scope: &Scope, incident: &IncidentFacts, change: &ChangeFacts) -> Option<(u32, RelatedChange)> {
    let t = incident.started_at;
    let implementation = &change.implementation;
    let window = scope.settings.window.chrono();
    // How long before t it finished; `None` while it was implementing at t.
    let gap = match implementation.ended_at() {
        Some(end) if end <= t => Some(t - end),
        _ => None,
    };
    if implementation.started_at() > t || gap.is_some_and(|gap| gap > window) {
        return None;
    }
    let links = scope.links_of(change);
    let nearest = links.first()?.hops;
    let resources: BTreeSet<&String> = change.resources.iter().filter(|r| incident.resources.contains(r)).collect();
    let resources: Vec<String> = resources.into_iter().cloned().collect();
    let (gap_s, window_s) = (gap.map(|g| g.num_seconds()), window.num_seconds().max(1));
    let mut reasons = BTreeSet::new();
    for (holds, reason) in [
        (links.iter().any(|l| l.hops == 0), Reason::SameService),
        (links.iter().any(|l| l.hops > 0), Reason::Dependency),
        (!resources.is_empty(), Reason::SameResource),
        (implementation.outcome() == Some(Outcome::Failed), Reason::FailedDeployment),
        (implementation.outcome() == Some(Outcome::RolledBack), Reason::RolledBack),
        (gap_s.is_none(), Reason::InProgress),
        (gap_s.is_some_and(|g| g * 4 <= window_s), Reason::TimeProximity),
    ] {
        if holds {
            reasons.insert(reason);
        }
    }
    let points = score(&reasons, nearest, gap_s, window_s);
    let finished_before = gap_s.map(|g| Span::new(std::time::Duration::from_secs(u64::try_from(g).unwrap_or(0))));
    let explanation = explain(&incident.service, &links, &resources, implementation.outcome(), finished_before.clone());
    let reasons = reasons.into_iter().collect();
    let confidence = f64::from(points) / f64::from(FULL);
    let related =
        RelatedChange { change_id: change.id, reasons, confidence, links, resources, finished_before, explanation };
    Some((points, related))
}

/// The points of a related change (the table in the module's documentation):
/// its nearest link, `nearest` hops away; a shared resource; a bad outcome;
/// and its timing, in progress (`gap_s` = `None`) or finished `gap_s`
/// seconds before the incident, in a window of `window_s` seconds.
fn score(reasons: &BTreeSet<Reason>, nearest: u8, gap_s: Option<i64>, window_s: i64) -> u32 {
    let link = if nearest == 0 { SAME_SERVICE } else { DEPENDENCY / u32::from(nearest) };
    let resource = if reasons.contains(&Reason::SameResource) { SAME_RESOURCE } else { 0 };
    let bad = reasons.contains(&Reason::FailedDeployment) || reasons.contains(&Reason::RolledBack);
    let outcome = if bad { BAD_OUTCOME } else { 0 };
    let timing = match gap_s {
        None => IN_PROGRESS,
        Some(g) => u32::try_from(i64::from(CLOSENESS) * (window_s - g) / window_s).unwrap_or(0),
    };
    (link + resource + outcome + timing).min(FULL)
}

/// One sentence saying why a change is suspected: `It changed payments, the
/// service the incident is on; its deployment failed; it finished 12 min
/// before the incident started.`
fn explain(
    service: &ServiceName,
    links: &[Link],
    resources: &[String],
    outcome: Option<Outcome>,
    finished_before: Option<Span>,
) -> String {
    let mut parts = Vec::new();
    if links.iter().any(|l| l.hops == 0) {
        parts.push(format!("it changed {service}, the service the incident is on"));
    }
    let dependencies: Vec<String> = links
        .iter()
        .filter(|l| l.hops > 0)
        .map(|l| if l.hops == 1 { l.service.to_string() } else { format!("{} ({} hops away)", l.service, l.hops) })
        .collect();
    if !dependencies.is_empty() {
        parts.push(format!("it changed {}, which {service} depends on", dependencies.join(" and ")));
    }
    if !resources.is_empty() {
        parts.push(format!("it touched {}, which the incident names", resources.join(", ")));
    }
    match outcome {
        Some(Outcome::Failed) => parts.push("its deployment failed".to_owned()),
        Some(Outcome::RolledBack) => parts.push("it was rolled back".to_owned()),
        Some(Outcome::Succeeded) | None => {}
    }
    parts.push(match finished_before {
        None => "it was being implemented when the incident started".to_owned(),
        Some(gap) if gap.0.is_zero() => "it finished as the incident started".to_owned(),
        Some(gap) => format!("it finished {} before the incident started", gap.for_people()),
    });
    let sentence = parts.join("; ");
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{AuditAction, record};
    use crate::domain::new_change::NewChange;
    use crate::domain::{Change, TenantId};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use serde_json::json;

    /// web → payments → ledger → db (each depends on the next); search alone.
    pub(super) fn catalog_with(edit: impl FnOnce(&mut serde_json::Value)) -> Catalog {
        let service = |name: &str, depends_on: &[&str]| json!({"name": name, "owner_group": format!("{name}-team"), "tier": 2, "depends_on": depends_on});
        let mut v = json!({"services": [
            service("web", &["payments"]),
            service("payments", &["ledger"]),
            service("ledger", &["db"]),
            service("db", &[]),
            service("search", &[]),
        ]});
        edit(&mut v);
        let catalog: Catalog = serde_json::from_value(v).expect("catalog");
        catalog.validate().expect("valid catalog");
        catalog
    }

    fn catalog() -> Catalog {
        catalog_with(|_| {})
    }

    /// The incident's start, `m` minutes from now on a fixed day.
    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().unwrap_or_default() + Duration::minutes(m)
    }

    fn name(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("service name")
    }

    fn id(n: u64) -> ChangeId {
        ChangeId::parse(&format!("00000000-0000-7000-8000-{n:012}")).expect("id")
    }

    fn incident(service: &str) -> IncidentFacts {
        IncidentFacts { service: name(service), started_at: t(0), environment: None, resources: vec![] }
    }

    fn change(n: u64, services: &[&str], implementation: Implementation) -> ChangeFacts {
        ChangeFacts {
            id: id(n),
            services: services.iter().map(|s| name(s)).collect(),
            environment: "production".into(),
            implementation,
            resources: vec![],
        }
    }

    /// Started an hour before it finished, `m` minutes from the incident.
    fn finished(m: i64, outcome: Outcome) -> Implementation {
        Implementation::Finished { started_at: t(m - 60), ended_at: t(m), outcome }
    }

    fn related(catalog: &Catalog, incident: &IncidentFacts, candidates: &[ChangeFacts]) -> Vec<RelatedChange> {
        correlate(catalog, incident, candidates).related
    }

    /// The one related change, or a panic naming what was found.
    fn only(catalog: &Catalog, incident: &IncidentFacts, candidate: ChangeFacts) -> RelatedChange {
        let found = related(catalog, incident, &[candidate]);
        assert_eq!(found.len(), 1, "{found:?}");
        found.into_iter().next().expect("one")
    }

    fn tags(catalog: &Catalog, incident: &IncidentFacts, candidate: ChangeFacts) -> bool {
        correlate(catalog, incident, &[candidate]).change_related()
    }

    #[test]
    fn a_change_to_the_incidents_service_just_before_it_is_related() {
        let r = only(&catalog(), &incident("payments"), change(1, &["payments"], finished(-10, Outcome::Succeeded)));
        assert_eq!(r.reasons, [Reason::SameService, Reason::TimeProximity]);
        assert_eq!(r.confidence, 0.543, "400 + 150 × 230/240");
        assert_eq!(r.links, [Link { service: name("payments"), hops: 0 }]);
        assert_eq!(r.finished_before, Some(Span::new(std::time::Duration::from_secs(600))));
        assert_eq!(
            r.explanation,
            "It changed payments, the service the incident is on; it finished 10 min before the incident started."
        );
        let ended_at = t(0) - Duration::seconds(416);
        let odd = Implementation::Finished { started_at: t(-20), ended_at, outcome: Outcome::Succeeded };
        let r = only(&catalog(), &incident("payments"), change(1, &["payments"], odd));
        assert!(r.explanation.ends_with("; it finished 6 min 56 s before the incident started."), "{}", r.explanation);
    }

    #[test]
    fn a_change_to_a_service_it_depends_on_is_related_with_less_confidence() {
        let r = only(&catalog(), &incident("payments"), change(1, &["ledger"], finished(-10, Outcome::Succeeded)));
        assert_eq!(r.reasons, [Reason::Dependency, Reason::TimeProximity]);
        assert_eq!(r.confidence, 0.393, "250 + 143");
        assert_eq!(
            r.explanation,
            "It changed ledger, which payments depends on; it finished 10 min before the incident started."
        );
        let both = only(
            &catalog(),
            &incident("payments"),
            change(1, &["ledger", "payments"], finished(-10, Outcome::Succeeded)),
        );
        assert_eq!(both.reasons, [Reason::SameService, Reason::Dependency, Reason::TimeProximity]);
        assert_eq!(both.confidence, 0.543, "scored by its nearest link");
    }

    #[test]
    fn a_failed_or_rolled_back_deployment_raises_confidence() {
        let (catalog, incident) = (catalog(), incident("payments"));
        let failed = only(&catalog, &incident, change(1, &["payments"], finished(-10, Outcome::Failed)));
        assert_eq!(failed.reasons, [Reason::SameService, Reason::FailedDeployment, Reason::TimeProximity]);
        assert_eq!(failed.confidence, 0.743);
        assert!(failed.explanation.contains("; its deployment failed; "), "{}", failed.explanation);
        let back = only(&catalog, &incident, change(1, &["payments"], finished(-10, Outcome::RolledBack)));
        assert_eq!(back.reasons, [Reason::SameService, Reason::RolledBack, Reason::TimeProximity]);
        assert_eq!(back.confidence, 0.743);
        assert!(back.explanation.contains("; it was rolled back; "), "{}", back.explanation);
    }

    #[test]
    fn a_change_implementing_when_the_incident_started_is_related_however_old() {
        let (catalog, incident) = (catalog(), incident("payments"));
        let ongoing = Implementation::Ongoing { started_at: t(-600) };
        let r = only(&catalog, &incident, change(1, &["payments"], ongoing));
        assert_eq!(r.reasons, [Reason::SameService, Reason::InProgress]);
        assert_eq!((r.confidence, r.finished_before), (0.6, None));
        assert_eq!(
            r.explanation,
            "It changed payments, the service the incident is on; it was being implemented when the incident started."
        );
        // Replayed after it finished (and failed), it was still implementing at the incident's start.
        let since = Implementation::Finished { started_at: t(-600), ended_at: t(30), outcome: Outcome::Failed };
        let r = only(&catalog, &incident, change(1, &["payments"], since));
        assert_eq!(r.reasons, [Reason::SameService, Reason::FailedDeployment, Reason::InProgress]);
        assert_eq!(r.confidence, 0.8);
    }

    #[test]
    fn a_change_to_an_unrelated_service_never_tags_whatever_its_timing_or_resources() {
        let arn = "arn:aws:rds:eu-west-1:123456789012:db:payments-main";
        let incident = IncidentFacts { resources: vec![arn.into()], ..incident("payments") };
        let mut search = change(1, &["search"], Implementation::Ongoing { started_at: t(0) });
        search.resources = vec![arn.into()];
        assert!(!tags(&catalog(), &incident, search));
        assert!(!tags(&catalog(), &incident, change(2, &["unknown"], finished(0, Outcome::Failed))));
    }

    #[test]
    fn a_change_downstream_of_the_incidents_service_never_tags() {
        let web = change(1, &["web"], finished(-5, Outcome::Failed));
        assert!(!tags(&catalog(), &incident("payments"), web.clone()), "web depends on payments, not the reverse");
        let deep = catalog_with(|v| v["correlation"] = json!({"hops": 3}));
        assert!(!tags(&deep, &incident("db"), web));
        assert!(tags(&catalog(), &incident("web"), change(2, &["payments"], finished(-5, Outcome::Failed))));
    }

    #[test]
    fn the_window_is_inclusive_at_both_ends() {
        let (catalog, incident) = (catalog(), incident("payments"));
        let ended = |m| change(1, &["payments"], finished(m, Outcome::Succeeded));
        let edge = only(&catalog, &incident, ended(-240));
        assert_eq!((edge.reasons.as_slice(), edge.confidence), ([Reason::SameService].as_slice(), 0.4));
        assert_eq!(
            edge.explanation,
            "It changed payments, the service the incident is on; it finished 4 h before the incident started."
        );
        let just_older = Implementation::Finished {
            started_at: t(-300),
            ended_at: t(-240) - Duration::seconds(1),
            outcome: Outcome::Failed,
        };
        assert!(!tags(&catalog, &incident, change(1, &["payments"], just_older)), "too old by a second");
        assert!(!tags(&catalog, &incident, ended(-241)));
        let at_the_start =
            only(&catalog, &incident, change(1, &["payments"], Implementation::deployed(t(0), Outcome::Succeeded)));
        assert_eq!(at_the_start.confidence, 0.55);
        assert_eq!(at_the_start.finished_before, Some(Span::new(std::time::Duration::ZERO)));
        assert!(
            at_the_start.explanation.ends_with("; it finished as the incident started."),
            "{}",
            at_the_start.explanation
        );
        let quarter = only(&catalog, &incident, ended(-60));
        assert_eq!(
            quarter.reasons,
            [Reason::SameService, Reason::TimeProximity],
            "time_proximity up to a quarter of the window"
        );
        assert_eq!(only(&catalog, &incident, ended(-61)).reasons, [Reason::SameService]);
    }

    #[test]
    fn a_change_starting_after_the_incident_started_never_tags() {
        let (catalog, incident) = (catalog(), incident("payments"));
        let after = Implementation::Ongoing { started_at: t(0) + Duration::seconds(1) };
        assert!(!tags(&catalog, &incident, change(1, &["payments"], after)));
        assert!(!tags(&catalog, &incident, change(1, &["payments"], Implementation::deployed(t(5), Outcome::Failed))));
        let at = only(&catalog, &incident, change(1, &["payments"], Implementation::Ongoing { started_at: t(0) }));
        assert_eq!(at.reasons, [Reason::SameService, Reason::InProgress], "starting as it started counts");
    }

    #[test]
    fn non_production_changes_and_incidents_never_tag() {
        let catalog = catalog();
        let mut staging = change(1, &["payments"], Implementation::Ongoing { started_at: t(-5) });
        staging.environment = "staging".into();
        assert!(!tags(&catalog, &incident("payments"), staging));
        let production = change(2, &["payments"], Implementation::Ongoing { started_at: t(-5) });
        let on_staging = IncidentFacts { environment: Some("staging".into()), ..incident("payments") };
        assert!(!tags(&catalog, &on_staging, production.clone()), "an incident outside production");
        let named = IncidentFacts { environment: Some("Production".into()), ..incident("payments") };
        assert!(tags(&catalog, &named, production.clone()));
        let live = catalog_with(|v| v["correlation"] = json!({"production_environments": ["live"]}));
        assert!(!tags(&live, &incident("payments"), production.clone()), "production is what the catalog says");
        let mut on_live = production;
        on_live.environment = "LIVE".into();
        assert!(tags(&live, &incident("payments"), on_live));
    }

    #[test]
    fn a_shared_resource_raises_confidence_and_is_named() {
        let arn = "arn:aws:rds:eu-west-1:123456789012:db:payments-main";
        let incident = IncidentFacts { resources: vec![arn.into()], ..incident("payments") };
        let mut c = change(1, &["ledger"], Implementation::Ongoing { started_at: t(-5) });
        c.resources = vec!["arn:aws:s3:::other".into(), arn.into(), arn.into()];
        let r = only(&catalog(), &incident, c);
        assert_eq!(r.reasons, [Reason::Dependency, Reason::SameResource, Reason::InProgress]);
        assert_eq!((r.confidence, r.resources.as_slice()), (0.65, [arn.to_owned()].as_slice()));
        assert_eq!(
            r.explanation,
            format!(
                "It changed ledger, which payments depends on; it touched {arn}, which the incident names; it was being implemented when the incident started."
            )
        );
        let mut all = change(
            2,
            &["payments"],
            Implementation::Finished { started_at: t(-5), ended_at: t(5), outcome: Outcome::Failed },
        );
        all.resources = vec![arn.into()];
        assert_eq!(only(&catalog(), &incident, all).confidence, 1.0, "every reason at once is full confidence");
    }

    #[test]
    fn hops_and_window_come_from_the_incidents_service_else_the_tenant() {
        let db = change(1, &["db"], finished(-10, Outcome::Succeeded));
        assert!(!tags(&catalog(), &incident("payments"), db.clone()), "db is two hops from payments");
        let two = catalog_with(|v| v["correlation"] = json!({"hops": 2}));
        let r = only(&two, &incident("payments"), db.clone());
        assert_eq!((r.reasons[0], r.confidence), (Reason::Dependency, 0.268), "250/2 + 143");
        assert!(
            r.explanation.starts_with("It changed db (2 hops away), which payments depends on; "),
            "{}",
            r.explanation
        );
        let own = catalog_with(|v| {
            v["correlation"] = json!({"hops": 2, "window": "1h"});
            v["services"][1]["correlation"] = json!({"hops": 0});
        });
        let ledger = change(2, &["ledger"], finished(-10, Outcome::Succeeded));
        assert!(!tags(&own, &incident("payments"), ledger.clone()), "payments looks at its own changes only");
        assert!(tags(&own, &incident("ledger"), db), "ledger keeps the tenant's hops");
        assert!(
            !tags(&own, &incident("web"), change(3, &["payments"], finished(-90, Outcome::Succeeded))),
            "the tenant's 1h window"
        );
        let scope = Scope::of(&own, &name("payments"));
        assert_eq!(scope.settings, Settings { window: Span::new(std::time::Duration::from_secs(3600)), hops: 0 });
        assert_eq!(scope.since(t(0)), t(-60));
        let unchecked = Scope { settings: Settings { window: Span::new(std::time::Duration::MAX), hops: 0 }, ..scope };
        assert_eq!(unchecked.since(t(0)), DateTime::<Utc>::MIN_UTC, "an unvalidated window never panics");
    }

    #[test]
    fn the_scope_is_the_service_then_its_dependencies_nearest_first() {
        let wide = catalog_with(|v| {
            v["correlation"] = json!({"hops": 3});
            v["services"][0]["depends_on"] = json!(["search", "payments"]);
        });
        let scope = Scope::of(&wide, &name("web"));
        let listed: Vec<(&str, u8)> = scope.services.iter().map(|l| (l.service.as_str(), l.hops)).collect();
        assert_eq!(listed, [("web", 0), ("payments", 1), ("search", 1), ("ledger", 2), ("db", 3)]);
        let unknown = Scope::of(&wide, &name("billing"));
        assert_eq!(unknown.services, [Link { service: name("billing"), hops: 0 }]);
        assert_eq!(unknown.settings.hops, 3);
        assert_eq!(Scope::of(&Catalog::default(), &name("billing")).settings.window, Span::new(DEFAULT_WINDOW));
    }

    #[test]
    fn related_changes_are_ranked_by_confidence_then_id_and_counted_once() {
        let candidates = [
            change(5, &["ledger"], finished(-10, Outcome::Succeeded)),
            change(4, &["payments"], finished(-10, Outcome::Succeeded)),
            change(3, &["payments"], finished(-10, Outcome::Succeeded)),
            change(2, &["payments"], finished(-5, Outcome::Failed)),
            change(9, &["search"], finished(-1, Outcome::Failed)),
            change(3, &["ledger"], finished(-10, Outcome::Succeeded)),
        ];
        let c = correlate(&catalog(), &incident("payments"), &candidates);
        assert!(c.change_related());
        let order: Vec<(ChangeId, f64)> = c.related.iter().map(|r| (r.change_id, r.confidence)).collect();
        assert_eq!(order, [(id(2), 0.746), (id(3), 0.543), (id(4), 0.543), (id(5), 0.393)]);
        assert!(!correlate(&catalog(), &incident("payments"), &[]).change_related());
        let incident = IncidentFacts { resources: vec!["r1".into(), "r2".into()], ..incident("payments") };
        let touching = |r: &str| ChangeFacts {
            resources: vec![r.into()],
            ..change(1, &["payments"], finished(-10, Outcome::Failed))
        };
        let (one, two) = (touching("r1"), touching("r2"));
        let first = related(&catalog(), &incident, &[one.clone(), two.clone()]);
        assert_eq!(first, related(&catalog(), &incident, &[two, one]), "equal scores, either order");
        assert_eq!(first.len(), 1);
    }

    #[test]
    fn related_changes_serialize_with_snake_case_reasons() {
        let r = only(&catalog(), &incident("payments"), change(1, &["payments"], finished(-10, Outcome::RolledBack)));
        let v = serde_json::to_value(&r).expect("ser");
        assert_eq!(v["reasons"], json!(["same_service", "rolled_back", "time_proximity"]));
        assert_eq!((&v["confidence"], &v["finished_before"]), (&json!(0.743), &json!("10m")));
        let names: Vec<&str> = r.reasons.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["same_service", "rolled_back", "time_proximity"]);
        let back: RelatedChange = serde_json::from_value(v).expect("de");
        assert_eq!(back, r);
    }

    /// A payments change driven through `to` in turn, one hour apart, with its trail.
    fn recorded(to: &[ChangeState]) -> (Change, Vec<AuditEntry>) {
        let at = t(-600);
        let draft = NewChange::basic("Upgrade", &["payments"], "production", at, at + Duration::hours(8))
            .validate()
            .expect("valid")
            .into_draft(id(7), TenantId::parse("acme").expect("tenant"), "alice".into(), at);
        let (mut current, first) = record(None, draft, "alice", AuditAction::Created, None);
        let mut trail = vec![first];
        for (i, &state) in to.iter().enumerate() {
            let next = current.transition(state, at + Duration::hours(i as i64 + 1)).expect("legal");
            let (next, entry) = record(Some(&current), next, "alice", AuditAction::Transitioned, None);
            trail.push(entry);
            current = next;
        }
        (current, trail)
    }

    #[test]
    fn a_records_implementation_comes_from_its_audit_trail() {
        use ChangeState::*;
        let before = [Submitted, Approved, Scheduled];
        let (c, trail) = recorded(&before);
        assert_eq!(ChangeFacts::from_record(&c, &trail), None, "never started");
        let (c, trail) = recorded(&[&before[..], &[Implementing]].concat());
        let facts = ChangeFacts::from_record(&c, &trail).expect("started");
        assert_eq!(facts.implementation, Implementation::Ongoing { started_at: t(-600) + Duration::hours(4) });
        assert_eq!(
            (facts.id, facts.environment.as_str(), facts.services.clone()),
            (id(7), "production", vec![name("payments")])
        );
        let (c, trail) = recorded(&[&before[..], &[Implementing, Failed, RolledBack, Closed]].concat());
        let facts = ChangeFacts::from_record(&c, &trail).expect("finished");
        assert_eq!(
            facts.implementation,
            Implementation::Finished {
                started_at: t(-600) + Duration::hours(4),
                ended_at: t(-600) + Duration::hours(6),
                outcome: Outcome::RolledBack
            },
            "started when implementing, ended at the rollback; closing is no outcome"
        );
        let (c, trail) = recorded(&[&before[..], &[Implementing, Completed, Closed]].concat());
        let outcome = ChangeFacts::from_record(&c, &trail).and_then(|f| f.implementation.outcome());
        assert_eq!(outcome, Some(Outcome::Succeeded));
    }

    // ---------------------------------------------------------------- properties

    const SERVICES: [&str; 6] = ["web", "payments", "ledger", "db", "search", "billing"];

    fn any_change() -> impl Strategy<Value = ChangeFacts> {
        (
            0u64..40,
            proptest::sample::subsequence(SERVICES.to_vec(), 1..3),
            prop_oneof![Just("production"), Just("staging")],
            -900i64..60,
            prop_oneof![Just(None), (0i64..600).prop_map(Some)],
            prop_oneof![Just(Outcome::Succeeded), Just(Outcome::Failed), Just(Outcome::RolledBack)],
            proptest::sample::subsequence(vec!["r1", "r2", "r3"], 0..2),
        )
            .prop_map(|(n, services, env, start, length, outcome, resources)| {
                let started_at = t(start);
                let implementation = match length {
                    None => Implementation::Ongoing { started_at },
                    Some(m) => {
                        Implementation::Finished { started_at, ended_at: started_at + Duration::minutes(m), outcome }
                    }
                };
                let mut c = change(n, &services, implementation);
                c.environment = env.into();
                c.resources = resources.into_iter().map(str::to_owned).collect();
                c
            })
    }

    fn any_case() -> impl Strategy<Value = (Catalog, IncidentFacts, Vec<ChangeFacts>)> {
        (
            0u8..=MAX_HOPS,
            prop_oneof![Just("30m"), Just("4h"), Just("1d")],
            proptest::sample::select(SERVICES.to_vec()),
            proptest::sample::subsequence(vec!["r1", "r2"], 0..2),
            proptest::collection::vec(any_change(), 0..12),
        )
            .prop_map(|(hops, window, service, resources, changes)| {
                let catalog = catalog_with(|v| v["correlation"] = json!({"hops": hops, "window": window}));
                let incident = IncidentFacts {
                    resources: resources.into_iter().map(str::to_owned).collect(),
                    ..incident(service)
                };
                (catalog, incident, changes)
            })
    }

    fn shifted(i: &Implementation, by: Duration) -> Implementation {
        match *i {
            Implementation::Ongoing { started_at } => Implementation::Ongoing { started_at: started_at + by },
            Implementation::Finished { started_at, ended_at, outcome } => {
                Implementation::Finished { started_at: started_at + by, ended_at: ended_at + by, outcome }
            }
        }
    }

    proptest! {
        #[test]
        fn confidence_is_within_0_and_1_and_the_ranking_holds((catalog, incident, changes) in any_case()) {
            let c = correlate(&catalog, &incident, &changes);
            prop_assert_eq!(c.change_related(), !c.related.is_empty());
            for r in &c.related {
                prop_assert!(r.confidence > 0.0 && r.confidence <= 1.0, "{:?}", r);
                prop_assert!(!r.explanation.is_empty() && r.explanation.ends_with('.'));
            }
            for pair in c.related.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                prop_assert!(a.confidence > b.confidence || (a.confidence == b.confidence && a.change_id < b.change_id));
            }
        }

        #[test]
        fn the_order_of_the_candidates_never_matters(
            (catalog, incident, changes, shuffled) in any_case().prop_flat_map(|(catalog, incident, changes)| {
                let shuffled = Just(changes.clone()).prop_shuffle();
                (Just(catalog), Just(incident), Just(changes), shuffled)
            }),
        ) {
            prop_assert_eq!(correlate(&catalog, &incident, &changes), correlate(&catalog, &incident, &shuffled));
        }

        #[test]
        fn nothing_is_related_without_a_service_link_in_production((catalog, incident, changes) in any_case()) {
            let c = correlate(&catalog, &incident, &changes);
            let scope = Scope::of(&catalog, &incident.service);
            for r in &c.related {
                let facts: Vec<&ChangeFacts> = changes.iter().filter(|ch| ch.id == r.change_id).collect();
                prop_assert!(facts.iter().any(|ch| {
                    ch.environment == "production"
                        && ch.services.iter().any(|s| scope.services.iter().any(|l| &l.service == s))
                }), "{:?}", r);
                prop_assert!(!r.links.is_empty());
            }
            let unlinked: Vec<ChangeFacts> = changes
                .iter()
                .filter(|ch| !ch.services.iter().any(|s| scope.services.iter().any(|l| &l.service == s)))
                .cloned()
                .collect();
            prop_assert!(!correlate(&catalog, &incident, &unlinked).change_related());
        }

        #[test]
        fn shifting_every_time_by_the_same_offset_gives_the_same_answer(
            (catalog, incident, changes) in any_case(),
            offset in -10_000_000i64..10_000_000,
        ) {
            let by = Duration::seconds(offset * 7);
            let moved = IncidentFacts { started_at: incident.started_at + by, ..incident.clone() };
            let changes_moved: Vec<ChangeFacts> = changes
                .iter()
                .map(|c| ChangeFacts { implementation: shifted(&c.implementation, by), ..c.clone() })
                .collect();
            prop_assert_eq!(correlate(&catalog, &incident, &changes), correlate(&catalog, &moved, &changes_moved));
        }

        #[test]
        fn a_change_downstream_or_beside_the_incidents_service_never_tags((catalog, _, changes) in any_case()) {
            let beside: Vec<ChangeFacts> = changes
                .into_iter()
                .map(|c| ChangeFacts { services: vec![name("web"), name("search")], ..c })
                .collect();
            prop_assert!(!correlate(&catalog, &incident("payments"), &beside).change_related());
        }
    }
}
