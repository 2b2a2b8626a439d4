//! A change's post-implementation review: an emergency's, a production
//! deployment's that named no approved change, or a failed or rolled-back
//! production change's, which starts from its post-mortem draft.

use super::{ChangeError, ChangeStore, Changes, Pending, check_text, current_at, refused};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::change::{Done, PostReview};
use crate::domain::{Change, ChangeId, ChangeState, FieldError};
use crate::ports::Clock;

/// `POST /changes/{id}/review`: the findings, and corrections to the
/// post-mortem draft. A change with a draft needs no note: the draft's
/// summary is the review's note then.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub version: u64,
    /// The findings; optional when the change has a post-mortem draft.
    #[serde(default)]
    pub note: Option<String>,
    /// Corrections to the draft's error text, failing job and log link.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub failing_job: Option<String>,
    #[serde(default)]
    pub log_url: Option<String>,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Records a change's post-implementation review: by someone other than
    /// its requester, holding the cab or admin role.
    pub async fn review(&self, caller: &Caller, id: &ChangeId, req: ReviewRequest) -> Result<Change, ChangeError> {
        for (field, text) in [("note", &req.note), ("error", &req.error), ("failing_job", &req.failing_job)] {
            check_text(field, text.as_ref(), false)?;
        }
        check_text("log_url", req.log_url.as_ref(), false)?;
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
                "review_too_early",
                None,
                format!(
                    "a post-implementation review follows implementation: the change must be completed, \
                     failed, rolled_back or closed; it is {}",
                    current.state
                ),
            ));
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        let trimmed = |t: &Option<String>| t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if let Some(draft) = next.postmortem.as_mut() {
            draft.error = trimmed(&req.error).or(draft.error.take());
            draft.failing_job = trimmed(&req.failing_job).or(draft.failing_job.take());
            draft.log_url = trimmed(&req.log_url).or(draft.log_url.take());
        }
        let note = match (trimmed(&req.note), &next.postmortem) {
            (Some(note), _) => note,
            (None, Some(draft)) => draft.summary().chars().take(super::MAX_REASON_CHARS).collect(),
            (None, None) => {
                return Err(FieldError::new(
                    "note",
                    "note is required: the change has no post-mortem draft to start from",
                )
                .into());
            }
        };
        next.review = Some(PostReview {
            due_at: review.due_at,
            done: Some(Done { by: caller.user.clone(), at: now, note: note.clone() }),
        });
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::Reviewed, Some(note));
        self.save(pending, current.version).await
    }
}
