//! The deployment gate: whether a deployment of a service to an environment
//! may go ahead now, and the change it rests on. Pure: the app layer reads
//! the change (or the service's live changes), the freezes and the open
//! major incidents, and this decides.
//!
//! A gated environment (the catalog's `correlation.production_environments`:
//! a promotion from staging to production is gated) needs a change that
//! covers the service and environment and that may implement now, by the
//! same rules as the move to `implementing` ([`within_window`],
//! [`work_span`], [`holds`], the freeze windows, the checklist): approved,
//! in its planned window, its checklist done, no freeze and no major
//! incident holding it. Any other environment is recorded only: always
//! allowed.
//!
//! Every answer is one of three ([`GateStatus`]): `allowed`; `pending`, which
//! waiting may turn (approval, the window opening, a freeze ending, an
//! incident resolved); `refused`, which waiting cannot turn (rejected,
//! ended, the wrong service). A commit status maps them to success, pending
//! and failure; a protection rule callback answers the first and the last
//! and keeps the pending ones.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::change::{Change, ChangeState, ChangeType};
use super::freeze::{self, FreezeWindow};
use super::ids::{ChangeId, ServiceName};
use super::risk::RiskLevel;
use super::validation::FieldError;

/// Longest environment, version or sha accepted.
pub const MAX_NAME_CHARS: usize = 128;
/// How far ahead the gate looks for a service's changes when no change id is given.
pub const LOOKAHEAD: Duration = Duration::hours(24);

/// `POST /gates/deployments`: a deployment about to happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    pub service: String,
    pub environment: String,
    /// The version deployed (a tag, a build number); this or `sha`.
    #[serde(default)]
    pub version: Option<String>,
    /// The commit deployed; this or `version`.
    #[serde(default)]
    pub sha: Option<String>,
    /// The change the deployment belongs to; without it the gate looks for
    /// the service's change that may implement now.
    #[serde(default)]
    pub change: Option<String>,
}

/// A checked [`GateRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub service: ServiceName,
    pub environment: String,
    pub version: Option<String>,
    pub sha: Option<String>,
    pub change: Option<ChangeId>,
}

fn name(field: &str, value: &str) -> Result<String, FieldError> {
    let clean = value.trim() == value && !value.chars().any(char::is_control);
    if !clean || value.is_empty() || value.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            field,
            format!(
                "{field} must be 1 to {MAX_NAME_CHARS} characters, without control characters or surrounding spaces; got {value:?}"
            ),
        ));
    }
    Ok(value.to_owned())
}

impl GateRequest {
    /// Checks every field; the error names the first bad one.
    pub fn validate(self) -> Result<Ask, FieldError> {
        let service = ServiceName::parse(&self.service)?;
        let environment = name("environment", &self.environment)?;
        let version = self.version.as_deref().map(|v| name("version", v)).transpose()?;
        let sha = self.sha.as_deref().map(|s| name("sha", s)).transpose()?;
        if let Some(sha) = &sha
            && !((7..=64).contains(&sha.len()) && sha.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(FieldError::new("sha", format!("sha must be 7 to 64 hexadecimal digits; got {sha:?}")));
        }
        if version.is_none() && sha.is_none() {
            return Err(FieldError::new("version", "name what is deployed: version, sha, or both"));
        }
        let change = self
            .change
            .as_deref()
            .map(|c| ChangeId::parse(c).map_err(|e| FieldError::new("change", e.message)))
            .transpose()?;
        Ok(Ask { service, environment, version, sha, change })
    }
}

impl Ask {
    /// What is deployed, for people: `1.4.2 (3f2a9c1d0b7e)`.
    pub fn deployed(&self) -> String {
        let sha = self.sha.as_deref().map(crate::domain::deployment::short_sha);
        match (self.version.as_deref(), sha) {
            (Some(v), Some(s)) => format!("{v} ({s})"),
            (Some(v), None) => v.to_owned(),
            (None, Some(s)) => s.to_owned(),
            (None, None) => "an unnamed version".to_owned(),
        }
    }
}

/// An open major incident, as the gate weighs it.
#[derive(Debug, Clone, Copy)]
pub struct OpenIncident<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub commander: &'a str,
    pub services: &'a [ServiceName],
    pub declared_at: Option<DateTime<Utc>>,
}

/// What the gate checks a change against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub now: DateTime<Utc>,
    /// The tenant's production environments: the gated ones.
    pub production: &'a [String],
    /// How long before its planned start a change may start implementing.
    pub start_grace: Duration,
    pub freezes: &'a [FreezeWindow],
    pub incidents: &'a [OpenIncident<'a>],
}

impl Rules<'_> {
    pub fn gated(&self, environment: &str) -> bool {
        self.production.iter().any(|p| p.eq_ignore_ascii_case(environment))
    }

    /// Whether a change for `theirs` covers a deployment to `ours`: the
    /// same name (ignoring case), or both production.
    fn same_environment(&self, ours: &str, theirs: &str) -> bool {
        ours.eq_ignore_ascii_case(theirs) || (self.gated(ours) && self.gated(theirs))
    }
}

/// Whether `now` lies in `change`'s planned window, from `grace` before its
/// planned start to its planned end: when it may start implementing.
pub fn within_window(change: &Change, grace: Duration, now: DateTime<Utc>) -> bool {
    change.planned_start - grace <= now && now < change.planned_end
}

/// The work a change starting (or going on) at `now` does: from now to its
/// planned end, or as long as it was planned when that is past. What the
/// freeze windows are checked against.
pub fn work_span(change: &Change, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let end =
        if now < change.planned_end { change.planned_end } else { now + (change.planned_end - change.planned_start) };
    (now, end)
}

/// Whether the open major incident `id` on `services` holds `change`: it is
/// high risk and touches them, and it is not an approved emergency fixing
/// that very incident.
pub fn holds(change: &Change, id: &str, services: &[ServiceName]) -> bool {
    let high = change.risk.as_ref().is_some_and(|r| r.level >= RiskLevel::High);
    let fixes = change.approved_by_another() && change.incident.as_deref() == Some(id);
    high && services.iter().any(|s| change.services.contains(s)) && !fixes
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Allowed,
    /// Not now; waiting may turn it (a commit status `pending`).
    Pending,
    /// Not with this change; waiting cannot turn it (a commit status `failure`).
    Refused,
}

impl GateStatus {
    pub const ALL: [GateStatus; 3] = [GateStatus::Allowed, GateStatus::Pending, GateStatus::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::Allowed => "allowed",
            GateStatus::Pending => "pending",
            GateStatus::Refused => "refused",
        }
    }
}

/// Why, as a code a pipeline may branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateCode {
    /// The change may implement now.
    Allowed,
    /// The environment is not gated: recorded only.
    Recorded,
    /// No change covers the deployment (pending: one may be opened).
    NoChange,
    /// The change named does not exist.
    ChangeNotFound,
    /// The change does not name the service.
    WrongService,
    /// The change is for another environment.
    WrongEnvironment,
    /// A draft or submitted change: it waits for approval.
    NotApproved,
    /// Rejected or cancelled.
    ChangeRejected,
    /// Completed, failed, rolled back or closed: open a new change.
    ChangeEnded,
    /// Its planned window has not opened yet.
    BeforeWindow,
    /// Its planned window is over.
    WindowEnded,
    ChecklistIncomplete,
    FreezeWindow,
    MajorIncident,
    /// An incident during the change's bake made it suspect: its next stage
    /// waits until a person clears it (or it is rolled back).
    Suspect,
}

impl GateCode {
    pub const ALL: [GateCode; 15] = [
        GateCode::Allowed,
        GateCode::Recorded,
        GateCode::NoChange,
        GateCode::ChangeNotFound,
        GateCode::WrongService,
        GateCode::WrongEnvironment,
        GateCode::NotApproved,
        GateCode::ChangeRejected,
        GateCode::ChangeEnded,
        GateCode::BeforeWindow,
        GateCode::WindowEnded,
        GateCode::ChecklistIncomplete,
        GateCode::FreezeWindow,
        GateCode::MajorIncident,
        GateCode::Suspect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GateCode::Allowed => "allowed",
            GateCode::Recorded => "recorded",
            GateCode::NoChange => "no_change",
            GateCode::ChangeNotFound => "change_not_found",
            GateCode::WrongService => "wrong_service",
            GateCode::WrongEnvironment => "wrong_environment",
            GateCode::NotApproved => "not_approved",
            GateCode::ChangeRejected => "change_rejected",
            GateCode::ChangeEnded => "change_ended",
            GateCode::BeforeWindow => "before_window",
            GateCode::WindowEnded => "window_ended",
            GateCode::ChecklistIncomplete => "checklist_incomplete",
            GateCode::FreezeWindow => "freeze_window",
            GateCode::MajorIncident => "major_incident",
            GateCode::Suspect => "suspect",
        }
    }

    pub fn status(self) -> GateStatus {
        match self {
            GateCode::Allowed | GateCode::Recorded => GateStatus::Allowed,
            GateCode::NoChange
            | GateCode::NotApproved
            | GateCode::BeforeWindow
            | GateCode::ChecklistIncomplete
            | GateCode::FreezeWindow
            | GateCode::MajorIncident
            | GateCode::Suspect => GateStatus::Pending,
            GateCode::ChangeNotFound
            | GateCode::WrongService
            | GateCode::WrongEnvironment
            | GateCode::ChangeRejected
            | GateCode::ChangeEnded
            | GateCode::WindowEnded => GateStatus::Refused,
        }
    }
}

/// The change a decision rests on, as the answer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRef {
    pub id: ChangeId,
    pub title: String,
    pub state: ChangeState,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub environment: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
}

impl ChangeRef {
    pub fn of(c: &Change) -> Self {
        Self {
            id: c.id,
            title: c.title.clone(),
            state: c.state,
            change_type: c.change_type,
            environment: c.environment.clone(),
            planned_start: c.planned_start,
            planned_end: c.planned_end,
        }
    }
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub status: GateStatus,
    /// The first rule that holds the deployment, or `allowed`/`recorded`.
    pub code: GateCode,
    /// For people: what holds it and what to do, or what lets it through.
    pub reason: String,
    /// Whether the environment is gated (production) or recorded only.
    pub gated: bool,
    pub change: Option<ChangeRef>,
    /// When the passing of time alone may turn a pending answer (the window
    /// opens, a freeze ends): a waiter decides again then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck_at: Option<DateTime<Utc>>,
}

impl Decision {
    /// Whether waiting cannot turn it.
    pub fn settled(&self) -> bool {
        self.status != GateStatus::Pending
    }
}

/// What the activity log keeps of one answered gate request: who asked
/// about what, and the answer. Evidence that the deployment was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    pub asked_by: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    pub allowed: bool,
    pub status: GateStatus,
    pub code: GateCode,
    pub reason: String,
    /// How long the answer was held (a long poll), in milliseconds.
    pub waited_ms: u64,
}

impl GateRecord {
    pub fn of(asked_by: &str, ask: &Ask, decision: &Decision, waited_ms: u64) -> Self {
        Self {
            asked_by: asked_by.to_owned(),
            environment: ask.environment.clone(),
            version: ask.version.clone(),
            sha: ask.sha.clone(),
            allowed: decision.allowed,
            status: decision.status,
            code: decision.code,
            reason: decision.reason.clone(),
            waited_ms,
        }
    }
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One rule that holds a change.
struct Blocker {
    code: GateCode,
    reason: String,
    until: Option<DateTime<Utc>>,
}

fn decision(code: GateCode, reason: String, gated: bool, change: Option<&Change>) -> Decision {
    let status = code.status();
    Decision {
        allowed: status == GateStatus::Allowed,
        status,
        code,
        reason,
        gated,
        change: change.map(ChangeRef::of),
        recheck_at: None,
    }
}

/// Decides `ask` on the change found: the one it names (`None`: not found),
/// else the one [`pick`] chose among the service's changes (`None`: none).
pub fn decide(ask: &Ask, found: Option<&Change>, rules: &Rules<'_>) -> Decision {
    let what = format!("deploying {} {} to {}", ask.service, ask.deployed(), ask.environment);
    let gated = rules.gated(&ask.environment);
    if !gated {
        let on = found.map(|c| format!(" (change {})", c.id)).unwrap_or_default();
        let reason = format!("{what}: {} is not a gated environment; recorded only{on}", ask.environment);
        return decision(GateCode::Recorded, reason, false, found);
    }
    let Some(change) = found else {
        return match ask.change {
            Some(id) => decision(GateCode::ChangeNotFound, format!("{what}: change {id} does not exist"), true, None),
            None => decision(
                GateCode::NoChange,
                format!(
                    "{what}: no approved change of {} for {} is planned now; open one (POST /changes) and pass its id",
                    ask.service, ask.environment
                ),
                true,
                None,
            ),
        };
    };
    let id = change.id;
    let refuse = |code: GateCode, why: String| decision(code, format!("{what}: change {id} {why}"), true, Some(change));
    if !change.services.contains(&ask.service) {
        let names: Vec<&str> = change.services.iter().map(ServiceName::as_str).collect();
        return refuse(GateCode::WrongService, format!("covers {}, not {}", names.join(", "), ask.service));
    }
    if !rules.same_environment(&ask.environment, &change.environment) {
        return refuse(GateCode::WrongEnvironment, format!("is for {}, not {}", change.environment, ask.environment));
    }
    if change.was_rejected() {
        return refuse(GateCode::ChangeRejected, format!("was {}", change.rejected_text()));
    }
    match change.state {
        ChangeState::Draft => {
            return refuse(
                GateCode::NotApproved,
                format!("is a draft: submit it (POST /changes/{id}/transitions) for approval"),
            );
        }
        ChangeState::Submitted => {
            return refuse(GateCode::NotApproved, format!("waits for approval (POST /changes/{id}/decisions)"));
        }
        ChangeState::Rejected | ChangeState::Cancelled => {
            return refuse(GateCode::ChangeRejected, format!("was {}; open a new change", change.state));
        }
        ChangeState::Completed | ChangeState::Failed | ChangeState::RolledBack | ChangeState::Closed => {
            return refuse(GateCode::ChangeEnded, format!("is {}; open a new change", change.state));
        }
        ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing | ChangeState::Verifying => {}
    }
    let blockers = blockers(change, rules);
    let Some(first) = blockers.first() else {
        let reason = format!(
            "{what}: change {id} ({}) is {} and may implement now: in its planned window until {}, checklist done, no freeze or major incident holds it",
            change.title,
            change.state,
            secs(change.planned_end)
        );
        return decision(GateCode::Allowed, reason, true, Some(change));
    };
    let reasons: Vec<&str> = blockers.iter().map(|b| b.reason.as_str()).collect();
    let mut d = refuse(first.code, reasons.join("; "));
    // A refusal that waiting cannot turn wins over pending ones.
    if let Some(settled) = blockers.iter().find(|b| b.code.status() == GateStatus::Refused) {
        d.code = settled.code;
        d.status = GateStatus::Refused;
    }
    d.recheck_at = blockers.iter().filter_map(|b| b.until).min().filter(|_| d.status == GateStatus::Pending);
    d
}

/// The rules that hold an approved, scheduled or implementing `change` now,
/// in the order the move to implementing checks them. An emergency approved
/// by someone other than its requester that is implementing was let past
/// its window and freezes when it started (with an audited override).
/// How soon a deployment held by an open major incident is decided again
/// (a held protection rule request, a waiting `changehub gate`).
pub const INCIDENT_RECHECK: Duration = Duration::minutes(5);
/// How soon a held protection rule request is decided again while a freeze
/// holds it: a freeze lifted early is no change event, so this bounds how
/// long the request waits after the lift (the freeze's end is still when it
/// is decided at the latest).
pub const FREEZE_RECHECK: Duration = Duration::minutes(15);

fn blockers(change: &Change, rules: &Rules<'_>) -> Vec<Blocker> {
    let now = rules.now;
    let id = change.id;
    let started = matches!(change.state, ChangeState::Implementing | ChangeState::Verifying);
    let overridden = change.change_type == ChangeType::Emergency && change.approved_by_another() && started;
    let mut found = Vec::new();
    if let Some(reason) = change.bake.as_ref().and_then(|b| b.hold_reason(change)) {
        found.push(Blocker { code: GateCode::Suspect, reason, until: None });
    }
    let open: Vec<String> = change.open_checklist().map(|i| format!("{} ({})", i.id, i.text)).collect();
    if !open.is_empty() {
        found.push(Blocker {
            code: GateCode::ChecklistIncomplete,
            reason: format!(
                "its {} checklist is not complete: still open {} (POST /changes/{id}/checklist/{{item}})",
                change.category,
                open.join(", ")
            ),
            until: None,
        });
    }
    if !overridden && !within_window(change, rules.start_grace, now) {
        let window = format!("{} to {}", secs(change.planned_start), secs(change.planned_end));
        if now < change.planned_end {
            let opens = change.planned_start - rules.start_grace;
            found.push(Blocker {
                code: GateCode::BeforeWindow,
                reason: format!("is planned {window}: deployments may start from {}", secs(opens)),
                until: Some(opens),
            });
        } else {
            found.push(Blocker {
                code: GateCode::WindowEnded,
                reason: format!(
                    "was planned {window}, which is over; reschedule it (POST /changes/{id}/reschedule) or open a new change"
                ),
                until: None,
            });
        }
    }
    let (start, end) = work_span(change, now);
    if !overridden && let Some((window, occurrence)) = freeze::blocking(rules.freezes, &change.services, start, end) {
        let why = if change.change_type == ChangeType::Emergency {
            format!(
                "; as an emergency approved by someone other than its requester it may start with an override_reason (POST /changes/{id}/transitions)"
            )
        } else {
            String::new()
        };
        found.push(Blocker {
            code: GateCode::FreezeWindow,
            reason: format!("enters a {}{why}", window.describe(&occurrence)),
            until: Some(occurrence.end.max(now)),
        });
    }
    // A change implementing already passed the incidents declared before it started.
    let since = change.implementation.map(|i| i.started_at()).filter(|_| started);
    let holding: Vec<String> = rules
        .incidents
        .iter()
        .filter(|i| holds(change, i.id, i.services))
        .filter(|i| since.is_none_or(|s| i.declared_at.is_none_or(|d| d > s)))
        .map(|i| format!("{} \"{}\" (commander {})", i.id, i.title, i.commander))
        .collect();
    if !holding.is_empty() {
        found.push(Blocker {
            code: GateCode::MajorIncident,
            reason: format!(
                "is {} risk and major incident {} is open on its services; it waits until the incident is resolved",
                change.risk.as_ref().map_or("high", |r| r.level.as_str()),
                holding.join(", ")
            ),
            // A resolution is not a change event: whoever waits decides again
            // a little later instead of at the time-out.
            until: Some(now + INCIDENT_RECHECK),
        });
    }
    found
}

/// The change a deployment of `ask.service` to `ask.environment` rests on
/// when it names none, among `candidates` (the service's changes planned
/// around now): one that covers the service and environment and is not
/// over, preferring one whose recorded deployments name the same sha or
/// version, then the furthest along (implementing, scheduled, approved,
/// submitted, draft), then one in its window, then the nearest start.
pub fn pick<'a>(ask: &Ask, candidates: &'a [Change], rules: &Rules<'_>) -> Option<&'a Change> {
    let rank = |state: ChangeState| match state {
        ChangeState::Implementing | ChangeState::Verifying => Some(0),
        ChangeState::Scheduled => Some(1),
        ChangeState::Approved => Some(2),
        ChangeState::Submitted => Some(3),
        ChangeState::Draft => Some(4),
        _ => None,
    };
    let names_it = |c: &Change| {
        c.deployments.iter().any(|d| {
            let o = &d.origin;
            let sha = ask.sha.as_deref().is_some_and(|s| o.sha.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(s)));
            let version = ask.version.as_deref().is_some_and(|v| o.git_ref.as_deref() == Some(v));
            sha || version
        })
    };
    candidates
        .iter()
        .filter(|c| c.services.contains(&ask.service) && rules.same_environment(&ask.environment, &c.environment))
        .filter(|c| c.planned_end > rules.now)
        .filter_map(|c| rank(c.state).map(|r| (c, r)))
        .min_by_key(|&(c, r)| {
            let window = !within_window(c, rules.start_grace, rules.now);
            (!names_it(c), r, window, (c.planned_start - rules.now).abs(), c.id)
        })
        .map(|(c, _)| c)
}

pub mod merge;
pub mod protection;
pub mod pulls;

#[cfg(test)]
mod tests;
