//! Moving an approved or scheduled change's planned window.

use chrono::{DateTime, Utc};
use tracing::instrument;

use super::{ChangeError, ChangeStore, Changes, Pending, check_text, current_at, join_reasons, refused};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::{Change, ChangeId, ChangeState};
use crate::ports::Clock;

/// `POST /changes/{id}/reschedule`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The version the caller last read: the reschedule applies only to it.
    pub version: u64,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    /// Why the window moves; audited.
    pub reason: String,
    /// Why an approved emergency may move into a freeze window, or the
    /// incident commander a scheduled high-risk change during a major incident.
    #[serde(default)]
    pub override_reason: Option<String>,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Moves an approved or scheduled change's planned window, audited; the
    /// change keeps its approval and state. Only the cab or an admin, not the
    /// requester, moves it outside the window that was approved. The freeze (and, once scheduled,
    /// the major incident) gates apply to the new window and its conflicts
    /// are listed again.
    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id))]
    pub async fn reschedule(
        &self,
        caller: &Caller,
        id: &ChangeId,
        req: RescheduleRequest,
    ) -> Result<Change, ChangeError> {
        check_text("reason", Some(&req.reason), true)?;
        check_text("override_reason", req.override_reason.as_ref(), false)?;
        crate::domain::new_change::validate_window(req.planned_start, req.planned_end)?;
        // The commander of a major incident holding a scheduled high-risk change may move it within its window.
        let held = |c: &Change| c.state == ChangeState::Scheduled;
        let (access, view, current) = self.movable(caller, id, "rescheduling a change", held).await?;
        current_at(&current, req.version)?;
        if !matches!(current.state, ChangeState::Approved | ChangeState::Scheduled) {
            return Err(refused(
                "not_reschedulable",
                None,
                format!("only an approved or scheduled change is rescheduled; change {id} is {}", current.state),
            ));
        }
        // The approvers approved a window: its requester may narrow it, but a
        // window outside it is moved by the cab or an admin, never by the
        // requester alone (dual control, as for the approval itself).
        let within = req.planned_start >= current.planned_start && req.planned_end <= current.planned_end;
        if !within && (caller.user == current.requester || !access.has_any(&[Role::Cab, Role::Admin])) {
            return Err(Forbidden(format!(
                "moving change {id} outside its approved window ({} to {}) needs someone other than its requester ({}) \
                 with the cab or admin role; {}",
                current.planned_start.to_rfc3339(),
                current.planned_end.to_rfc3339(),
                current.requester,
                access.held()
            ))
            .into());
        }
        let now = self.clock.now();
        let mut next = current.revised(now);
        next.reschedule_start(req.planned_start, &view.catalog.changes.starting_soon);
        next.planned_end = req.planned_end;
        let over = req.override_reason.as_deref();
        let freeze = self.freeze_gate(&next, (next.planned_start, next.planned_end), over, "rescheduling").await?;
        let incident = match current.state {
            ChangeState::Scheduled => self.incident_gate(caller, &next, over, "rescheduled").await?,
            _ => None,
        };
        next.conflicts = self.conflicts(&view, &next).await?;
        let mut pending = Pending::new(&current);
        let reason = join_reasons([Some(req.reason.trim().to_owned()), freeze, incident]);
        pending.step(next, &caller.user, AuditAction::Rescheduled, reason);
        let change = self.save(pending, current.version).await?;
        tracing::info!("change rescheduled");
        Ok(change)
    }
}
