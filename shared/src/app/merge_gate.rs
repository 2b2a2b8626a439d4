//! The merge gate's use case: a pull (merge) request is opened or changes,
//! or a change it references is decided, and the request's
//! `changehub/change` commit status is set ([`crate::domain::gate::merge`]
//! decides).
//!
//! - `Pull Request Changed` (GitHub opened, edited, synchronized, labeled,
//!   unlabeled, ready_for_review, reopened; GitLab open, update, reopen): for a
//!   service with a `merge_gate:` policy and a gated base branch, the request
//!   is exempt (a label, or only exempt paths: the files are read from the
//!   forge, one page) or decided on the changes it references; it is linked
//!   to each of them (the reverse index), then its status is set. A merged or
//!   closed request, or an exempt one, leaves the index.
//! - A change event that may turn a status ([`merge::TURNING_EVENTS`]):
//!   the requests linked to the change (one read) are decided again and
//!   their statuses set.
//!
//! Idempotent by nature: every status is decided from what is stored when
//! the event is handled and set whole, so a duplicate or a late event sets
//! the status it would set anyway. A call that fails after its retries
//! fails the event, which the consumer retries and then dead-letters
//! (`changehub serve` redrives it later: [`crate::dead_letters`]). A
//! service's `merge_gate.gitlab.status_check_id` makes GitLab merge
//! requests get that external status check's response instead of a commit status.

use serde::Deserialize;
use std::collections::HashMap;

use crate::domain::gate::merge::{self, MergeDecision, MergeGatePolicy};
use crate::domain::gate::pulls::{Forge, PullLink, PullLinks, PullRequestRef};
use crate::domain::{Change, ChangeId, ServiceName, TenantId};
use crate::ingest::Origin;
use crate::ingest::canonical::{Detail, PullRequest};
use crate::ports::{CatalogReader, ChangeReader, Clock, CommitStatus, Forges, PullLinkStore, ScmError, StoreError};

/// The canonical event a request's status is set on.
pub const PULL_REQUEST_CHANGED: &str = "Pull Request Changed";
/// Times a write of the reverse index is tried against concurrent writers.
const LINK_ATTEMPTS: u32 = 3;

/// The events the merge gate handles: pull and merge requests, and the change events that may turn their statuses.
pub fn detail_types() -> impl Iterator<Item = &'static str> {
    std::iter::once(PULL_REQUEST_CHANGED).chain(merge::TURNING_EVENTS)
}

/// The bus rule's pattern: the hub's own events of [`detail_types`].
pub fn rule_pattern() -> Result<crate::domain::EventPattern, crate::domain::event::PatternError> {
    crate::domain::EventPattern::parse(serde_json::json!({
        "source": [{"prefix": crate::domain::event::SOURCE_PREFIX}],
        "detail-type": detail_types().collect::<Vec<_>>(),
    }))
}

/// The merge gate on its ports.
pub struct MergeGate<S, K, F, C> {
    pub store: S,
    pub catalog: K,
    pub forges: F,
    pub clock: C,
    /// The hub's public URL: statuses link to the change's page under it.
    pub public_url: Option<String>,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Statuses set: one per request.
    Set(Vec<(PullRequestRef, MergeDecision)>),
    /// A merged or closed request left the index.
    Unlinked,
    /// Nothing to do, and why.
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MergeGateError {
    #[error("the {detail_type} event cannot be read")]
    Unreadable {
        detail_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the {detail_type} event names no valid tenant")]
    Tenant { detail_type: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("setting the commit status of {repository}#{number}")]
    Forge {
        repository: String,
        number: u64,
        #[source]
        source: ScmError,
    },
}

impl MergeGateError {
    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        match self {
            MergeGateError::Unreadable { .. } | MergeGateError::Tenant { .. } => false,
            MergeGateError::Store(e) => e.is_retryable(),
            MergeGateError::Forge { source, .. } => source.is_retryable(),
        }
    }
}

/// The part of a change event read here.
#[derive(Deserialize)]
struct ChangeEvent {
    tenant: String,
    change_id: ChangeId,
}

impl<S, K, F, C> MergeGate<S, K, F, C>
where
    S: ChangeReader + PullLinkStore,
    K: CatalogReader,
    F: Forges,
    C: Clock,
{
    /// Handles one hub event (its `detail-type` and `detail`).
    #[tracing::instrument(skip(self, detail), fields(event_id = ?detail.get("event_id")))]
    pub async fn handle(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Applied, MergeGateError> {
        let unreadable = |source| MergeGateError::Unreadable { detail_type: detail_type.to_owned(), source };
        if detail_type == PULL_REQUEST_CHANGED {
            let detail = Detail::<PullRequest>::deserialize(detail).map_err(unreadable)?;
            self.pull_request(detail).await
        } else if merge::turns_status(detail_type) {
            let event = ChangeEvent::deserialize(detail).map_err(unreadable)?;
            let tenant = TenantId::parse(&event.tenant)
                .map_err(|_| MergeGateError::Tenant { detail_type: detail_type.to_owned() })?;
            self.change_decided(&tenant, event.change_id).await
        } else {
            Ok(Applied::Skipped(format!("{detail_type} does not turn a merge gate status")))
        }
    }

    async fn pull_request(&self, detail: Detail<PullRequest>) -> Result<Applied, MergeGateError> {
        let tenant = TenantId::parse(&detail.tenant)
            .map_err(|_| MergeGateError::Tenant { detail_type: PULL_REQUEST_CHANGED.to_owned() })?;
        let forge = match detail.origin {
            Origin::Github => Forge::Github,
            Origin::Gitlab => Forge::Gitlab,
            other => return Ok(Applied::Skipped(format!("a pull request from {}", other.as_str()))),
        };
        let Some(service) = detail.service.as_deref().and_then(|s| ServiceName::parse(s).ok()) else {
            return Ok(Applied::Skipped("the repository is not a catalog service's".into()));
        };
        let pr = detail.data;
        let Some(head_sha) = pr.head_sha.clone() else {
            return Ok(Applied::Skipped("the request has no head sha".into()));
        };
        let pull = PullRequestRef {
            forge,
            repository: pr.repository.clone(),
            number: pr.number,
            head_sha,
            installation: pr.installation,
        };
        let referenced: Vec<ChangeId> =
            pr.change_ids.iter().filter_map(|id| ChangeId::parse(id).ok()).take(merge::MAX_REFERENCED).collect();
        if matches!(pr.action.as_str(), "closed" | "merged") {
            self.unlink_all(&tenant, &pull, &referenced).await?;
            return Ok(Applied::Unlinked);
        }
        let Some(policy) = self.policy(&tenant, &service).await? else {
            return Ok(Applied::Skipped(format!("service {service} has no merge_gate policy")));
        };
        let Some(base) = pr.base_branch.as_deref().filter(|b| policy.gates(b)) else {
            return Ok(Applied::Skipped(format!("base branch {:?} is not gated", pr.base_branch)));
        };
        let exemption = match policy.exemption(&pr.labels, None) {
            Some(why) => Some(why),
            None if !policy.exempt_paths.is_empty() => {
                let files = self.forges.changed_files(&tenant, &pull).await.map_err(|e| forge_error(&pull, e))?;
                policy.exemption(&pr.labels, files.as_deref())
            }
            None => None,
        };
        let decision = match exemption {
            Some(why) => {
                self.unlink_all(&tenant, &pull, &referenced).await?;
                MergeDecision::exempt(why)
            }
            None => {
                let found = self.changes(&tenant, &referenced, &mut HashMap::new()).await?;
                let link = PullLink {
                    pull: pull.clone(),
                    service: service.clone(),
                    change_ids: referenced.clone(),
                    linked_at: self.clock.now(),
                };
                // Linked before the status is set: a change decided meanwhile finds the request.
                for change in &found {
                    self.update_links(&tenant, change.id, |links| links.link(link.clone())).await?;
                }
                merge::decide(&service, &policy, &referenced, &found)
            }
        };
        tracing::info!(repository = %pull.repository, number = pull.number, base, state = decision.state.as_str(), code = decision.code.as_str(), "merge gate decided");
        self.set(&tenant, &pull, &policy, &decision).await?;
        Ok(Applied::Set(vec![(pull, decision)]))
    }

    /// Decides again every request linked to `change` and sets its status.
    /// Every request is tried; the first failure is returned after.
    async fn change_decided(&self, tenant: &TenantId, change: ChangeId) -> Result<Applied, MergeGateError> {
        let Some(links) = self.store.get_pull_links(tenant, &change).await? else {
            return Ok(Applied::Skipped(format!("no request is linked to change {change}")));
        };
        let mut read = HashMap::new();
        let (mut set, mut failed) = (Vec::new(), None);
        for link in links.pulls {
            let Some(policy) = self.policy(tenant, &link.service).await? else { continue };
            let found = self.changes(tenant, &link.change_ids, &mut read).await?;
            let decision = merge::decide(&link.service, &policy, &link.change_ids, &found);
            match self.set(tenant, &link.pull, &policy, &decision).await {
                Ok(()) => set.push((link.pull, decision)),
                Err(e) => {
                    tracing::error!(repository = %link.pull.repository, number = link.pull.number, error = %crate::error_chain(&e), "commit status not set");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Applied::Set(set)),
        }
    }

    async fn set(
        &self,
        tenant: &TenantId,
        pull: &PullRequestRef,
        policy: &MergeGatePolicy,
        decision: &MergeDecision,
    ) -> Result<(), MergeGateError> {
        let status = CommitStatus {
            state: decision.state,
            description: decision.description.clone(),
            target_url: decision.target_url(self.public_url.as_deref()),
            gitlab_status_check: policy.gitlab.map(|g| g.status_check_id),
        };
        self.forges.set_status(tenant, pull, &status).await.map_err(|e| forge_error(pull, e))
    }

    async fn policy(&self, tenant: &TenantId, service: &ServiceName) -> Result<Option<MergeGatePolicy>, StoreError> {
        let view = self.catalog.catalog(tenant).await?;
        Ok(view.catalog.service(service).and_then(|s| s.merge_gate.clone()))
    }

    /// The changes of `ids` that exist, read once each (`read` keeps them across requests).
    async fn changes(
        &self,
        tenant: &TenantId,
        ids: &[ChangeId],
        read: &mut HashMap<ChangeId, Option<Change>>,
    ) -> Result<Vec<Change>, StoreError> {
        let mut found = Vec::new();
        for id in ids.iter().take(merge::MAX_REFERENCED) {
            if !read.contains_key(id) {
                let change = self.store.get_change(tenant, id).await?;
                read.insert(*id, change);
            }
            if let Some(Some(change)) = read.get(id) {
                found.push(change.clone());
            }
        }
        Ok(found)
    }

    async fn unlink_all(&self, tenant: &TenantId, pull: &PullRequestRef, ids: &[ChangeId]) -> Result<(), StoreError> {
        for id in ids {
            self.update_links(tenant, *id, |links| links.unlink(pull)).await?;
        }
        Ok(())
    }

    /// Applies `edit` to `change`'s links and writes them if it changed
    /// anything, again on a concurrent write.
    async fn update_links(
        &self,
        tenant: &TenantId,
        change: ChangeId,
        edit: impl Fn(&mut PullLinks) -> bool,
    ) -> Result<(), StoreError> {
        let mut attempt = 1;
        loop {
            let mut links = self
                .store
                .get_pull_links(tenant, &change)
                .await?
                .unwrap_or_else(|| PullLinks::new(tenant.clone(), change));
            if !edit(&mut links) {
                return Ok(());
            }
            links.version += 1;
            match self.store.put_pull_links(&links).await {
                Err(StoreError::VersionConflict { .. }) if attempt < LINK_ATTEMPTS => attempt += 1,
                done => return done,
            }
        }
    }
}

fn forge_error(pull: &PullRequestRef, source: ScmError) -> MergeGateError {
    MergeGateError::Forge { repository: pull.repository.clone(), number: pull.number, source }
}
