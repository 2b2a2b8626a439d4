//! An approver's decision on a submitted change.

use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use tracing::instrument;

use super::{ChangeError, ChangeStore, Changes, Pending, check_text, current_at, join_reasons, refused};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::approval::{self, ApprovalPlan, DecisionError, PlanStatus, StepRef, Verdict};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::change::PostReview;
use crate::domain::delegation::Delegation;
use crate::domain::{Change, ChangeId, ChangeState, ChangeType};
use crate::ports::Clock;

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

/// A recorded decision: the change after it, and what the decision was.
#[derive(Debug, Clone)]
pub struct Decided {
    pub change: Change,
    pub receipt: DecisionReceipt,
}

/// What a decision counted for, as its answer says: the steps it approved,
/// peer reviewed or rejected at, and the steps now waiting (none once decided).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecisionReceipt {
    pub decision: Verdict,
    pub counted_for: Vec<StepRef>,
    pub waiting_for: Vec<StepRef>,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// An approver's decision on the current level of a submitted normal or
    /// emergency change. Concurrent decisions are serialized by the record's
    /// version: one wins, the others get a version conflict and may retry.
    /// A major incident's commander decides an emergency by name only while
    /// the incident is open and they command it; an approved emergency's
    /// post-implementation review falls due.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn decide(&self, caller: &Caller, id: &ChangeId, req: DecisionRequest) -> Result<Decided, ChangeError> {
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
                Some(id) => self
                    .open_incident(&caller.tenant, id)
                    .await?
                    .is_some_and(|i| i.confirming_commander(&current.services) == Some(caller.user.as_str())),
                None => false,
            };
            if !commands {
                plan.unname(&caller.user);
            }
        }
        let now = self.clock.now();
        let (decided, delegation) = self.decide_plan(caller, &access.roles, &current, &mut plan, &req, now).await?;
        let outcome = decided.status;
        let receipt = DecisionReceipt {
            decision: req.decision,
            counted_for: decided.counted_for,
            waiting_for: plan.waiting_for(),
        };
        let mut next = match outcome {
            PlanStatus::Pending => current.revised(now),
            PlanStatus::Approved => current.transition(ChangeState::Approved, now)?,
            PlanStatus::Rejected => current.transition(ChangeState::Rejected, now)?,
        };
        next.approval = Some(plan);
        let on_behalf = delegation.map(|d| format!("on behalf of {} (delegation {})", d.delegator, d.id));
        let mut reason = join_reasons([req.comment, on_behalf]);
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
        if let (Some(before), Some(after)) = (&current.approval, &next.approval) {
            pending.waits = super::sla::decision_waits(&current, before, after, &view.catalog, now);
        }
        let action = if req.decision == Verdict::PeerReview { AuditAction::PeerReviewed } else { AuditAction::Decided };
        pending.step(next, &caller.user, action, reason);
        let change = self.save(pending, current.version).await?;
        tracing::info!(outcome = ?outcome, "approval decided");
        Ok(Decided { change, receipt })
    }

    /// Records the caller's verdict on `plan`: as themself, or, when they may
    /// not decide as themself, as the delegate of an approver whose delegation
    /// is in force now (the first that lets them; dual control holds for both).
    async fn decide_plan(
        &self,
        caller: &Caller,
        roles: &BTreeSet<Role>,
        current: &Change,
        plan: &mut ApprovalPlan,
        req: &DecisionRequest,
        now: DateTime<Utc>,
    ) -> Result<(approval::Decided, Option<Delegation>), ChangeError> {
        let (requester, comment) = (current.requester.as_str(), req.comment.clone());
        let own = match plan.decide(caller, roles, requester, req.decision, comment.clone(), now) {
            Ok(decided) => return Ok((decided, None)),
            Err(DecisionError::Forbidden(m)) => m,
            Err(e) => return Err(decision_error(e)),
        };
        let waiting: Vec<String> = plan.waiting_for().into_iter().map(|s| s.name).collect();
        let delegations = crate::app::delegations::active_for(&self.store, &caller.tenant, &caller.user, now).await?;
        let mut refusal = own;
        for d in delegations.into_iter().filter(|d| d.levels.iter().any(|l| waiting.contains(l))) {
            match plan.decide_on_behalf(caller, roles, requester, req.decision, comment.clone(), now, d.proxy()) {
                Ok(decided) => return Ok((decided, Some(d))),
                Err(DecisionError::Forbidden(m)) => refusal = m,
                Err(e) => return Err(decision_error(e)),
            }
        }
        Err(ChangeError::Forbidden(Forbidden(refusal)))
    }
}

fn decision_error(e: DecisionError) -> ChangeError {
    match e {
        DecisionError::Forbidden(m) => ChangeError::Forbidden(Forbidden(m)),
        DecisionError::Closed(m) => refused("no_pending_approval", None, m),
        DecisionError::PeerReviewRequired(m) => refused("peer_review_required", Some("decision"), m),
        DecisionError::NoPeerReviewPending(m) => refused("no_peer_review_pending", Some("decision"), m),
    }
}
