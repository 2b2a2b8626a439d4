//! Reworking a rejected change: a new draft copying its fields (with any
//! edits sent along), linked both ways, written in one transaction.

use tracing::instrument;

use super::edit::EditRequest;
use super::{ChangeError, ChangeStore, Changes, Pending, current_at, refused};
use crate::domain::access::Caller;
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::Role;
use crate::domain::{Change, ChangeId, ChangeState};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Opens a new draft from a rejected change (rejected, or closed after
    /// its rejection), with `req.fields` patched in as an edit would. The
    /// caller (the change's requester, or the cab or an admin, holding a
    /// role that opens changes) is the new draft's requester. The draft
    /// names the change it `reworks`, the rejected change names the draft it
    /// was `reworked_as`, and each gets an audit entry, in one atomic write;
    /// a change is reworked once.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn rework(&self, caller: &Caller, id: &ChangeId, req: EditRequest) -> Result<Change, ChangeError> {
        let (access, view, current) = self.driven(caller, id, "reworking a change").await?;
        access.require(&[Role::Requester, Role::Cab, Role::Admin], "opening a change")?;
        current_at(&current, req.version)?;
        if let Some(draft) = current.reworked_as {
            return Err(refused(
                "already_reworked",
                None,
                format!("change {id} was already reworked as {draft}; edit that draft (PATCH /changes/{draft})"),
            ));
        }
        if !current.was_rejected() {
            return Err(refused(
                "not_rejected",
                None,
                format!(
                    "only a rejected change is reworked; change {id} is {}{}",
                    current.state,
                    if current.state == ChangeState::Draft { " (edit it: PATCH /changes/{id})" } else { "" }
                ),
            ));
        }
        let now = self.clock.now();
        let mut draft = self.redraft(&view, &current, &req.fields).await?;
        draft.id = ChangeId::new();
        draft.requester = caller.user.clone();
        draft.state = ChangeState::Draft;
        draft.version = 1;
        draft.created_at = now;
        draft.updated_at = now;
        draft.audit_head = String::new();
        draft.approval = None;
        draft.conflicts = vec![];
        draft.review = None;
        draft.checklist.iter_mut().for_each(|i| i.done = None);
        draft.reworks = Some(current.id);
        draft.reworked_as = None;
        let rejected_by = current.approval.as_ref().and_then(|p| p.rejected.as_ref()).map(|d| d.by.as_str());
        let reason = Some(match rejected_by {
            Some(by) => format!("rework of change {id}, rejected by {by}"),
            None => format!("rework of change {id}"),
        });
        let (draft, entry) = audit::record(None, draft, &caller.user, AuditAction::Created, reason);

        let mut linked = current.revised(now);
        linked.reworked_as = Some(draft.id);
        let mut pending = Pending::new(&current);
        pending.step(linked, &caller.user, AuditAction::Reworked, Some(format!("reworked as change {}", draft.id)));
        self.store
            .insert_linked(&draft, &entry, pending.update())
            .await
            .map_err(|e| Self::write_failure(e, current.id))?;
        tracing::info!(draft = %draft.id, "change reworked");
        Ok(draft)
    }
}
