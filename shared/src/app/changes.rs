//! Change-record use cases: create, read, list, the lifecycle with its
//! rules (approval policy, dual control, checklists, freeze windows,
//! conflicts, major incidents), decisions, reviews, audit. Generic over the
//! ports they need; each costs a bounded number of store calls, whatever
//! the history size.

use chrono::{DateTime, Datelike, Duration, Utc};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use tracing::instrument;

use crate::app::catalog::CachedCatalog;
use crate::app::governance::{Freezes, Incidents, MajorIncident, read_doc};
use crate::domain::access::{Access, Forbidden};
use crate::domain::approval::{ApprovalPlan, DecisionError, PlanStatus, Verdict};
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::{CatalogView, Role};
use crate::domain::change::{ChecklistItem, Conflict, Done, PostReview};
use crate::domain::freeze;
use crate::domain::risk::{self, History, RiskAssessment, RiskInput, RiskLevel};
use crate::domain::{
    AuditEntry, Change, ChangeId, ChangeState, ChangeType, FieldError, IllegalTransition, NewChange, ServiceName,
};
use crate::ports::{
    Bump, CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, CounterKey, Counters, DocKind, DueIndex,
    MAX_PAGE, Page, ServiceWindowQuery, StoreError, TenantDocs, VolumeKey, VolumeOf,
};

pub use crate::domain::access::Caller;

/// The actor of what the hub does by itself (approving standard changes on submission).
pub const SYSTEM_ACTOR: &str = "changehub";
/// Most services (the change's own and those they depend on) a conflict check reads.
pub const MAX_CONFLICT_SERVICES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("change {0} not found")]
    NotFound(ChangeId),
    #[error("{0}")]
    Missing(String),
    #[error("change {id}: version {expected} is no longer current{}; read the change again and retry", actual.map(|a| format!(" (it is at version {a})")).unwrap_or_default())]
    VersionConflict { id: ChangeId, expected: u64, actual: Option<u64> },
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A tenant document changed since the caller read it.
    #[error("the {what} is at version {actual}, not {expected}; read it again and retry")]
    DocConflict { what: &'static str, expected: u64, actual: u64 },
    /// A rule of the change process refuses the request; `code` names the rule.
    #[error("{message}")]
    Refused { code: &'static str, field: Option<&'static str>, message: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e)
    }
}

fn refused(code: &'static str, field: Option<&'static str>, message: impl Into<String>) -> ChangeError {
    ChangeError::Refused { code, field, message: message.into() }
}

/// `POST /changes/{id}/transitions`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: ChangeState,
    /// The version the caller last read: the transition applies only to it.
    pub version: u64,
    #[serde(default)]
    pub reason: Option<String>,
    /// Why a rule is overridden: an approved emergency entering a freeze
    /// window or starting outside its planned window, or the incident
    /// commander scheduling a high-risk change during a major incident.
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// `POST /changes/{id}/reschedule`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The version the caller last read: the reschedule applies only to it.
    pub version: u64,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    /// Why the window moves; audited.
    pub reason: String,
    /// Why an approved emergency may move into a freeze window, or the
    /// incident commander a scheduled high-risk change during a major incident.
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// `POST /changes/{id}/decisions`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: Verdict,
    /// The version the caller last read; when absent the decision applies to the current version.
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /changes/{id}/checklist/{item}` and `POST /changes/{id}/review`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub version: u64,
    /// The evidence (checklist) or the findings (review).
    pub note: String,
}

pub const MAX_REASON_CHARS: usize = 2_000;

fn check_text(field: &str, text: Option<&String>, required: bool) -> Result<(), FieldError> {
    match text {
        Some(t) if t.chars().count() > MAX_REASON_CHARS => {
            Err(FieldError::new(field, format!("{field} must be at most {MAX_REASON_CHARS} characters")))
        }
        Some(t) if required && t.trim().is_empty() => Err(FieldError::new(field, format!("{field} must not be empty"))),
        None if required => Err(FieldError::new(field, format!("{field} is required"))),
        _ => Ok(()),
    }
}

/// `GET /changes?service=&from=&to=`; absent bounds default to a week back and a month ahead.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub service: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const DEFAULT_LOOKBACK: Duration = Duration::days(7);
pub const DEFAULT_LOOKAHEAD: Duration = Duration::days(31);
pub const DEFAULT_PAGE: usize = 50;

/// What the change use cases need of a store.
pub trait ChangeStore: ChangeReader + ChangeWriter + TenantDocs + Counters + DueIndex + Clone + 'static {}
impl<T: ChangeReader + ChangeWriter + TenantDocs + Counters + DueIndex + Clone + 'static> ChangeStore for T {}

pub struct Changes<S, C> {
    pub store: S,
    pub catalog: CachedCatalog<S>,
    pub clock: C,
}

/// A mutation on its way to the store: the audit entries so far and the counters to bump.
struct Pending {
    change: Change,
    entries: Vec<AuditEntry>,
    bumps: Vec<Bump>,
    volumes: Vec<VolumeKey>,
    moved_from: Option<DateTime<Utc>>,
}

impl Pending {
    fn new(current: &Change) -> Self {
        Self { change: current.clone(), entries: vec![], bumps: vec![], volumes: vec![], moved_from: None }
    }

    /// Chains one audited step onto the change.
    fn step(&mut self, next: Change, actor: &str, action: AuditAction, reason: Option<String>) {
        let (next, entry) = audit::record(Some(&self.change), next, actor, action, reason);
        self.change = next;
        self.entries.push(entry);
    }

    fn transition(
        &mut self,
        to: ChangeState,
        at: DateTime<Utc>,
        actor: &str,
        reason: Option<String>,
        edit: impl FnOnce(&mut Change),
    ) -> Result<(), ChangeError> {
        let mut next = self.change.transition(to, at)?;
        edit(&mut next);
        self.step(next, actor, AuditAction::Transitioned, reason);
        Ok(())
    }
}

/// Ok if `change` is still at the version the caller read.
fn current_at(change: &Change, version: u64) -> Result<(), ChangeError> {
    if change.version == version {
        Ok(())
    } else {
        Err(ChangeError::VersionConflict { id: change.id, expected: version, actual: Some(change.version) })
    }
}

fn join_reasons(parts: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = parts.into_iter().flatten().filter(|p| !p.trim().is_empty()).collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `now`'s month as `YYYY-MM`, the month counters are kept by.
fn month_of(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

/// The volume counters a submission of `change` adds one to: its requester's
/// and each owning team's (the catalog's owner group of its services), this month.
fn volume_keys(view: &CatalogView, change: &Change, now: DateTime<Utc>) -> Vec<VolumeKey> {
    let key =
        |of| VolumeKey { tenant: change.tenant.clone(), month: month_of(now), change_type: change.change_type, of };
    let mut keys = vec![key(VolumeOf::Requester(change.requester.clone()))];
    for service in &change.services {
        if let Some(svc) = view.catalog.service(service) {
            let team = key(VolumeOf::Team(svc.owner_group.clone()));
            if !keys.contains(&team) {
                keys.push(team);
            }
        }
    }
    keys
}

/// The months `[now - period + 1 month, now]` as `YYYY-MM`.
fn months_back(now: DateTime<Utc>, period: u8) -> Vec<String> {
    let (mut y, mut m) = (now.year(), now.month());
    let mut out = Vec::with_capacity(usize::from(period));
    for _ in 0..period.max(1) {
        out.push(format!("{y:04}-{m:02}"));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out
}

impl<S, C> Changes<S, C>
where
    S: ChangeStore,
    C: Clock,
{
    pub fn new(store: S, clock: C) -> Self {
        Self::with_catalog_ttl(store, clock, crate::app::catalog::DEFAULT_CACHE_TTL)
    }

    pub fn with_catalog_ttl(store: S, clock: C, ttl: std::time::Duration) -> Self {
        Self { catalog: CachedCatalog::new(store.clone(), ttl), store, clock }
    }

    /// Freeze windows and major incidents, on the same store and catalog.
    pub fn governance(&self) -> crate::app::governance::Governance<'_, S, CachedCatalog<S>, C> {
        crate::app::governance::Governance { docs: &self.store, catalog: &self.catalog, clock: &self.clock }
    }

    /// The caller's roles under their tenant's catalog, and the catalog.
    async fn access<'a>(&self, caller: &'a Caller) -> Result<(Access<'a>, Arc<CatalogView>), ChangeError> {
        let view = self.catalog.catalog(&caller.tenant).await?;
        Ok((Access::new(caller, &view.catalog.roles), view))
    }

    /// Ok if the caller holds any role in their tenant (everyone may read).
    async fn reader(&self, caller: &Caller, what: &str) -> Result<(), ChangeError> {
        let (access, _) = self.access(caller).await?;
        access.require(&Role::PEOPLE, what)?;
        Ok(())
    }

    /// The change, if the caller may drive it: its requester (holding the
    /// requester role), or anyone with the cab or admin role.
    async fn driven<'a>(
        &self,
        caller: &'a Caller,
        id: &ChangeId,
        what: &str,
    ) -> Result<(Access<'a>, Arc<CatalogView>, Change), ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&Role::ALL, what)?;
        let change = self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))?;
        let own = access.has(Role::Requester) && change.requester == caller.user;
        if !(own || access.has_any(&[Role::Cab, Role::Admin])) {
            return Err(Forbidden(format!(
                "{what} needs the requester role and to be the change's requester ({}), or the cab or admin role; {}",
                change.requester,
                access.held()
            ))
            .into());
        }
        Ok((access, view, change))
    }

    async fn save(&self, pending: Pending, expected: u64) -> Result<Change, ChangeError> {
        let id = pending.change.id;
        let update = ChangeUpdate {
            change: &pending.change,
            entries: &pending.entries,
            bumps: &pending.bumps,
            volumes: &pending.volumes,
            moved_from: pending.moved_from,
        };
        debug_assert_eq!(update.expected(), expected);
        match self.store.update_change(update).await {
            Ok(()) => Ok(pending.change),
            Err(StoreError::VersionConflict { expected }) => {
                Err(ChangeError::VersionConflict { id, expected, actual: None })
            }
            Err(StoreError::NotFound) => Err(ChangeError::NotFound(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Scores `change` under the tenant's rules, with the failure history of
    /// similar changes read from the monthly counters (services × months keys).
    async fn assess(&self, view: &CatalogView, change: &Change) -> Result<RiskAssessment, ChangeError> {
        let rules = &view.catalog.risk;
        let tier = rules.effective_tier(change.services.iter().map(|s| view.catalog.service(s).map(|svc| svc.tier)));
        let months = months_back(self.clock.now(), rules.period_months);
        let keys: Vec<CounterKey> = change
            .services
            .iter()
            .flat_map(|service| {
                months.iter().map(move |month| CounterKey {
                    tenant: change.tenant.clone(),
                    service: service.clone(),
                    month: month.clone(),
                    category: change.category.clone(),
                    change_type: change.change_type,
                })
            })
            .collect();
        let counts = self.store.counts(&keys).await?;
        let history = counts.iter().fold(History::default(), |h, c| History {
            changes: h.changes.saturating_add(c.changes),
            failures: h.failures.saturating_add(c.failures),
        });
        Ok(risk::assess(
            rules,
            &RiskInput {
                tier,
                impact: &change.impact,
                complexity: change.complexity,
                privileged_access: change.privileged_access,
                cryptographic_keys: change.cryptographic_keys,
                history,
            },
        ))
    }

    /// Other live changes whose planned windows overlap `change`'s on its
    /// services or on the services they depend on (one index query per service).
    async fn conflicts(&self, view: &CatalogView, change: &Change) -> Result<Vec<Conflict>, ChangeError> {
        let mut targets: Vec<(ServiceName, String)> = Vec::new();
        for s in &change.services {
            targets.push((s.clone(), "same service".to_owned()));
        }
        for s in &change.services {
            for dep in view.catalog.service(s).map(|svc| svc.depends_on.as_slice()).unwrap_or_default() {
                targets.push((dep.clone(), format!("{s} depends on {dep}")));
            }
        }
        let mut seen = HashSet::new();
        targets.retain(|(s, _)| seen.insert(s.clone()));
        targets.truncate(MAX_CONFLICT_SERVICES);
        let mut found: Vec<Conflict> = Vec::new();
        for (service, reason) in targets {
            let query = ServiceWindowQuery {
                tenant: change.tenant.clone(),
                service: service.clone(),
                from: change.planned_start,
                to: change.planned_end,
                limit: MAX_PAGE,
                after: None,
            };
            for other in self.store.changes_for_service(&query).await?.items {
                let live = matches!(
                    other.state,
                    ChangeState::Submitted | ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing
                );
                let overlaps = other.planned_start < change.planned_end && change.planned_start < other.planned_end;
                if other.id != change.id && live && overlaps && !found.iter().any(|c| c.change_id == other.id) {
                    found.push(Conflict {
                        change_id: other.id,
                        title: other.title.clone(),
                        state: other.state,
                        service: service.clone(),
                        reason: reason.clone(),
                        planned_start: other.planned_start,
                        planned_end: other.planned_end,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Refuses work during `[start, end)` that enters a freeze window, unless
    /// an emergency change records an override reason; returns the audit text
    /// of an override. A draft emergency may ask for the override when it is
    /// submitted; the override holds only once someone other than its
    /// requester approved the emergency, so scheduling and implementing check
    /// that.
    async fn freeze_gate(
        &self,
        change: &Change,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        override_reason: Option<&str>,
        verb: &str,
    ) -> Result<Option<String>, ChangeError> {
        let (freezes, _): (Freezes, u64) = read_doc(&self.store, &change.tenant, DocKind::Freezes).await?;
        let Some((window, occurrence)) = freeze::blocking(&freezes.windows, &change.services, start, end) else {
            return Ok(None);
        };
        let described = window.describe(&occurrence);
        let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
        match (reason, change.change_type) {
            (Some(reason), ChangeType::Emergency) if change.state == ChangeState::Draft => Ok(Some(format!(
                "freeze override requested, to hold once another person approves ({described}): {reason}"
            ))),
            (Some(reason), ChangeType::Emergency) if change.approved_by_another() => {
                Ok(Some(format!("freeze override ({described}): {reason}")))
            }
            (Some(_), ChangeType::Emergency) => Err(refused(
                "freeze_window",
                Some("override_reason"),
                format!(
                    "{verb} this change enters a {described}; an emergency overrides a freeze only once someone other than its requester approved it (POST /changes/{}/decisions)",
                    change.id
                ),
            )),
            (_, ChangeType::Emergency) => Err(refused(
                "freeze_window",
                Some("override_reason"),
                format!(
                    "{verb} this change enters a {described}; as an emergency it may proceed with an override_reason, which is audited"
                ),
            )),
            _ => Err(refused(
                "freeze_window",
                Some("planned_start"),
                format!(
                    "{verb} this change enters a {described}; move its planned window, or only an emergency change with an override_reason may enter a freeze"
                ),
            )),
        }
    }

    /// The tenant's open major incident `id`, if it is open.
    async fn open_incident(
        &self,
        tenant: &crate::domain::TenantId,
        id: &str,
    ) -> Result<Option<MajorIncident>, ChangeError> {
        let (incidents, _): (Incidents, u64) = read_doc(&self.store, tenant, DocKind::Incidents).await?;
        Ok(incidents.open.into_iter().find(|i| i.id == id))
    }

    /// Refuses scheduling (or starting) a high-risk change on a service with
    /// an open major incident, unless that incident's commander moves it
    /// with a reason. An approved emergency is not held up by the incident it fixes.
    async fn incident_gate(
        &self,
        caller: &Caller,
        change: &Change,
        override_reason: Option<&str>,
        verb: &str,
    ) -> Result<Option<String>, ChangeError> {
        if change.risk.as_ref().is_none_or(|r| r.level < RiskLevel::High) {
            return Ok(None);
        }
        let (incidents, _): (Incidents, u64) = read_doc(&self.store, &change.tenant, DocKind::Incidents).await?;
        let fixes = |id: &str| change.approved_by_another() && change.incident.as_deref() == Some(id);
        let blocking: Vec<_> = incidents
            .open
            .iter()
            .filter(|i| i.services.iter().any(|s| change.services.contains(s)) && !fixes(&i.id))
            .collect();
        if blocking.is_empty() {
            return Ok(None);
        }
        let commands_all = blocking.iter().all(|i| i.commander == caller.user);
        let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
        let names = blocking
            .iter()
            .map(|i| format!("{} \"{}\" (commander {})", i.id, i.title, i.commander))
            .collect::<Vec<_>>();
        match reason {
            Some(reason) if commands_all => Ok(Some(format!(
                "authorized by incident commander {} during major incident {}: {reason}",
                caller.user,
                names.join(", ")
            ))),
            _ => Err(refused(
                "major_incident",
                Some("override_reason"),
                format!(
                    "a {} risk change cannot be {verb} while major incident {} is open on its services, unless the incident commander does it with an override_reason",
                    change.risk.as_ref().map_or("high", |r| r.level.as_str()),
                    names.join(", ")
                ),
            )),
        }
    }

    /// Refuses starting a change outside its planned window, from
    /// `implementation.start_grace` before its planned start to its planned
    /// end, unless an emergency approved by someone other than its requester
    /// records an override reason; returns the audit text of an override.
    fn window_gate(
        view: &CatalogView,
        change: &Change,
        req: &TransitionRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ChangeError> {
        let grace = view.catalog.implementation.start_grace;
        if change.planned_start - grace.chrono() <= now && now < change.planned_end {
            return Ok(None);
        }
        let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let window = format!(
            "planned window {} to {} (starts may be {grace} early)",
            secs(change.planned_start),
            secs(change.planned_end)
        );
        let reason = req.override_reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        match reason {
            Some(reason) if change.change_type == ChangeType::Emergency && change.approved_by_another() => {
                Ok(Some(format!("window override (now {} is outside the {window}): {reason}", secs(now))))
            }
            _ => Err(refused(
                "outside_window",
                Some("planned_start"),
                format!(
                    "now ({}) is outside the change's {window}; reschedule it (POST /changes/{}/reschedule), or an approved emergency may start with an override_reason",
                    secs(now),
                    change.id
                ),
            )),
        }
    }

    #[instrument(skip(self, input), fields(tenant = %caller.tenant))]
    pub async fn create(&self, caller: &Caller, input: NewChange) -> Result<Change, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&[Role::Requester, Role::Cab, Role::Admin], "opening a change")?;
        let valid = input.validate()?;
        let Some(category) = view.catalog.category(&valid.category) else {
            let known: Vec<&str> = std::iter::once(crate::domain::catalog::DEFAULT_CATEGORY)
                .chain(view.catalog.categories.keys().map(String::as_str))
                .collect();
            return Err(FieldError::new(
                "category",
                format!("unknown category {:?}; the catalog knows: {}", valid.category, known.join(", ")),
            )
            .into());
        };
        if let Some(t) = &valid.template
            && view.catalog.template(t).is_none()
        {
            return Err(FieldError::new("template", format!("the catalog has no standard template {t:?}")).into());
        }
        let mut draft = valid.into_draft(ChangeId::new(), caller.tenant.clone(), caller.user.clone(), self.clock.now());
        draft.checklist = category
            .checklist
            .iter()
            .map(|i| ChecklistItem { id: i.id.clone(), text: i.text.clone(), done: None })
            .collect();
        draft.risk = Some(self.assess(&view, &draft).await?);
        let (change, entry) = audit::record(None, draft, &caller.user, AuditAction::Created, None);
        self.store.insert_change(&change, &entry).await?;
        tracing::info!(change_id = %change.id, "change created");
        Ok(change)
    }

    pub async fn get(&self, caller: &Caller, id: &ChangeId) -> Result<Change, ChangeError> {
        self.reader(caller, "reading changes").await?;
        self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))
    }

    pub async fn list(&self, caller: &Caller, req: ListRequest) -> Result<Page<Change>, ChangeError> {
        self.reader(caller, "listing changes").await?;
        let service = req
            .service
            .ok_or_else(|| FieldError::new("service", "service is required: list the changes of one service"))?;
        let service = ServiceName::parse(&service)?;
        let now = self.clock.now();
        let from = req.from.unwrap_or(now - DEFAULT_LOOKBACK);
        let to = req.to.unwrap_or(now + DEFAULT_LOOKAHEAD);
        for (field, t) in [("from", from), ("to", to)] {
            if !crate::domain::new_change::in_supported_range(t) {
                return Err(FieldError::new(field, "time must be between the years 2000 and 9998").into());
            }
        }
        if to < from {
            return Err(FieldError::new("to", "to must not be before from").into());
        }
        let limit = req.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_PAGE}")).into());
        }
        if let Some(c) = &req.cursor
            && !crate::adapters::keys::cursor_is_valid(c)
        {
            return Err(FieldError::new("cursor", "cursor is not one this API returned").into());
        }
        let query = ServiceWindowQuery { tenant: caller.tenant.clone(), service, from, to, limit, after: req.cursor };
        Ok(self.store.changes_for_service(&query).await?)
    }

    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id, to = %req.to))]
    pub async fn transition(
        &self,
        caller: &Caller,
        id: &ChangeId,
        req: TransitionRequest,
    ) -> Result<Change, ChangeError> {
        check_text("reason", req.reason.as_ref(), false)?;
        check_text("override_reason", req.override_reason.as_ref(), false)?;
        let (_, view, current) = self.driven(caller, id, "moving a change").await?;
        current_at(&current, req.version)?;
        let now = self.clock.now();
        // Legality first, so an illegal move is named as such whatever else is wrong.
        current.transition(req.to, now)?;
        let mut pending = Pending::new(&current);
        match req.to {
            ChangeState::Approved | ChangeState::Rejected => {
                return Err(refused(
                    "decision_required",
                    Some("to"),
                    format!(
                        "a change is approved or rejected by its approvers' decisions (POST /changes/{id}/decisions), not moved there; only standard changes are approved on submission"
                    ),
                ));
            }
            ChangeState::Submitted => self.submit(caller, &view, &req, &mut pending, now).await?,
            ChangeState::Scheduled => {
                let planned = (current.planned_start, current.planned_end);
                let over = req.override_reason.as_deref();
                let freeze = self.freeze_gate(&current, planned, over, "scheduling").await?;
                let incident = self.incident_gate(caller, &current, over, "scheduled").await?;
                let conflicts = self.conflicts(&view, &current).await?;
                let reason = join_reasons([req.reason.clone(), freeze, incident]);
                pending.transition(ChangeState::Scheduled, now, &caller.user, reason, |c| c.conflicts = conflicts)?;
            }
            ChangeState::Implementing => {
                let open: Vec<String> = current.open_checklist().map(|i| format!("{} ({})", i.id, i.text)).collect();
                if !open.is_empty() {
                    return Err(refused(
                        "checklist_incomplete",
                        Some("checklist"),
                        format!(
                            "the {} checklist must be complete before implementing; still open: {}",
                            current.category,
                            open.join(", ")
                        ),
                    ));
                }
                let window = Self::window_gate(&view, &current, &req, now)?;
                // The work runs from now to the planned end (as long as planned, if that is past).
                let end = if now < current.planned_end {
                    current.planned_end
                } else {
                    now + (current.planned_end - current.planned_start)
                };
                let over = req.override_reason.as_deref();
                let freeze = self.freeze_gate(&current, (now, end), over, "implementing").await?;
                let incident = self.incident_gate(caller, &current, over, "started").await?;
                let reason = join_reasons([req.reason.clone(), window, freeze, incident]);
                pending.transition(ChangeState::Implementing, now, &caller.user, reason, |_| {})?;
            }
            to @ (ChangeState::Completed | ChangeState::Failed | ChangeState::RolledBack) => {
                // Each implementation is counted once, when its outcome is first recorded.
                if current.state == ChangeState::Implementing {
                    let month = month_of(now);
                    pending.bumps = current
                        .services
                        .iter()
                        .map(|service| Bump {
                            key: CounterKey {
                                tenant: current.tenant.clone(),
                                service: service.clone(),
                                month: month.clone(),
                                category: current.category.clone(),
                                change_type: current.change_type,
                            },
                            failed: to != ChangeState::Completed,
                        })
                        .collect();
                }
                pending.transition(to, now, &caller.user, req.reason.clone(), |_| {})?;
            }
            to => pending.transition(to, now, &caller.user, req.reason.clone(), |_| {})?,
        }
        let change = self.save(pending, current.version).await?;
        tracing::info!(from = %current.state, state = %change.state, "change transitioned");
        Ok(change)
    }

    /// Moves an approved or scheduled change's planned window, audited; the
    /// change keeps its approval and state. The freeze (and, once scheduled,
    /// the major incident) gates apply to the new window and its conflicts
    /// are listed again.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn reschedule(
        &self,
        caller: &Caller,
        id: &ChangeId,
        req: RescheduleRequest,
    ) -> Result<Change, ChangeError> {
        check_text("reason", Some(&req.reason), true)?;
        check_text("override_reason", req.override_reason.as_ref(), false)?;
        crate::domain::new_change::validate_window(req.planned_start, req.planned_end)?;
        let (_, view, current) = self.driven(caller, id, "rescheduling a change").await?;
        current_at(&current, req.version)?;
        if !matches!(current.state, ChangeState::Approved | ChangeState::Scheduled) {
            return Err(refused(
                "not_reschedulable",
                None,
                format!("only an approved or scheduled change is rescheduled; change {id} is {}", current.state),
            ));
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        next.planned_start = req.planned_start;
        next.planned_end = req.planned_end;
        let over = req.override_reason.as_deref();
        let freeze = self.freeze_gate(&next, (next.planned_start, next.planned_end), over, "rescheduling").await?;
        let incident = match current.state {
            ChangeState::Scheduled => self.incident_gate(caller, &next, over, "rescheduled").await?,
            _ => None,
        };
        next.conflicts = self.conflicts(&view, &next).await?;
        let mut pending = Pending::new(&current);
        pending.moved_from = Some(current.planned_start);
        let reason = join_reasons([Some(req.reason.trim().to_owned()), freeze, incident]);
        pending.step(next, &caller.user, AuditAction::Rescheduled, reason);
        let change = self.save(pending, current.version).await?;
        tracing::info!("change rescheduled");
        Ok(change)
    }

    /// Draft → submitted, and on: standard changes are approved at once by
    /// their template; emergencies wait for one approval by the emergency
    /// approvers (or the commander of the major incident they fix), and are
    /// counted per requester and team; normal changes wait for their approval plan.
    async fn submit(
        &self,
        caller: &Caller,
        view: &CatalogView,
        req: &TransitionRequest,
        pending: &mut Pending,
        now: DateTime<Utc>,
    ) -> Result<(), ChangeError> {
        let current = pending.change.clone();
        let planned = (current.planned_start, current.planned_end);
        let freeze = self.freeze_gate(&current, planned, req.override_reason.as_deref(), "submitting").await?;
        let conflicts = self.conflicts(view, &current).await?;
        let risk = self.assess(view, &current).await?;
        let reason = join_reasons([req.reason.clone(), freeze]);
        match current.change_type {
            ChangeType::Standard => {
                let id = current.template.clone().unwrap_or_default();
                let template = view.catalog.template(&id).ok_or_else(|| {
                    refused(
                        "template_unknown",
                        Some("template"),
                        format!("the catalog no longer has standard template {id:?}"),
                    )
                })?;
                if let Some(outside) =
                    current.services.iter().find(|s| !template.services.is_empty() && !template.services.contains(s))
                {
                    return Err(refused(
                        "template_mismatch",
                        Some("services"),
                        format!(
                            "standard template {id} does not cover service {outside}; submit a normal change instead"
                        ),
                    ));
                }
                if template.category != current.category {
                    return Err(refused(
                        "template_mismatch",
                        Some("category"),
                        format!(
                            "standard template {id} is for category {}, not {}",
                            template.category, current.category
                        ),
                    ));
                }
                let receipt = format!(
                    "approved on submission: standard change from pre-approved template {id} ({}), catalog version {}",
                    template.title, view.version
                );
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                })?;
                pending.transition(ChangeState::Approved, now, SYSTEM_ACTOR, Some(receipt), |_| {})?;
            }
            ChangeType::Emergency => {
                let commander = match &current.incident {
                    None => None,
                    Some(id) => match self.open_incident(&current.tenant, id).await? {
                        Some(incident) => Some(incident.commander),
                        None => {
                            return Err(refused(
                                "incident_not_open",
                                Some("incident"),
                                format!(
                                    "there is no open major incident {id:?}; name an open one, or leave incident out for the emergency approvers to decide"
                                ),
                            ));
                        }
                    },
                };
                let plan = ApprovalPlan::emergency(view, commander.as_deref(), now)
                    .map_err(|e| refused("no_approval_chain", Some("type"), e.0))?;
                pending.volumes = volume_keys(view, &current, now);
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                    c.approval = Some(plan);
                })?;
            }
            ChangeType::Normal => {
                let peer = risk.level >= RiskLevel::High || current.privileged_access || current.cryptographic_keys;
                let plan = ApprovalPlan::build(view, &current.services, peer, now)
                    .map_err(|e| refused("no_approval_chain", Some("services"), e.0))?;
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                    c.approval = Some(plan);
                })?;
            }
        }
        Ok(())
    }

    /// An approver's decision on the current level of a submitted normal or
    /// emergency change. Concurrent decisions are serialized by the record's
    /// version: one wins, the others get a version conflict and may retry.
    /// A major incident's commander decides an emergency by name only while
    /// the incident is open and they command it; an approved emergency's
    /// post-implementation review falls due.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn decide(&self, caller: &Caller, id: &ChangeId, req: DecisionRequest) -> Result<Change, ChangeError> {
        check_text("comment", req.comment.as_ref(), false)?;
        let (access, view) = self.access(caller).await?;
        access.require(&Role::ALL, "deciding an approval")?;
        let current = self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))?;
        if let Some(v) = req.version {
            current_at(&current, v)?;
        }
        let (Some(plan), ChangeState::Submitted) = (current.approval.clone(), current.state) else {
            return Err(refused(
                "no_pending_approval",
                None,
                format!("change {id} is {} and has no approval waiting for a decision", current.state),
            ));
        };
        let mut plan = plan;
        if plan.names(&caller.user) {
            let commands = match &current.incident {
                Some(id) => self.open_incident(&caller.tenant, id).await?.is_some_and(|i| i.commander == caller.user),
                None => false,
            };
            if !commands {
                plan.unname(&caller.user);
            }
        }
        let now = self.clock.now();
        let outcome = plan
            .decide(caller, &access.roles, &current.requester, req.decision, req.comment.clone(), now)
            .map_err(|e| match e {
                DecisionError::Forbidden(m) => ChangeError::Forbidden(Forbidden(m)),
                DecisionError::Closed(m) => refused("no_pending_approval", None, m),
            })?;
        let mut next = match outcome {
            PlanStatus::Pending => current.revised(now),
            PlanStatus::Approved => current.transition(ChangeState::Approved, now)?,
            PlanStatus::Rejected => current.transition(ChangeState::Rejected, now)?,
        };
        next.approval = Some(plan);
        let mut reason = req.comment;
        if outcome == PlanStatus::Approved && current.change_type == ChangeType::Emergency {
            let due_at = now + view.catalog.emergency.review_within.chrono();
            next.review = Some(PostReview { due_at, done: None });
            let receipt = format!(
                "emergency approved; its post-implementation review is due by {}",
                due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            reason = join_reasons([reason, Some(receipt)]);
        }
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::Decided, reason);
        let change = self.save(pending, current.version).await?;
        tracing::info!(outcome = ?outcome, "approval decided");
        Ok(change)
    }

    /// Marks a checklist item done, with its evidence.
    pub async fn complete_item(
        &self,
        caller: &Caller,
        id: &ChangeId,
        item: &str,
        req: NoteRequest,
    ) -> Result<Change, ChangeError> {
        check_text("note", Some(&req.note), true)?;
        let (_, _, current) = self.driven(caller, id, "completing a checklist item").await?;
        current_at(&current, req.version)?;
        if !current.state.is_open() {
            return Err(refused(
                "checklist_closed",
                None,
                format!("the checklist is closed once implementation starts; the change is {}", current.state),
            ));
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        let Some(entry) = next.checklist.iter_mut().find(|i| i.id == item) else {
            let known: Vec<&str> = current.checklist.iter().map(|i| i.id.as_str()).collect();
            return Err(ChangeError::Missing(format!(
                "change {id} has no checklist item {item:?}; its items: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        if entry.done.is_some() {
            return Err(refused("already_done", None, format!("checklist item {item} is already done")));
        }
        entry.done = Some(Done { by: caller.user.clone(), at: now, note: req.note.trim().to_owned() });
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::ChecklistItemDone, Some(format!("{item}: {}", req.note.trim())));
        self.save(pending, current.version).await
    }

    /// Records an emergency change's post-implementation review: by someone
    /// other than its requester, holding the cab or admin role.
    pub async fn review(&self, caller: &Caller, id: &ChangeId, req: NoteRequest) -> Result<Change, ChangeError> {
        check_text("note", Some(&req.note), true)?;
        let (access, _) = self.access(caller).await?;
        access.require(&[Role::Cab, Role::Admin], "a post-implementation review")?;
        let current = self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))?;
        current_at(&current, req.version)?;
        if current.requester == caller.user {
            return Err(Forbidden(format!(
                "dual control: {} requested this change and cannot review it; another person must",
                caller.user
            ))
            .into());
        }
        let Some(review) = current.review.clone() else {
            return Err(refused("no_review_due", None, "only emergency changes have a post-implementation review"));
        };
        if review.done.is_some() {
            return Err(refused("already_done", None, "the post-implementation review is already recorded"));
        }
        if !matches!(
            current.state,
            ChangeState::Completed | ChangeState::Failed | ChangeState::RolledBack | ChangeState::Closed
        ) {
            return Err(refused(
                "not_implemented",
                None,
                format!("a post-implementation review follows implementation; the change is {}", current.state),
            ));
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        next.review = Some(PostReview {
            due_at: review.due_at,
            done: Some(Done { by: caller.user.clone(), at: now, note: req.note.trim().to_owned() }),
        });
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::Reviewed, Some(req.note.trim().to_owned()));
        self.save(pending, current.version).await
    }

    /// Emergency changes whose post-implementation review is not done yet, earliest due first.
    pub async fn pending_reviews(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<String>,
    ) -> Result<Page<Change>, ChangeError> {
        self.reader(caller, "reading reports").await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_PAGE}")).into());
        }
        if cursor.as_ref().is_some_and(|c| !crate::adapters::keys::review_cursor_is_valid(c)) {
            return Err(FieldError::new("cursor", "cursor is not one this API returned").into());
        }
        let far = DateTime::<Utc>::MAX_UTC.min(self.clock.now() + Duration::days(365 * 100));
        let partition = crate::adapters::keys::reviews_due_pk(&caller.tenant);
        Ok(self.store.due(&partition, far, limit, cursor).await?)
    }

    /// Roles the caller holds, for `GET /me`.
    pub async fn roles(&self, caller: &Caller) -> Result<BTreeSet<Role>, ChangeError> {
        Ok(self.access(caller).await?.0.roles)
    }

    pub async fn audit(&self, caller: &Caller, id: &ChangeId) -> Result<Vec<AuditEntry>, ChangeError> {
        self.reader(caller, "reading audit trails").await?;
        let entries = self.store.audit_trail(&caller.tenant, id).await?;
        if entries.is_empty() {
            return Err(ChangeError::NotFound(*id));
        }
        Ok(entries)
    }
}
