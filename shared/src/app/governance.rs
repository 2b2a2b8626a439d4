//! Freeze windows and open major incidents: small per-tenant documents that
//! every submit and schedule reads (one GetItem each, never cached, so a
//! freeze declared a second ago already holds). Every write of a tenant
//! document (these and the catalog) appends an entry to the tenant's
//! governance trail in the same conditional write: who did what, and why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

use crate::app::ChangeError;
use crate::domain::access::{Access, Caller, Forbidden};
use crate::domain::audit::{self, AuditAction, AuditEntry, FieldChange};
use crate::domain::catalog::{Role, Span};
use crate::domain::freeze::FreezeWindow;
use crate::domain::incident::{Declaration, Incident, IncidentEvent, IncidentId, MajorRule, Signal, Source};
use crate::domain::soon::FreezeNotices;
use crate::domain::{FieldError, ServiceName, TenantId};
use crate::ports::{CatalogReader, Clock, DocKind, IncidentStore, Page, StoreError, StoredDoc, TenantDocs};

pub const MAX_FREEZES: usize = 200;
pub const MAX_OPEN_INCIDENTS: usize = 200;
/// How many of the latest declarations and resolutions (of incidents) or
/// declarations and lifts (of freezes) a document shows; every one stays in
/// the document's version history and in the tenant's governance trail.
pub const MAX_INCIDENT_LOG: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freezes {
    pub windows: Vec<FreezeWindow>,
    /// Who declared each window in force, and when, by window id.
    #[serde(default)]
    pub declared: BTreeMap<String, Declared>,
    /// The latest declarations and lifts, oldest first (at most [`MAX_INCIDENT_LOG`]).
    #[serde(default)]
    pub log: Vec<FreezeLogEntry>,
    /// Each window's next "freeze starting" notice and the occurrences told:
    /// armed by every write of the document, taken by the escalation tick
    /// ([`crate::app::freeze_starting`]); the earliest is the document's due entry.
    #[serde(default, skip_serializing_if = "is_default")]
    pub notices: FreezeNotices,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// A tenant document's body as [`update_doc`] writes it.
pub(crate) trait DocBody: Serialize + DeserializeOwned + Default + Clone {
    /// When the tick is due to take the document (its due entry); none: never.
    fn due_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}

impl DocBody for Freezes {
    fn due_at(&self) -> Option<DateTime<Utc>> {
        self.notices.due_at()
    }
}

impl DocBody for Incidents {}

impl DocBody for crate::domain::delegation::Delegations {}

impl DocBody for crate::app::suppressions::Suppressions {}

/// Who declared a freeze window, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declared {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// What was done to a freeze window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeAction {
    Declared,
    Lifted,
}

/// One declaration or lift: by whom, when, why (a lift's reason; a
/// declaration's is the window's own), and the window as it stood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeLogEntry {
    pub action: FreezeAction,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub window: FreezeWindow,
}

/// `DELETE /freezes/{id}?reason=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiftFreeze {
    pub reason: String,
}

/// A major incident: while it is open, high-risk changes to its services
/// are not scheduled unless its commander authorizes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MajorIncident {
    /// The id it was declared with in the hub, or the id of the record of a
    /// major incident from a source (PagerDuty, incident.io, Alertmanager).
    pub id: String,
    pub title: String,
    pub services: Vec<ServiceName>,
    /// The user who commands the response (empty for one from a source).
    pub commander: String,
    #[serde(default)]
    pub declared_by: String,
    #[serde(default)]
    pub declared_at: Option<DateTime<Utc>>,
}

impl MajorIncident {
    /// Whether the incident is on one of `services`.
    pub fn touches(&self, services: &[ServiceName]) -> bool {
        self.services.iter().any(|s| services.contains(s))
    }

    /// The commander who may confirm an emergency change to `services` that
    /// fixes this incident: only on the incident's own services, and only
    /// when someone else declared the incident (nobody makes themselves
    /// the approver of an emergency by declaring an incident). A major
    /// incident from a source (PagerDuty...) has no commander in the hub.
    pub fn confirming_commander(&self, services: &[ServiceName]) -> Option<&str> {
        (self.touches(services) && !self.commander.is_empty() && self.declared_by != self.commander)
            .then_some(self.commander.as_str())
    }
}

/// `POST /incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareIncident {
    pub id: String,
    pub title: String,
    pub services: Vec<ServiceName>,
    pub commander: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incidents {
    pub open: Vec<MajorIncident>,
    /// The latest declarations and resolutions, oldest first (at most
    /// [`MAX_INCIDENT_LOG`]). Each write of the document appends one, so the
    /// newest entry of every stored version says who did what in it.
    #[serde(default)]
    pub log: Vec<IncidentLogEntry>,
}

/// What was done to a major incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    Declared,
    Resolved,
}

/// One declaration or resolution: by whom, when, and the incident as it stood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLogEntry {
    pub action: IncidentAction,
    pub by: String,
    pub at: DateTime<Utc>,
    pub incident: MajorIncident,
}

impl Incidents {
    fn record(&mut self, action: IncidentAction, by: &Caller, at: DateTime<Utc>, incident: MajorIncident) {
        append_capped(&mut self.log, IncidentLogEntry { action, by: by.user.clone(), at, incident });
    }
}

/// Appends to a document's log, keeping the latest [`MAX_INCIDENT_LOG`].
pub(crate) fn append_capped<T>(log: &mut Vec<T>, entry: T) {
    log.push(entry);
    let excess = log.len().saturating_sub(MAX_INCIDENT_LOG);
    log.drain(..excess);
}

/// What one write of a tenant document did, for the governance trail.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernanceWrite {
    pub action: AuditAction,
    /// What changed: `{document}.{what}`, before and after.
    pub changes: Vec<FieldChange>,
    pub reason: Option<String>,
}

impl GovernanceWrite {
    /// One item of a document (`freezes.{id}`, `incidents.{id}`) before and after.
    pub(crate) fn item(
        action: AuditAction,
        field: String,
        before: Option<&impl Serialize>,
        after: Option<&impl Serialize>,
    ) -> Self {
        fn json(v: Option<&impl Serialize>) -> serde_json::Value {
            v.and_then(|v| serde_json::to_value(v).ok()).unwrap_or_default()
        }
        GovernanceWrite {
            action,
            changes: vec![FieldChange { field, before: json(before), after: json(after) }],
            reason: None,
        }
    }
}

/// Stores `doc` with the entry that records `trail` on the tenant's
/// governance trail, chained onto the head read just before: the write is
/// conditional on both, so a concurrent governance write makes it a
/// `VersionConflict` to retry.
pub async fn put_audited<D: TenantDocs>(
    docs: &D,
    caller: &Caller,
    kind: DocKind,
    doc: &StoredDoc,
    trail: GovernanceWrite,
) -> Result<AuditEntry, StoreError> {
    let head = docs.trail_head(&caller.tenant).await?;
    let entry = audit::governance_entry(
        &caller.tenant,
        head.as_ref(),
        doc.updated_at,
        &caller.user,
        trail.action,
        trail.changes,
        trail.reason,
    );
    docs.put_doc(&caller.tenant, kind, doc, &entry).await?;
    Ok(entry)
}

/// Reads a tenant document: its body (default when absent) and version (0 when absent).
pub async fn read_doc<D: TenantDocs, T: DeserializeOwned + Default>(
    docs: &D,
    tenant: &TenantId,
    kind: DocKind,
) -> Result<(T, u64), StoreError> {
    match docs.get_doc(tenant, kind).await? {
        None => Ok((T::default(), 0)),
        Some(doc) => {
            let body = serde_json::from_value(doc.body).map_err(|e| StoreError::Corrupt {
                key: format!("{} of tenant {tenant}", kind.as_str()),
                message: e.to_string(),
            })?;
            Ok((body, doc.version))
        }
    }
}

/// Read, change, write back conditionally with its governance trail entry;
/// retried a few times if another writer got in between. An edit that finds
/// nothing to change (`None`) writes nothing.
pub(crate) async fn update_doc<D, T, F>(
    docs: &D,
    caller: &Caller,
    kind: DocKind,
    clock: &impl Clock,
    mut edit: F,
) -> Result<T, ChangeError>
where
    D: TenantDocs,
    T: DocBody,
    F: FnMut(&mut T, DateTime<Utc>) -> Result<Option<GovernanceWrite>, ChangeError>,
{
    for _ in 0..3 {
        let (mut body, version): (T, u64) = read_doc(docs, &caller.tenant, kind).await?;
        let now = clock.now();
        let Some(trail) = edit(&mut body, now)? else { return Ok(body) };
        let doc = StoredDoc {
            version: version + 1,
            updated_at: now,
            updated_by: caller.user.clone(),
            body: serde_json::to_value(&body).map_err(|e| StoreError::backend(false, e))?,
            due_at: body.due_at(),
        };
        match put_audited(docs, caller, kind, &doc, trail).await {
            Ok(_) => return Ok(body),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::backend(true, "the document kept changing under concurrent writers").into())
}

/// Replaces the element `same` picks with `item`, or adds it if fewer than
/// `max` are there (else an error on `id` saying `full`).
fn upsert<T>(
    items: &mut Vec<T>,
    item: T,
    same: impl Fn(&T) -> bool,
    max: usize,
    full: String,
) -> Result<(), ChangeError> {
    items.retain(|x| !same(x));
    if items.len() >= max {
        return Err(FieldError::new("id", full).into());
    }
    items.push(item);
    Ok(())
}

/// Freeze windows and major incidents of the caller's tenant.
pub struct Governance<'a, D, K, C> {
    pub docs: &'a D,
    pub catalog: &'a K,
    pub clock: &'a C,
}

impl<D: TenantDocs + IncidentStore, K: CatalogReader, C: Clock> Governance<'_, D, K, C> {
    /// The caller's access, if they hold one of `roles`.
    pub(crate) async fn require<'a>(
        &self,
        caller: &'a Caller,
        roles: &[Role],
        what: &str,
    ) -> Result<Access<'a>, ChangeError> {
        let view = self.catalog.catalog(&caller.tenant).await?;
        let access = Access::new(caller, &view.catalog.roles);
        access.require(roles, what)?;
        Ok(access)
    }

    pub async fn freezes(&self, caller: &Caller) -> Result<Freezes, ChangeError> {
        self.require(caller, &Role::PEOPLE, "reading freeze windows").await?;
        Ok(read_doc(self.docs, &caller.tenant, DocKind::Freezes).await?.0)
    }

    /// How long before a freeze starts people are told: the catalog's
    /// `changes.starting_soon`, the lead of every "starting" notice.
    async fn freeze_lead(&self, caller: &Caller) -> Result<Span, ChangeError> {
        Ok(self.catalog.catalog(&caller.tenant).await?.catalog.changes.starting_soon.clone())
    }

    /// Adds a window, or replaces the one with the same id; recorded with
    /// who declared it (its `reason` says why).
    pub async fn put_freeze(&self, caller: &Caller, window: FreezeWindow) -> Result<FreezeWindow, ChangeError> {
        self.require(caller, &[Role::Admin, Role::Cab], "declaring a freeze window").await?;
        window.validate()?;
        let lead = self.freeze_lead(caller).await?;
        update_doc(self.docs, caller, DocKind::Freezes, self.clock, |f: &mut Freezes, at| {
            let before = f.windows.iter().find(|w| w.id == window.id).cloned();
            let full = format!("at most {MAX_FREEZES} freeze windows per tenant");
            upsert(&mut f.windows, window.clone(), |w| w.id == window.id, MAX_FREEZES, full)?;
            let by = caller.user.clone();
            f.declared.insert(window.id.clone(), Declared { by: by.clone(), at });
            let entry = FreezeLogEntry { action: FreezeAction::Declared, by, at, reason: None, window: window.clone() };
            append_capped(&mut f.log, entry);
            f.notices.arm(&f.windows, &lead, at);
            let field = format!("freezes.{}", window.id);
            Ok(Some(GovernanceWrite::item(AuditAction::FreezeDeclared, field, before.as_ref(), Some(&window))))
        })
        .await?;
        tracing::info!(tenant = %caller.tenant, freeze = %window.id, user = %caller.user, "freeze window declared");
        Ok(window)
    }

    /// Lifts a window, saying why; recorded with who lifted it.
    pub async fn delete_freeze(&self, caller: &Caller, id: &str, lift: LiftFreeze) -> Result<(), ChangeError> {
        self.require(caller, &[Role::Admin, Role::Cab], "lifting a freeze window").await?;
        let reason = lift.reason.trim().to_owned();
        crate::app::changes::check_text("reason", Some(&reason), true)?;
        let lead = self.freeze_lead(caller).await?;
        update_doc(self.docs, caller, DocKind::Freezes, self.clock, |f: &mut Freezes, at| {
            let Some(window) = f.windows.iter().find(|w| w.id == id).cloned() else {
                return Err(ChangeError::Missing(format!("no freeze window {id:?}")));
            };
            f.windows.retain(|w| w.id != id);
            f.declared.remove(id);
            f.notices.arm(&f.windows, &lead, at);
            let (by, why) = (caller.user.clone(), Some(reason.clone()));
            let entry =
                FreezeLogEntry { action: FreezeAction::Lifted, by, at, reason: why.clone(), window: window.clone() };
            append_capped(&mut f.log, entry);
            let trail =
                GovernanceWrite::item(AuditAction::FreezeLifted, format!("freezes.{id}"), Some(&window), None::<&()>);
            Ok(Some(GovernanceWrite { reason: why, ..trail }))
        })
        .await?;
        tracing::info!(tenant = %caller.tenant, freeze = %id, user = %caller.user, "freeze window lifted");
        Ok(())
    }

    /// A page of the tenant's governance trail, oldest first: the auditors',
    /// admins' and cab's record of who imported which catalog, declared or
    /// lifted which freeze and declared or resolved which major incident.
    pub async fn trail(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<String>,
    ) -> Result<Page<AuditEntry>, ChangeError> {
        self.require(caller, &[Role::Auditor, Role::Admin, Role::Cab], "reading the governance trail").await?;
        let (limit, after) = crate::app::changes::page(limit, cursor.as_deref())?;
        Ok(self.docs.trail(&caller.tenant, limit, after).await?)
    }

    pub async fn incidents(&self, caller: &Caller) -> Result<Incidents, ChangeError> {
        self.require(caller, &Role::PEOPLE, "reading major incidents").await?;
        Ok(read_doc(self.docs, &caller.tenant, DocKind::Incidents).await?.0)
    }

    /// Opens a major incident; an id already open is refused, so nobody takes
    /// over another's incident (its commander) by declaring it again.
    pub async fn declare_incident(&self, caller: &Caller, req: DeclareIncident) -> Result<MajorIncident, ChangeError> {
        self.require(caller, &[Role::Admin, Role::Cab, Role::Approver], "declaring a major incident").await?;
        let id = req.id.trim().to_owned();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(FieldError::new("id", "id must be 1 to 128 characters").into());
        }
        if req.title.trim().is_empty() || req.title.chars().count() > 200 {
            return Err(FieldError::new("title", "title must be 1 to 200 characters").into());
        }
        if req.services.is_empty() || req.services.len() > 50 {
            return Err(FieldError::new("services", "name 1 to 50 affected services").into());
        }
        if req.commander.trim().is_empty() || req.commander.len() > 256 {
            return Err(FieldError::new("commander", "name the incident commander (1 to 256 characters)").into());
        }
        let now = self.clock.now();
        let incident = MajorIncident {
            id,
            title: req.title.trim().to_owned(),
            services: req.services,
            commander: req.commander.trim().to_owned(),
            declared_by: caller.user.clone(),
            declared_at: Some(now),
        };
        update_doc(self.docs, caller, DocKind::Incidents, self.clock, |i: &mut Incidents, _| {
            if let Some(open) = i.open.iter().find(|o| o.id == incident.id) {
                return Err(ChangeError::Refused {
                    code: "incident_exists",
                    field: Some("id"),
                    message: format!(
                        "major incident {:?} is already open (commander {}, declared by {}); resolve it first",
                        open.id, open.commander, open.declared_by
                    ),
                });
            }
            let full = "too many open major incidents".to_owned();
            upsert(&mut i.open, incident.clone(), |o| o.id == incident.id, MAX_OPEN_INCIDENTS, full)?;
            i.record(IncidentAction::Declared, caller, now, incident.clone());
            let field = format!("incidents.{}", incident.id);
            Ok(Some(GovernanceWrite::item(AuditAction::IncidentDeclared, field, None::<&()>, Some(&incident))))
        })
        .await?;
        self.declare_record(caller, &incident, now).await?;
        tracing::info!(tenant = %caller.tenant, incident = %incident.id, user = %caller.user, "major incident declared");
        Ok(incident)
    }

    /// Closes an open major incident: its commander, or someone with the cab or admin role.
    pub async fn resolve_incident(&self, caller: &Caller, id: &str) -> Result<(), ChangeError> {
        let access = self.require(caller, &Role::PEOPLE, "resolving a major incident").await?;
        let at = self.clock.now();
        update_doc(self.docs, caller, DocKind::Incidents, self.clock, |i: &mut Incidents, _| {
            let Some(open) = i.open.iter().find(|o| o.id == id).cloned() else {
                return Err(ChangeError::Missing(format!("no open major incident {id:?}")));
            };
            if open.commander != caller.user && !access.has_any(&[Role::Cab, Role::Admin]) {
                return Err(Forbidden(format!(
                    "resolving major incident {id:?} needs its commander ({}) or the cab or admin role; {}",
                    open.commander,
                    access.held()
                ))
                .into());
            }
            i.open.retain(|o| o.id != id);
            let trail = GovernanceWrite::item(
                AuditAction::IncidentResolved,
                format!("incidents.{id}"),
                Some(&open),
                None::<&()>,
            );
            i.record(IncidentAction::Resolved, caller, at, open);
            Ok(Some(trail))
        })
        .await?;
        self.resolve_record(caller, id, at).await?;
        tracing::info!(tenant = %caller.tenant, incident = %id, user = %caller.user, "major incident resolved");
        Ok(())
    }

    /// The record of a declared incident (source `hub`): created, or opened
    /// again under its new declaration when it was declared and resolved before.
    async fn declare_record(&self, caller: &Caller, open: &MajorIncident, at: DateTime<Utc>) -> Result<(), StoreError> {
        let declaration = Declaration {
            commander: open.commander.clone(),
            declared_by: open.declared_by.clone(),
            services: open.services.clone(),
        };
        let fresh = Incident::declared(&caller.tenant, &open.id, &open.title, declaration.clone(), at);
        update_record(self.docs, &caller.tenant, &open.id, |before| match before {
            None => Some(Incident { version: 1, ..fresh.clone() }),
            Some(b) => {
                let mut after = b.clone();
                let reopen = IncidentEvent { title: Some(open.title.clone()), ..declared_event(Signal::Reopened, at) };
                after.apply(&reopen, &MajorRule::default());
                after.declared = Some(declaration.clone());
                after.major = true;
                Some(after)
            }
        })
        .await
    }

    /// Resolves the record of a declared incident, if it has one (an open
    /// major incident from a vendor is resolved at its source).
    async fn resolve_record(&self, caller: &Caller, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        update_record(self.docs, &caller.tenant, id, |before| {
            let mut after = before?.clone();
            after.apply(&declared_event(Signal::Resolved, at), &MajorRule::default());
            Some(after)
        })
        .await
    }
}

/// An event of a declared incident: what a person did in the hub, at `at`.
fn declared_event(signal: Signal, at: DateTime<Utc>) -> IncidentEvent {
    IncidentEvent {
        event_id: format!("hub-{signal:?}-{}", at.timestamp_micros()),
        at,
        signal: Some(signal),
        ..Default::default()
    }
}

/// Read, change, write back the record of declared incident `id`
/// conditionally, a few times if another writer got in between; `edit`
/// returning `None` writes nothing.
async fn update_record<D: IncidentStore>(
    docs: &D,
    tenant: &TenantId,
    id: &str,
    edit: impl Fn(Option<&Incident>) -> Option<Incident>,
) -> Result<(), StoreError> {
    let record = IncidentId::of(tenant, Source::Hub, id);
    for _ in 0..3 {
        let before = docs.get_incident(tenant, &record).await?;
        let Some(mut after) = edit(before.as_ref()) else { return Ok(()) };
        after.version = before.as_ref().map_or(0, |b| b.version) + 1;
        match docs.put_incident(before.as_ref(), &after).await {
            Err(StoreError::VersionConflict { .. }) => continue,
            done => return done,
        }
    }
    Err(StoreError::backend(true, "the incident record kept changing under concurrent writers"))
}

/// Brings the tenant's open major incidents up to date with a record from a
/// source (PagerDuty, incident.io, Alertmanager): listed while it is an open
/// major incident, under its record id, with no commander; taken off when it
/// is resolved or no longer major. Writes nothing when the list already says so.
pub async fn hold<D: TenantDocs>(docs: &D, clock: &impl Clock, incident: &Incident) -> Result<(), StoreError> {
    let source = incident.source.as_str();
    let caller = Caller {
        tenant: incident.tenant.clone(),
        user: format!("{}{source}", crate::domain::event::SOURCE_PREFIX),
        groups: vec![],
        granted: Default::default(),
    };
    let id = incident.id.to_string();
    let entry = MajorIncident {
        id: id.clone(),
        title: incident.title.clone(),
        services: incident.service.iter().cloned().collect(),
        commander: String::new(),
        declared_by: caller.user.clone(),
        declared_at: Some(incident.started_at),
    };
    let open = incident.is_open_major();
    let result = update_doc(docs, &caller, DocKind::Incidents, clock, |i: &mut Incidents, at| {
        let listed = i.open.iter().find(|o| o.id == id).cloned();
        let field = format!("incidents.{id}");
        match (listed, open) {
            (None, true) => {
                let full = "too many open major incidents".to_owned();
                upsert(&mut i.open, entry.clone(), |o| o.id == id, MAX_OPEN_INCIDENTS, full)?;
                i.record(IncidentAction::Declared, &caller, at, entry.clone());
                Ok(Some(GovernanceWrite::item(AuditAction::IncidentDeclared, field, None::<&()>, Some(&entry))))
            }
            (Some(listed), false) => {
                i.open.retain(|o| o.id != id);
                i.record(IncidentAction::Resolved, &caller, at, listed.clone());
                Ok(Some(GovernanceWrite::item(AuditAction::IncidentResolved, field, Some(&listed), None::<&()>)))
            }
            _ => Ok(None),
        }
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(ChangeError::Store(e)) => Err(e),
        Err(other) => Err(StoreError::backend(false, other.to_string())),
    }
}
