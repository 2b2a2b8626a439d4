//! Deployments become changes: the consumer of the canonical deployment
//! events (`Deployment Created`, `Deployment Status Changed`, and `Workflow
//! Run Changed` for the workflows the catalog names as deploying).
//!
//! A deployment attaches to the change it names (a change id in its ref,
//! description or payload, as ingest extracts them), or else makes a change
//! of its own whose id is derived from (tenant, source, repository,
//! deployment id), so that every status and every copy of one deployment
//! lands on one change. Every decision uses the source's times, never the
//! time the event arrived: statuses merge ([`Deployed::observe`]) so that any
//! order and any repetition give the same record. Every write is an audited
//! update of the change (the outbox publishes it); nothing is sent from here.

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;

use crate::app::changes::{SYSTEM_ACTOR, outcome_bumps};
use crate::domain::audit::{self, AuditAction};
use crate::domain::bake::bake_time;
use crate::domain::catalog::CatalogView;
use crate::domain::change::PostReview;
use crate::domain::correlation::Outcome;
use crate::domain::deployment::production::{InProduction, Ran};
use crate::domain::deployment::{self, Deployed, DeploymentOrigin, Detail, MAX_DEPLOYMENTS, Step};
use crate::domain::{AuditEntry, Change, ChangeId, ChangeState, FieldError, NewChange, ServiceName, TenantId};
use crate::ingest::canonical::{Deployment, Detail as Event, WorkflowRun, change_ids};
use crate::ports::{CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, InProductionStore, StoreError};

/// The hub event detail-types this consumer reads.
pub const DETAIL_TYPES: [&str; 3] = ["Deployment Created", "Deployment Status Changed", "Workflow Run Changed"];
/// The EventBridge pattern of the events this consumer reads: the
/// template's rule on the hub bus and `changehub serve`'s local rule.
pub fn event_pattern() -> serde_json::Value {
    use crate::ingest::canonical::Origin;
    let sources = [Origin::Github.source(), Origin::Gitlab.source(), Origin::Argocd.source()];
    serde_json::json!({"source": sources, "detail-type": DETAIL_TYPES})
}

/// How long a created change is planned to run while its deployment has not ended.
pub const PLANNED_RUN: Duration = Duration::hours(1);
/// Reads and writes of one event before it gives up to concurrent writers (and is retried).
const MAX_ATTEMPTS: usize = 16;
const MAX_TITLE_CHARS: usize = crate::domain::change::MAX_TITLE_CHARS;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The event is not one this consumer can read: retrying cannot help.
    #[error("{detail_type} event is not readable: {message}")]
    Unreadable { detail_type: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept moving the change: the event is to be retried.
    #[error("change {0} kept moving under this deployment's writes; retry")]
    Contended(ChangeId),
}

impl DeploymentError {
    /// Whether trying the event again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            DeploymentError::Unreadable { .. } => false,
            DeploymentError::Store(e) => e.is_retryable(),
            DeploymentError::Contended(_) => true,
        }
    }
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A change was made from the deployment (and moved as far as it says).
    Created { change: ChangeId, state: ChangeState },
    /// Recorded on its change, which follows it (moved, or already there).
    Recorded { change: ChangeId, state: ChangeState },
    /// Recorded on the change it names, which it may not move: the change is
    /// not approved (or ended another way). Change control is not bypassed.
    Observed { change: ChangeId, state: ChangeState },
    /// Nothing new: the same status was seen before.
    Unchanged { change: ChangeId },
    /// Nothing to do, and why.
    Skipped(String),
}

/// One status of one deployment, whatever reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentStatus {
    pub tenant: TenantId,
    pub origin: DeploymentOrigin,
    /// The catalog service ingest resolved, if any.
    pub service: Option<ServiceName>,
    /// The source's status name (`in_progress`, `success`, `failed`...).
    pub status: String,
    /// The source's time of the status.
    pub at: DateTime<Utc>,
    /// Changes the deployment names.
    pub change_ids: Vec<ChangeId>,
    /// Its ref and description: where emergency and rollback words are looked for.
    pub texts: Vec<String>,
    /// The source marks it as a rollback (a payload flag or label, a task).
    pub rollback: bool,
    /// What the status says beyond its step (job, log, error, pull request,
    /// who): what a post-mortem draft is made of.
    pub detail: Detail,
}

impl DeploymentStatus {
    fn of<F>(
        detail: &Event<F>,
        origin: DeploymentOrigin,
        status: String,
        ids: &[String],
        texts: Vec<String>,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            tenant: TenantId::parse(&detail.tenant)?,
            service: detail.service.as_deref().and_then(|s| ServiceName::parse(s).ok()),
            at: detail.occurred_at,
            change_ids: ids.iter().filter_map(|id| ChangeId::parse(id).ok()).collect(),
            origin,
            status,
            texts,
            rollback: false,
            detail: Detail::default(),
        })
    }

    /// A GitHub, GitLab or Argo CD deployment (created, or a status of it).
    pub fn from_deployment(detail: &Event<Deployment>) -> Result<Self, FieldError> {
        let d = &detail.data;
        let origin = DeploymentOrigin {
            source: detail.origin.as_str().to_owned(),
            repository: d.repository.clone(),
            deployment_id: d.deployment_id.clone(),
            sha: d.sha.clone(),
            git_ref: d.git_ref.clone(),
            environment: d.environment.clone(),
            url: detail.url.clone(),
            actor: detail.actor.clone(),
        };
        let texts = [d.git_ref.clone(), d.description.clone()].into_iter().flatten().collect();
        let mut status = Self::of(detail, origin, d.state.clone(), &d.change_ids, texts)?;
        status.rollback = d.rollback;
        status.detail = Detail {
            job: d.job.clone(),
            log_url: d.log_url.clone().or_else(|| detail.url.clone()),
            error: d.description.clone(),
            pull_request: d.pull_request,
            by: d.deployed_by.clone().or_else(|| detail.actor.clone()),
        };
        Ok(status)
    }

    /// A workflow run (GitHub Actions) or pipeline (GitLab) that deploys to
    /// `environment`: its status while it runs, its conclusion once completed.
    pub fn from_workflow_run(detail: &Event<WorkflowRun>, environment: &str) -> Result<Self, FieldError> {
        let r = &detail.data;
        let origin = DeploymentOrigin {
            source: detail.origin.as_str().to_owned(),
            repository: r.repository.clone(),
            deployment_id: r.run_id.clone(),
            sha: r.sha.clone(),
            git_ref: r.branch.clone(),
            environment: environment.to_owned(),
            url: detail.url.clone(),
            actor: detail.actor.clone(),
        };
        let status = match (r.status.as_str(), &r.conclusion) {
            ("completed", Some(conclusion)) => conclusion.clone(),
            (status, _) => status.to_owned(),
        };
        let texts: Vec<String> = [r.branch.clone(), r.name.clone()].into_iter().flatten().collect();
        let ids = change_ids(texts.iter().map(String::as_str));
        let mut status = Self::of(detail, origin, status, &ids, texts)?;
        status.detail = Detail {
            job: r.failed_job.clone().or_else(|| r.name.clone()),
            log_url: detail.url.clone(),
            error: r.conclusion.clone().filter(|c| c != "success"),
            pull_request: None,
            by: detail.actor.clone(),
        };
        Ok(status)
    }

    fn step(&self, view: &CatalogView) -> Option<Step> {
        let words = view.catalog.pipelines.is_rollback(self.texts.iter().map(String::as_str));
        Step::of(&self.status, self.rollback || words)
    }

    /// The id of the change this deployment makes.
    pub fn change_id(&self) -> ChangeId {
        let o = &self.origin;
        ChangeId::derived(&[self.tenant.as_str(), &o.source, &o.repository.to_ascii_lowercase(), &o.deployment_id])
    }
}

/// The consumer: a change store, the tenants' catalogs and a clock (for
/// `updated_at` only; every decision takes the source's times).
pub struct Deployments<S, K, C> {
    pub store: S,
    pub catalog: K,
    pub clock: C,
}

fn parse<F: DeserializeOwned>(detail_type: &str, detail: &serde_json::Value) -> Result<Event<F>, DeploymentError> {
    serde_json::from_value(detail.clone()).map_err(|e| unreadable(detail_type, e.to_string()))
}

fn unreadable(detail_type: &str, message: String) -> DeploymentError {
    DeploymentError::Unreadable { detail_type: detail_type.to_owned(), message }
}

impl<S: ChangeReader + ChangeWriter + InProductionStore, K: CatalogReader, C: Clock> Deployments<S, K, C> {
    /// Applies one hub event, as the bus delivers it: its `detail-type` and `detail`.
    #[tracing::instrument(skip(self, detail), fields(event_id = detail["event_id"].as_str().unwrap_or_default()))]
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Applied, DeploymentError> {
        match detail_type {
            "Deployment Created" | "Deployment Status Changed" => {
                let detail = parse::<Deployment>(detail_type, detail)?;
                let status =
                    DeploymentStatus::from_deployment(&detail).map_err(|e| unreadable(detail_type, e.message))?;
                self.apply(status).await
            }
            "Workflow Run Changed" => {
                let detail = parse::<WorkflowRun>(detail_type, detail)?;
                let tenant = TenantId::parse(&detail.tenant).map_err(|e| unreadable(detail_type, e.message))?;
                let view = self.catalog.catalog(&tenant).await?;
                let pipelines = &view.catalog.pipelines;
                if !detail.data.name.as_deref().is_some_and(|name| pipelines.deploys(name)) {
                    return Ok(Applied::Skipped(
                        "not a workflow the catalog names in pipelines.deploy_workflows".into(),
                    ));
                }
                let status = DeploymentStatus::from_workflow_run(&detail, &pipelines.workflow_environment)
                    .map_err(|e| unreadable(detail_type, e.message))?;
                self.apply(status).await
            }
            other => Ok(Applied::Skipped(format!("{other} is not a deployment event"))),
        }
    }

    /// Records one status of a deployment on its change, making the change
    /// if there is none yet: see the module. A successful production
    /// deployment of the sha the one running replaced is a rollback; every
    /// successful production deployment then moves what runs there (after
    /// the change is written, so that a retried event decides the same).
    pub async fn apply(&self, mut status: DeploymentStatus) -> Result<Applied, DeploymentError> {
        let view = self.catalog.catalog(&status.tenant).await?;
        let Some(mut step) = status.step(&view) else {
            return Ok(Applied::Skipped(format!("status {:?} says nothing of the deployment", status.status)));
        };
        let production = production_sha(&view, &status).map(|(service, sha)| (service.clone(), sha.to_owned()));
        if let (Some((service, sha)), Step::Finished(Outcome::Succeeded)) = (&production, step) {
            let running = self.store.in_production(&status.tenant, service, &status.origin.environment).await?;
            if let Some(running) = running.filter(|r| r.returns_to_previous(sha, status.at)) {
                step = Step::Finished(Outcome::RolledBack);
                // It rolls back the change of the deployment it replaces, when it names none.
                if status.change_ids.is_empty() {
                    status.change_ids.extend(running.current.change);
                }
            }
        }
        let applied = self.record(&view, &status, step).await?;
        if let (Some((service, sha)), Step::Finished(Outcome::Succeeded | Outcome::RolledBack)) = (&production, step) {
            let change = match &applied {
                Applied::Created { change, .. }
                | Applied::Recorded { change, .. }
                | Applied::Observed { change, .. }
                | Applied::Unchanged { change } => Some(*change),
                Applied::Skipped(_) => None,
            };
            self.keep_in_production(&status, service, sha, change).await?;
        }
        Ok(applied)
    }

    /// Moves the record of what runs in the deployment's service and
    /// environment to its sha, unless it holds a later deployment already.
    async fn keep_in_production(
        &self,
        status: &DeploymentStatus,
        service: &ServiceName,
        sha: &str,
        change: Option<ChangeId>,
    ) -> Result<(), DeploymentError> {
        let o = &status.origin;
        let ran = Ran {
            sha: sha.to_owned(),
            at: status.at,
            deployment: format!("{} deployment {} of {}", o.source, o.deployment_id, o.repository),
            change,
        };
        for _ in 0..MAX_ATTEMPTS {
            let next = match self.store.in_production(&status.tenant, service, &o.environment).await? {
                None => InProduction::first(status.tenant.clone(), service.clone(), &o.environment, ran.clone()),
                Some(stored) => match stored.after(ran.clone()) {
                    Some(next) => next,
                    None => return Ok(()),
                },
            };
            match self.store.put_in_production(&next).await {
                Ok(()) => {
                    tracing::info!(service = %service, environment = %next.environment, sha, "in production");
                    return Ok(());
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DeploymentError::Contended(status.change_id()))
    }

    /// Records the status on its change as `step`: see [`Deployments::apply`].
    async fn record(
        &self,
        view: &CatalogView,
        status: &DeploymentStatus,
        step: Step,
    ) -> Result<Applied, DeploymentError> {
        let own = status.change_id();
        let mut made = false;
        for _ in 0..MAX_ATTEMPTS {
            let Some(change) = self.target(status, &own).await? else {
                match self.create(view, status, step, own).await? {
                    Created::Done(applied) => return Ok(applied),
                    // Made (by this call, or a concurrent copy): now follow the deployment.
                    Created::Inserted => {
                        made = true;
                        continue;
                    }
                }
            };
            let Some(followed) = self.follow(view, &change, status, step) else {
                return Ok(Applied::Unchanged { change: change.id });
            };
            let Followed { change: next, entries, moved } = followed;
            let ended = next.implementation.and_then(|i| i.ended_at()).unwrap_or(status.at);
            // Counted once, on the write that moves the change out of implementing.
            let counted =
                matches!(
                    change.state,
                    ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing | ChangeState::Verifying
                ) && matches!(next.state, ChangeState::Completed | ChangeState::Failed | ChangeState::RolledBack);
            let bumps = if counted { outcome_bumps(&change, next.state, ended) } else { vec![] };
            let update = ChangeUpdate {
                before: &change,
                change: &next,
                entries: &entries,
                bumps: &bumps,
                volumes: &[],
                waits: &[],
            };
            match self.store.update_change(update).await {
                Ok(()) => {}
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(change_id = %next.id, state = %next.state, moved, "deployment recorded");
            let (change, state) = (next.id, next.state);
            return Ok(match (moved, made) {
                (_, true) => Applied::Created { change, state },
                (true, false) => Applied::Recorded { change, state },
                (false, false) => Applied::Observed { change, state },
            });
        }
        Err(DeploymentError::Contended(own))
    }

    /// The change the deployment belongs to: its own (made from an earlier
    /// status), else the first change it names that exists.
    async fn target(&self, status: &DeploymentStatus, own: &ChangeId) -> Result<Option<Change>, StoreError> {
        if let Some(change) = self.store.get_change(&status.tenant, own).await? {
            return Ok(Some(change));
        }
        for id in &status.change_ids {
            if let Some(change) = self.store.get_change(&status.tenant, id).await? {
                return Ok(Some(change));
            }
        }
        Ok(None)
    }

    /// Makes the deployment's own change, scheduled (a record of what
    /// happens: never approval-gated), production ones flagged with a
    /// post-implementation review due from the deployment's first status.
    async fn create(
        &self,
        view: &CatalogView,
        status: &DeploymentStatus,
        step: Step,
        id: ChangeId,
    ) -> Result<Created, DeploymentError> {
        let Some(service) = &status.service else {
            return Ok(Created::Done(Applied::Skipped(format!(
                "repository {} maps to no catalog service (services[].mappings.repositories) and names no existing change",
                status.origin.repository
            ))));
        };
        let mut deployed = Deployed::new(status.origin.clone(), step, status.at);
        deployed.observe_with(step, status.at, &status.detail);
        let (start, end) = planned(&deployed);
        let o = &status.origin;
        let title: String =
            format!("Deployment of {} to {}", o.repository, o.environment).chars().take(MAX_TITLE_CHARS).collect();
        let valid = NewChange::basic(title, &[service.as_str()], o.environment.clone(), start, end).validate();
        let valid = match valid {
            Ok(valid) => valid,
            Err(e) => return Ok(Created::Done(Applied::Skipped(format!("no change can be made of it: {e}")))),
        };
        let production = view.catalog.correlation.is_production(&o.environment);
        let tier = view.catalog.service(service).map(|s| s.tier);
        let now = self.clock.now();
        let mut draft = valid.into_draft(id, status.tenant.clone(), SYSTEM_ACTOR.to_owned(), now);
        draft.change_type =
            view.catalog.pipelines.change_type(production, tier, status.texts.iter().map(String::as_str));
        draft.description = deployed.describe();
        draft.state = ChangeState::Scheduled;
        draft.origin = Some(deployed.origin.clone());
        draft.deployments = vec![deployed.clone()];
        let reason = if production {
            draft.review = Some(PostReview { due_at: review_due(view, deployed.first_seen_at), done: None });
            "made from a production deployment that names no approved change: it happened, so it is recorded, \
             and flagged with a post-implementation review"
        } else {
            "made from a non-production deployment: recorded, never approval-gated"
        };
        let (change, entry) = audit::record(None, draft, SYSTEM_ACTOR, AuditAction::Created, Some(reason.to_owned()));
        match self.store.insert_change(&change, &entry).await {
            Ok(()) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
        if deployed.state().is_none() {
            return Ok(Created::Done(Applied::Created { change: id, state: ChangeState::Scheduled }));
        }
        Ok(Created::Inserted)
    }

    /// The change with this status recorded and moved as far as its
    /// deployment says and its lifecycle allows, with the audit entries that
    /// lead there; `None` when the status adds nothing.
    fn follow(&self, view: &CatalogView, change: &Change, status: &DeploymentStatus, step: Step) -> Option<Followed> {
        let mut deployments = change.deployments.clone();
        let step = match step {
            Step::Finished(Outcome::Succeeded) if deployment::redeploys_earlier(&deployments, &status.origin) => {
                Step::Finished(Outcome::RolledBack)
            }
            step => step,
        };
        let at = match deployments.iter().position(|d| d.origin.same_deployment(&status.origin)) {
            Some(i) => i,
            None if deployments.len() >= MAX_DEPLOYMENTS => {
                tracing::warn!(change_id = %change.id, "the change keeps {MAX_DEPLOYMENTS} deployments; this one is not recorded");
                return None;
            }
            None => {
                deployments.push(Deployed::new(status.origin.clone(), step, status.at));
                deployments.len() - 1
            }
        };
        deployments[at].observe_with(step, status.at, &status.detail);
        let deployed = deployments[at].clone();
        // The change follows its deployment when the lifecycle leads there: a
        // successful production deployment of a service with a bake time to verifying.
        let bakes = !bake_time(&view.catalog, change).is_zero()
            && view.catalog.correlation.is_production(&deployed.origin.environment);
        let target = deployed.state().map(|to| match to {
            ChangeState::Completed if bakes => ChangeState::Verifying,
            to => to,
        });
        let path = target.and_then(|to| deployment::route(change.state, to));
        let now = self.clock.now();
        let (mut current, mut entries) = (change.clone(), vec![]);
        let steps = path.clone().unwrap_or_default();
        for (i, to) in steps.iter().enumerate() {
            let mut next = current.transition(*to, now).ok()?;
            next.deployments.clone_from(&deployments);
            if i + 1 == steps.len() {
                self.settle(view, &mut next, &deployed);
            }
            let reason = Some(deployed.describe());
            let (recorded, entry) =
                audit::record(Some(&current), next, SYSTEM_ACTOR, AuditAction::Transitioned, reason);
            entries.push(entry);
            current = recorded;
        }
        if entries.is_empty() {
            let mut next = change.revised(now);
            next.deployments = deployments;
            let reason = if path.is_some() {
                self.settle(view, &mut next, &deployed);
                deployed.describe()
            } else if matches!(
                change.state,
                ChangeState::Draft | ChangeState::Submitted | ChangeState::Rejected | ChangeState::Cancelled
            ) {
                format!(
                    "{}; the change is {} (not approved), so the deployment does not move it: change control is not bypassed",
                    deployed.describe(),
                    change.state
                )
            } else {
                format!(
                    "{}; the change is already {}, so the deployment does not move it",
                    deployed.describe(),
                    change.state
                )
            };
            if same_record(change, &next) {
                return None;
            }
            let (recorded, entry) =
                audit::record(Some(change), next, SYSTEM_ACTOR, AuditAction::DeploymentRecorded, Some(reason));
            entries.push(entry);
            current = recorded;
        }
        Some(Followed { change: current, entries, moved: path.is_some() })
    }

    /// What follows from the deployment on the change it drives: its
    /// implementation (the deployment's own times), a created change's
    /// planned window, a verifying change's bake, and a post-mortem draft
    /// and a post-implementation review for a failed or rolled-back
    /// production change.
    fn settle(&self, view: &CatalogView, next: &mut Change, deployed: &Deployed) {
        next.implementation = deployed.implementation();
        let ended = deployed.ended.map_or(deployed.first_seen_at, |e| e.at);
        if next.origin.as_ref().is_some_and(|o| o.same_deployment(&deployed.origin)) {
            (next.planned_start, next.planned_end) = planned(deployed);
            next.description = deployed.describe();
            // Due after the deployment ended, whichever status came first.
            if let Some(review) = next.review.as_mut().filter(|r| r.done.is_none()) {
                review.due_at = review_due(view, ended);
            }
        }
        let production = |environment: &str| view.catalog.correlation.is_production(environment);
        if next.state == ChangeState::Verifying {
            next.bake = next.baked(&bake_time(&view.catalog, next), production);
        }
        let went_wrong = matches!(next.state, ChangeState::Failed | ChangeState::RolledBack);
        if went_wrong && production(&next.environment) {
            next.draft_postmortem();
            if next.review.is_none() {
                next.review = Some(PostReview { due_at: review_due(view, ended), done: None });
            }
        }
    }
}

/// The service and sha of a deployment to a production environment, when
/// it names both: what the record of what runs in production keeps.
fn production_sha<'a>(view: &CatalogView, status: &'a DeploymentStatus) -> Option<(&'a ServiceName, &'a str)> {
    let production = view.catalog.correlation.is_production(&status.origin.environment);
    let sha = status.origin.sha.as_deref().filter(|s| !s.is_empty());
    status.service.as_ref().zip(sha).filter(|_| production)
}

enum Created {
    Done(Applied),
    Inserted,
}

/// A change as a deployment's status leaves it.
struct Followed {
    change: Change,
    entries: Vec<AuditEntry>,
    /// Whether the change follows the deployment (moved, or already where it says).
    moved: bool,
}

/// Whether `next` records nothing `before` did not (its version and time aside).
fn same_record(before: &Change, next: &Change) -> bool {
    let mut next = next.clone();
    next.version = before.version;
    next.updated_at = before.updated_at;
    next.audit_head.clone_from(&before.audit_head);
    *before == next
}

/// A created change's planned window: when the deployment ran (or began,
/// while it runs, for [`PLANNED_RUN`]).
fn planned(d: &Deployed) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = d.implementation().map_or(d.first_seen_at, |i| i.started_at());
    let most = start + crate::domain::change::MAX_PLANNED_WINDOW;
    let end = match d.ended {
        Some(e) => e.at.max(start + Duration::minutes(1)),
        None => start + PLANNED_RUN,
    };
    (start, end.min(most))
}

/// When a post-implementation review is due: the catalog's
/// `emergency.review_within` after `from`.
fn review_due(view: &CatalogView, from: DateTime<Utc>) -> DateTime<Utc> {
    from + view.catalog.emergency.review_within.chrono()
}
