//! Problems: recording incidents as they are created or tagged (counted
//! once, opening or joining problems, `domain::problem`), and the problem
//! records people read and drive (`GET /problems`, `POST /problems/{id}/fix`).

use chrono::{DateTime, Datelike, Utc};

use super::changes::{ChangeError, ChangeStore, Changes, check_text, page};
use crate::domain::access::Caller;
use crate::domain::catalog::Role;
use crate::domain::problem::{self, Decision, IncidentSeen, Problem, ProblemId, ProblemStatus};
use crate::domain::{ChangeId, FieldError, ServiceName};
use crate::ports::{
    CatalogReader, Clock, Counted, IncidentCounts, IncidentWrite, Page, ProblemQuery, ProblemStore, RecurrenceState,
    StoreError,
};

/// How many times an incident is decided again when another write on its
/// service (or a duplicate of it) got there first.
const ATTEMPTS: usize = 8;

/// What recording an incident did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// It was counted before, as it is now: nothing changed.
    AlreadyCounted,
    /// It was counted; it opened this problem, joined it, or neither.
    Counted { opened: Option<ProblemId>, joined: Option<ProblemId> },
}

/// `GET /problems?service=&status=`.
#[derive(Debug, Clone, Default)]
pub struct ProblemListRequest {
    pub service: Option<String>,
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `POST /problems/{id}/fix` and `POST /problems/{id}/close`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixRequest {
    /// The version the caller read.
    pub version: u64,
    pub change_id: ChangeId,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    pub version: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The month counters are kept by, of an incident's start.
fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

impl<S: ChangeStore + ProblemStore, C: Clock> Changes<S, C> {
    /// Counts an incident once (and once more as change-related if it is
    /// tagged so later), then opens or joins a problem as the tenant's
    /// catalog says. Called when an incident record is created or tagged;
    /// safe to call again with the same incident, from any number of consumers.
    pub async fn record_incident(&self, seen: &IncidentSeen) -> Result<Recorded, ChangeError> {
        seen.validate()?;
        let view = self.catalog.catalog(&seen.tenant).await?;
        let settings = view.catalog.problem_settings(&seen.service);
        for _ in 0..ATTEMPTS {
            let state = self.store.recurrence(&seen.tenant, &seen.service, &seen.incident_id).await?;
            match self.try_record(seen, &settings, state).await {
                // Another write on the service (or this incident) got there first,
                // or DynamoDB cancelled the transaction for a concurrent one.
                Err(ChangeError::Store(
                    StoreError::VersionConflict { .. } | StoreError::Backend { retryable: true, .. },
                )) => {
                    continue;
                }
                other => return other,
            }
        }
        Err(ChangeError::Store(StoreError::backend(true, "the incident's service kept changing under it; try again")))
    }

    async fn try_record(
        &self,
        seen: &IncidentSeen,
        settings: &problem::Recurrence,
        state: RecurrenceState,
    ) -> Result<Recorded, ChangeError> {
        let before = state.counted;
        let change_related = seen.change_related || before.is_some_and(|c| c.change_related);
        if before.is_some_and(|c| c.change_related || !seen.change_related) {
            return Ok(Recorded::AlreadyCounted);
        }
        let mut incident = seen.recent();
        incident.change_related = change_related;
        let mut recent = state.recent.with(&incident);
        let mut known = Vec::new();
        for kind in problem::Recurs::of(&incident) {
            if let Some(id) = recent.problem_for(&kind)
                && let Some(p) = self.store.get_problem(&seen.tenant, &id).await?
            {
                known.push(p);
            }
        }
        let decision = problem::decide(settings, &recent, &incident, &known);
        let (problem, opened, joined) = match decision {
            Decision::Join(id) => {
                let mut p =
                    known.into_iter().find(|p| p.id == id).ok_or(StoreError::VersionConflict { expected: 0 })?;
                let changed = p.link(&incident, &seen.related_changes);
                p.version = p.version.saturating_add(1);
                (changed.then_some(p), None, Some(id))
            }
            Decision::Open { recurs, linked } => {
                let p = Problem::open(
                    &seen.service,
                    &seen.tenant,
                    recurs,
                    &linked,
                    &seen.related_changes,
                    self.clock.now(),
                );
                let id = p.id;
                (Some(p), Some(id), None)
            }
            Decision::Nothing => (None, None, None),
        };
        if let Some(p) = problem.as_ref().filter(|p| Some(p.id) == opened) {
            recent.remember(p);
        }
        let add = IncidentCounts {
            incidents: u64::from(before.is_none()),
            change_related: u64::from(change_related),
            problems: u64::from(opened.is_some()),
        };
        self.store
            .record_incident(IncidentWrite {
                tenant: &seen.tenant,
                service: &seen.service,
                incident_id: &seen.incident_id,
                counted_before: before,
                counted: Counted { change_related },
                recent: &recent,
                month: &month_of(seen.started_at),
                add,
                problem: problem.as_ref(),
            })
            .await?;
        if let Some(id) = opened {
            tracing::info!(tenant = %seen.tenant, service = %seen.service, problem = %id, "problem opened");
        }
        Ok(Recorded::Counted { opened, joined })
    }

    /// A page of the caller's tenant's problems, newest first. Any role that reads changes reads them.
    pub async fn problems(&self, caller: &Caller, req: ProblemListRequest) -> Result<Page<Problem>, ChangeError> {
        self.reader(caller, "reading problems").await?;
        let service = req.service.as_deref().map(ServiceName::parse).transpose()?;
        let status = req.status.as_deref().map(ProblemStatus::parse).transpose()?;
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        let query = ProblemQuery { tenant: caller.tenant.clone(), service, status, limit, after };
        Ok(self.store.list_problems(&query).await?)
    }

    pub async fn problem(&self, caller: &Caller, id: &ProblemId) -> Result<Problem, ChangeError> {
        self.reader(caller, "reading problems").await?;
        self.stored_problem(caller, id).await
    }

    async fn stored_problem(&self, caller: &Caller, id: &ProblemId) -> Result<Problem, ChangeError> {
        self.store
            .get_problem(&caller.tenant, id)
            .await?
            .ok_or_else(|| ChangeError::Missing(format!("problem {id} not found")))
    }

    /// Links a change as the problem's fix: the cab or admin role, or the
    /// owners of the problem's service. The change must exist in the tenant.
    pub async fn link_fix(&self, caller: &Caller, id: &ProblemId, req: &FixRequest) -> Result<Problem, ChangeError> {
        let current = self.driven_problem(caller, id, req.version, "linking a problem's fix").await?;
        if self.store.get_change(&caller.tenant, &req.change_id).await?.is_none() {
            return Err(
                FieldError::new("change_id", format!("change {} not found in this tenant", req.change_id)).into()
            );
        }
        let next = current.fixed_by(req.change_id, &caller.user, self.clock.now()).map_err(illegal)?;
        self.store.put_problem(&next).await.map_err(|e| conflict(e, &current))?;
        Ok(next)
    }

    /// Closes the problem, fixed or not, by the same people who link fixes.
    pub async fn close_problem(
        &self,
        caller: &Caller,
        id: &ProblemId,
        req: &CloseRequest,
    ) -> Result<Problem, ChangeError> {
        check_text("reason", req.reason.as_ref(), false)?;
        let current = self.driven_problem(caller, id, req.version, "closing a problem").await?;
        let next = current.closed(&caller.user, self.clock.now(), req.reason.as_deref()).map_err(illegal)?;
        self.store.put_problem(&next).await.map_err(|e| conflict(e, &current))?;
        Ok(next)
    }

    /// The problem at `version`, if the caller may drive it.
    async fn driven_problem(
        &self,
        caller: &Caller,
        id: &ProblemId,
        version: u64,
        what: &str,
    ) -> Result<Problem, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&Role::PEOPLE, what)?;
        let problem = self.stored_problem(caller, id).await?;
        let owners = view.catalog.service(&problem.service).map(|s| s.owner_group.as_str());
        if !access.has_any(&[Role::Cab, Role::Admin]) && !owners.is_some_and(|g| caller.in_group(g)) {
            access.require(
                &[Role::Cab, Role::Admin],
                &format!("{what} (or membership of the owners of {})", problem.service),
            )?;
        }
        if problem.version != version {
            return Err(version_conflict(&problem, version));
        }
        Ok(problem)
    }
}

fn illegal(e: problem::IllegalProblemTransition) -> ChangeError {
    ChangeError::Refused { code: "problem_closed", field: None, message: e.to_string() }
}

fn version_conflict(problem: &Problem, expected: u64) -> ChangeError {
    ChangeError::Refused {
        code: "version_conflict",
        field: Some("version"),
        message: format!(
            "problem {}: version {expected} is no longer current (it is at version {}); read it again and retry",
            problem.id, problem.version
        ),
    }
}

fn conflict(e: StoreError, read: &Problem) -> ChangeError {
    match e {
        StoreError::VersionConflict { .. } => version_conflict(read, read.version),
        e => e.into(),
    }
}
