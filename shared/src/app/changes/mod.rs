//! Change-record use cases: create, read, list, the lifecycle with its
//! rules (approval policy, dual control, checklists, freeze windows,
//! conflicts, major incidents), decisions, reviews, audit. Generic over the
//! ports they need; each costs a bounded number of store calls, whatever
//! the history size.
//!
//! One file per use case; this module holds what they share: the
//! [`Changes`] service, its store bound, [`ChangeError`] and the
//! bookkeeping of a mutation on its way to the store.

use chrono::{DateTime, Datelike, Utc};
use std::sync::Arc;

use crate::app::catalog::CachedCatalog;
use crate::domain::access::{Access, Forbidden};
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::{CatalogView, Role};
use crate::domain::{AuditEntry, Change, ChangeId, ChangeState, FieldError, IllegalTransition};
use crate::ports::{
    Bump, CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, Counters, Cursor, DueIndex,
    ImplementationReader, InProductionStore, IncidentStore, InvalidCursor, MAX_PAGE, SecurityLog, StoreError,
    TenantDocs, VolumeKey, WaitBump,
};

mod checklist;
mod clear_suspect;
mod create;
mod decide;
mod edit;
mod gates;
mod query;
mod reports;
mod reschedule;
mod review;
mod rework;
mod risk;
pub mod sla;
mod submit;
mod transition;
mod unrelate;

pub(crate) use create::unknown_service;
pub use unrelate::UnrelateRequest;
pub(crate) use unrelate::unlist;

pub use decide::{Decided, DecisionReceipt, DecisionRequest};
pub use edit::EditRequest;
pub use query::{DEFAULT_LOOKAHEAD, DEFAULT_LOOKBACK, DEFAULT_PAGE, ListRequest, MAX_APPROVER_GROUPS, ME};
pub use reschedule::RescheduleRequest;
pub use review::ReviewRequest;
pub use transition::TransitionRequest;

pub use crate::domain::access::Caller;

/// The actor of what the hub does by itself (approving standard changes on submission).
pub const SYSTEM_ACTOR: &str = "changehub";
/// Most services (the change's own and those they depend on) a conflict check reads.
pub const MAX_CONFLICT_SERVICES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A document checked whole (the catalog): every field at fault.
    #[error(transparent)]
    InvalidDocument(#[from] crate::domain::FieldErrors),
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
        match e {
            StoreError::InvalidCursor(e) => e.into(),
            e => ChangeError::Store(e),
        }
    }
}

/// A page cursor the caller handed back that no page of this query issued.
impl From<InvalidCursor> for ChangeError {
    fn from(_: InvalidCursor) -> Self {
        FieldError::new("cursor", "cursor is not one this API returned").into()
    }
}

fn refused(code: &'static str, field: Option<&'static str>, message: impl Into<String>) -> ChangeError {
    ChangeError::Refused { code, field, message: message.into() }
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

pub(crate) fn check_text(field: &str, text: Option<&String>, required: bool) -> Result<(), FieldError> {
    match text {
        Some(t) if t.chars().count() > MAX_REASON_CHARS => {
            Err(FieldError::new(field, format!("{field} must be at most {MAX_REASON_CHARS} characters")))
        }
        Some(t) if required && t.trim().is_empty() => Err(FieldError::new(field, format!("{field} must not be empty"))),
        None if required => Err(FieldError::new(field, format!("{field} is required"))),
        _ => Ok(()),
    }
}

/// A page request's size ([`DEFAULT_PAGE`] unless given, at most
/// [`MAX_PAGE`]) and the cursor it resumes at, checked in that order.
pub(crate) fn page(limit: Option<usize>, cursor: Option<&str>) -> Result<(usize, Option<Cursor>), ChangeError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_PAGE}")).into());
    }
    Ok((limit, cursor.map(Cursor::parse).transpose()?))
}

/// What the change use cases need of a store.
pub trait ChangeStore:
    ChangeReader
    + ChangeWriter
    + ImplementationReader
    + InProductionStore
    + TenantDocs
    + IncidentStore
    + Counters
    + DueIndex
    + SecurityLog
    + Clone
    + 'static
{
}
impl<
    T: ChangeReader
        + ChangeWriter
        + ImplementationReader
        + InProductionStore
        + TenantDocs
        + IncidentStore
        + Counters
        + DueIndex
        + SecurityLog
        + Clone
        + 'static,
> ChangeStore for T
{
}

pub struct Changes<S, C> {
    pub store: S,
    pub catalog: CachedCatalog<S>,
    pub clock: C,
    /// How long the activity log keeps the gate's answers (the activity's
    /// own retention, `CHANGEHUB_ACTIVITY_RETENTION_DAYS`).
    pub gate_retention: crate::app::activity::ActivityRetention,
}

/// A mutation on its way to the store: the record it started from, the
/// audit entries so far and the counters to bump.
struct Pending {
    before: Change,
    change: Change,
    entries: Vec<AuditEntry>,
    bumps: Vec<Bump>,
    volumes: Vec<VolumeKey>,
    waits: Vec<WaitBump>,
}

impl Pending {
    fn new(current: &Change) -> Self {
        Self {
            before: current.clone(),
            change: current.clone(),
            entries: vec![],
            bumps: vec![],
            volumes: vec![],
            waits: vec![],
        }
    }

    /// The write of this mutation, as the store takes it.
    fn update(&self) -> ChangeUpdate<'_> {
        ChangeUpdate {
            before: &self.before,
            change: &self.change,
            entries: &self.entries,
            bumps: &self.bumps,
            volumes: &self.volumes,
            waits: &self.waits,
        }
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

/// The outcome counters of `change`'s services that its implementation
/// ending at `at` as `to` adds to. Each implementation is counted once, when
/// its outcome is first recorded (the move out of implementing).
pub(crate) fn outcome_bumps(change: &Change, to: ChangeState, at: DateTime<Utc>) -> Vec<Bump> {
    // A change a related incident already counted as failed is not counted twice.
    let failed = to != ChangeState::Completed && !change.failure_counted_by_incident();
    counter_keys(change, &month_of(at)).map(|key| Bump::outcome(key, failed)).collect()
}

/// The outcome counters of `change`'s services in `month`.
pub(crate) fn counter_keys<'a>(
    change: &'a Change,
    month: &'a str,
) -> impl Iterator<Item = crate::ports::CounterKey> + 'a {
    change.services.iter().map(move |service| crate::ports::CounterKey {
        tenant: change.tenant.clone(),
        service: service.clone(),
        month: month.to_owned(),
        category: change.category.clone(),
        change_type: change.change_type,
    })
}

/// `now`'s month as `YYYY-MM`, the month counters are kept by.
pub(crate) fn month_of(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    pub fn new(store: S, clock: C) -> Self {
        Self::with_catalog_ttl(store, clock, crate::app::catalog::DEFAULT_CACHE_TTL)
    }

    pub fn with_catalog_ttl(store: S, clock: C, ttl: std::time::Duration) -> Self {
        let gate_retention = crate::app::activity::ActivityRetention::default();
        Self { catalog: CachedCatalog::new(store.clone(), ttl), store, clock, gate_retention }
    }

    /// The same, keeping the gate's answers in the activity log for `retention`.
    pub fn with_gate_retention(self, retention: crate::app::activity::ActivityRetention) -> Self {
        Self { gate_retention: retention, ..self }
    }

    /// Freeze windows and major incidents, on the same store and catalog.
    pub fn governance(&self) -> crate::app::governance::Governance<'_, S, CachedCatalog<S>, C> {
        crate::app::governance::Governance { docs: &self.store, catalog: &self.catalog, clock: &self.clock }
    }

    /// The caller's roles under their tenant's catalog, and the catalog.
    pub(crate) async fn access<'a>(&self, caller: &'a Caller) -> Result<(Access<'a>, Arc<CatalogView>), ChangeError> {
        let view = self.catalog.catalog(&caller.tenant).await?;
        Ok((Access::new(caller, &view.catalog.roles), view))
    }

    /// Ok if the caller holds any role in their tenant (everyone may read).
    pub(crate) async fn reader(&self, caller: &Caller, what: &str) -> Result<(), ChangeError> {
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
        Self::may_drive(&access, &change, what)?;
        Ok((access, view, change))
    }

    /// Ok if the caller may drive `change`: its requester holding the
    /// requester role, or anyone with the cab or admin role.
    fn may_drive(access: &Access<'_>, change: &Change, what: &str) -> Result<(), Forbidden> {
        let own = access.has(Role::Requester) && change.requester == access.caller.user;
        if own || access.has_any(&[Role::Cab, Role::Admin]) {
            return Ok(());
        }
        Err(Forbidden(format!(
            "{what} needs the requester role and to be the change's requester ({}), or the cab or admin role; {}",
            change.requester,
            access.held()
        )))
    }

    /// The change, if the caller may drive it, or, when `held` says the move
    /// is one a major incident holds (scheduling or starting a high-risk
    /// change), if the caller commands every open major incident holding it:
    /// the commander then needs no role (the incident gate asks for their
    /// `override_reason`, and never lets them through for their own change).
    async fn movable<'a>(
        &self,
        caller: &'a Caller,
        id: &ChangeId,
        what: &str,
        held: impl FnOnce(&Change) -> bool,
    ) -> Result<(Access<'a>, Arc<CatalogView>, Change), ChangeError> {
        let (access, view) = self.access(caller).await?;
        let change = self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))?;
        let refusal = match access.require(&Role::ALL, what).and_then(|()| Self::may_drive(&access, &change, what)) {
            Ok(()) => return Ok((access, view, change)),
            Err(refusal) => refusal,
        };
        if held(&change) && self.commands_hold(caller, &change).await? {
            return Ok((access, view, change));
        }
        Err(refusal.into())
    }

    async fn save(&self, pending: Pending, expected: u64) -> Result<Change, ChangeError> {
        let update = pending.update();
        debug_assert_eq!(update.expected(), expected);
        self.store.update_change(update).await.map_err(|e| Self::write_failure(e, pending.change.id))?;
        Ok(pending.change)
    }

    /// What a failed write of change `id` means to the caller.
    fn write_failure(e: StoreError, id: ChangeId) -> ChangeError {
        match e {
            StoreError::VersionConflict { expected } => ChangeError::VersionConflict { id, expected, actual: None },
            StoreError::NotFound => ChangeError::NotFound(id),
            e => e.into(),
        }
    }
}
