//! Rollback automation: a production deployment of a change that declares
//! an automated rollback plan (`rollback_plan: {automated: true}`) failed,
//! and the rollback its service's catalog entry names (`rollback:`) is run
//! once: a GitHub `workflow_dispatch` or a GitLab pipeline, asked to return
//! to what ran in production before (the record of what runs there).
//!
//! It runs where the forge credentials are, on the change's own `Change
//! Failed` event (the outbox publishes it when a deployment fails the
//! change): the deployments consumer stays a store-only writer, and the
//! forge-facing consumer (serve's, and the function hosting the merge gate
//! on AWS) acts on an event the hub already has, with no new one.
//!
//! Once per failed deployment: the change's post-mortem draft keeps what
//! became of it (`automated_rollback`), and the dispatch runs under a claim
//! keyed by the failed deployment ([`crate::app::once`]), so neither a
//! duplicate event nor a concurrent copy dispatches twice. A dispatch that
//! fails is an error: retried by the consumer, then dead-lettered (kept,
//! and alarmed on AWS); one the forge refuses (a 4xx, no credentials) is
//! also recorded on the change, so people see why nothing ran.

use serde::Deserialize;
use std::time::Duration;

use crate::app::changes::SYSTEM_ACTOR;
use crate::app::ingest::ClaimTimes;
use crate::app::once::{Once, OnceError, once};
use crate::domain::audit::{self, AuditAction};
use crate::domain::deployment::rollback::{AutomatedRollback, Dispatch, Failure};
use crate::domain::{Change, ChangeId, ChangeState, TenantId};
use crate::ports::{
    CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, Dedupe, Forges, InProductionStore, ScmError,
    StoreError,
};

/// The change event the rollback is run on.
pub const CHANGE_FAILED: &str = "Change Failed";
/// How long a dispatched rollback's claim is remembered (the change's record keeps it for good).
const REMEMBERED: Duration = Duration::from_secs(30 * 86_400);
/// The lease of a dispatch in progress: longer than a forge call with its retries.
const LEASE: Duration = Duration::from_secs(120);
/// Writes of the outcome tried against concurrent writers of the change.
const ATTEMPTS: usize = 8;

/// The bus rule's pattern.
pub fn rule_pattern() -> Result<crate::domain::EventPattern, crate::domain::event::PatternError> {
    crate::domain::EventPattern::parse(serde_json::json!({ "detail-type": [CHANGE_FAILED] }))
}

/// The use case on its ports.
pub struct Rollbacks<S, K, F, C> {
    pub store: S,
    pub catalog: K,
    pub forges: F,
    pub clock: C,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Dispatched, and recorded on the change.
    Dispatched(Dispatch),
    /// Recorded on the change as not dispatched, and why.
    NotDispatched(String),
    /// Nothing to do, and why (no plan, no rollback configured, done before).
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("the {CHANGE_FAILED} event cannot be read")]
    Unreadable(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dispatching the rollback of change {change}")]
    Forge {
        change: ChangeId,
        #[source]
        source: ScmError,
    },
    /// Another copy of the event is dispatching it: retry once it is done.
    #[error("the rollback of change {0} is being dispatched elsewhere; retry")]
    InProgress(ChangeId),
    #[error("change {0} kept moving under the rollback's record; retry")]
    Contended(ChangeId),
}

impl RollbackError {
    /// Whether trying the event again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            RollbackError::Unreadable(_) => false,
            RollbackError::Store(e) => e.is_retryable(),
            RollbackError::Forge { source, .. } => source.is_retryable(),
            RollbackError::InProgress(_) | RollbackError::Contended(_) => true,
        }
    }
}

#[derive(Deserialize)]
struct ChangeEvent {
    tenant: String,
    change_id: ChangeId,
}

impl<S, K, F, C> Rollbacks<S, K, F, C>
where
    S: ChangeReader + ChangeWriter + InProductionStore + Dedupe,
    K: CatalogReader,
    F: Forges,
    C: Clock,
{
    /// Applies one hub event, as the bus delivers it.
    #[tracing::instrument(skip(self, detail))]
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Applied, RollbackError> {
        if detail_type != CHANGE_FAILED {
            return Ok(Applied::Skipped(format!("{detail_type} runs no rollback")));
        }
        let event = ChangeEvent::deserialize(detail).map_err(RollbackError::Unreadable)?;
        let Ok(tenant) = TenantId::parse(&event.tenant) else {
            return Ok(Applied::Skipped("the event names no valid tenant".into()));
        };
        self.failed(&tenant, event.change_id).await
    }

    /// Runs the rollback of change `id`'s failed production deployment, if it plans one.
    pub async fn failed(&self, tenant: &TenantId, id: ChangeId) -> Result<Applied, RollbackError> {
        let Some(change) = self.store.get_change(tenant, &id).await? else {
            return Ok(Applied::Skipped(format!("change {id} does not exist")));
        };
        if !change.rollback_plan.is_some_and(|p| p.automated) {
            return Ok(Applied::Skipped("the change's rollback plan is not automated".into()));
        }
        let Some(postmortem) = change.postmortem.as_ref().filter(|_| change.state == ChangeState::Failed) else {
            return Ok(Applied::Skipped("no failed production deployment on the change".into()));
        };
        let failed = &postmortem.deployed;
        let failed_deployment =
            format!("{} deployment {} of {}", failed.source, failed.deployment_id, failed.repository);
        if postmortem.automated_rollback.as_ref().is_some_and(|a| a.failed_deployment == failed_deployment) {
            return Ok(Applied::Skipped("the rollback of this deployment was recorded before".into()));
        }
        let view = self.catalog.catalog(tenant).await?;
        let Some((service, automation)) =
            change.services.iter().find_map(|s| view.catalog.service(s)?.rollback.as_ref().map(|r| (s, r)))
        else {
            return Ok(Applied::Skipped("none of the change's services configures a rollback".into()));
        };
        let running = self.store.in_production(tenant, service, &failed.environment).await?;
        let failed_sha = failed.sha.as_deref();
        // What ran before the failure: the record's current sha, unless the failure redeployed it.
        let last_good = running.as_ref().and_then(|r| {
            let same = |sha: &str| failed_sha.is_some_and(|f| crate::domain::deployment::production::same_sha(f, sha));
            if same(&r.current.sha) {
                r.previous.as_ref().map(|p| p.sha.as_str())
            } else {
                Some(r.current.sha.as_str())
            }
        });
        let failure = Failure {
            change: &id.to_string(),
            service: service.as_str(),
            environment: &failed.environment,
            failed_sha,
            last_good_sha: last_good,
        };
        let dispatch = match automation.dispatch(&failure) {
            Ok(dispatch) => dispatch,
            Err(why) => {
                self.record(&change, &failed_deployment, None, Some(why.clone())).await?;
                return Ok(Applied::NotDispatched(why));
            }
        };
        let key = format!("ROLLBACK#{tenant}#{id}#{failed_deployment}");
        let times = ClaimTimes { lease: LEASE, ttl: REMEMBERED };
        let sent = once(&self.store, &self.clock, times, &[key], self.forges.dispatch(tenant, &dispatch)).await;
        match sent {
            Ok(Once::Done(())) | Ok(Once::Duplicate) => {
                tracing::info!(change_id = %id, forge = %dispatch.forge, target = %dispatch.target, "rollback dispatched");
                self.record(&change, &failed_deployment, Some(dispatch.clone()), None).await?;
                Ok(Applied::Dispatched(dispatch))
            }
            Ok(Once::InProgress) => Err(RollbackError::InProgress(id)),
            Err(OnceError::Store(e)) => Err(e.into()),
            Err(OnceError::Work(source)) => {
                if !source.is_retryable() {
                    let why = format!("the forge refused it: {source}");
                    self.record(&change, &failed_deployment, Some(dispatch), Some(why)).await?;
                }
                Err(RollbackError::Forge { change: id, source })
            }
        }
    }

    /// Records what became of the rollback on the change's post-mortem
    /// draft, audited; once (a record for the same deployment stays).
    async fn record(
        &self,
        change: &Change,
        failed_deployment: &str,
        request: Option<Dispatch>,
        reason: Option<String>,
    ) -> Result<(), RollbackError> {
        let mut current = change.clone();
        for _ in 0..ATTEMPTS {
            let Some(postmortem) = current.postmortem.as_ref() else { return Ok(()) };
            if postmortem.automated_rollback.as_ref().is_some_and(|a| a.failed_deployment == failed_deployment) {
                return Ok(());
            }
            let now = self.clock.now();
            let dispatched = reason.is_none();
            let said = match (&request, &reason) {
                (Some(d), None) => format!(
                    "automated rollback dispatched to {} {}{} on {}",
                    d.forge,
                    d.target,
                    d.workflow.as_deref().map(|w| format!(" ({w})")).unwrap_or_default(),
                    d.git_ref
                ),
                (_, Some(why)) => format!("automated rollback not dispatched: {why}"),
                (None, None) => "automated rollback not dispatched".to_owned(),
            };
            let mut next = current.revised(now);
            if let Some(p) = next.postmortem.as_mut() {
                p.automated_rollback = Some(AutomatedRollback {
                    at: now,
                    failed_deployment: failed_deployment.to_owned(),
                    dispatched,
                    request: request.clone(),
                    reason: reason.clone(),
                });
            }
            let (next, entry) =
                audit::record(Some(&current), next, SYSTEM_ACTOR, AuditAction::RollbackDispatched, Some(said));
            let update = ChangeUpdate {
                before: &current,
                change: &next,
                entries: &[entry],
                bumps: &[],
                volumes: &[],
                waits: &[],
            };
            match self.store.update_change(update).await {
                Ok(()) => return Ok(()),
                Err(StoreError::VersionConflict { .. }) => {
                    match self.store.get_change(&current.tenant, &current.id).await? {
                        Some(latest) => current = latest,
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RollbackError::Contended(change.id))
    }
}
