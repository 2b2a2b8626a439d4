//! An emergency change's post-implementation review.

use super::{ChangeError, ChangeStore, Changes, NoteRequest, Pending, check_text, current_at, refused};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::change::{Done, PostReview};
use crate::domain::{Change, ChangeId, ChangeState};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
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
        next.review = Some(PostReview {
            due_at: review.due_at,
            done: Some(Done { by: caller.user.clone(), at: now, note: req.note.trim().to_owned() }),
        });
        let mut pending = Pending::new(&current);
        pending.step(next, &caller.user, AuditAction::Reviewed, Some(req.note.trim().to_owned()));
        self.save(pending, current.version).await
    }
}
