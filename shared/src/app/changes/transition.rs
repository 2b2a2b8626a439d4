//! Moving a change through its lifecycle, with the gates each move passes.

use chrono::{DateTime, Utc};
use tracing::instrument;

use super::{ChangeError, ChangeStore, Changes, Pending, check_text, current_at, join_reasons, outcome_bumps, refused};
use crate::domain::access::Caller;
use crate::domain::bake::{self, Bake};
use crate::domain::catalog::CatalogView;
use crate::domain::gate;
use crate::domain::{Change, ChangeId, ChangeState, ChangeType};
use crate::ports::Clock;

/// `POST /changes/{id}/transitions`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: ChangeState,
    /// The version the caller last read: the transition applies only to it.
    pub version: u64,
    #[serde(default)]
    pub reason: Option<String>,
    /// Why a rule is overridden: an approved emergency entering a freeze
    /// window or starting outside its planned window, or the incident
    /// commander scheduling a high-risk change during a major incident.
    #[serde(default)]
    pub override_reason: Option<String>,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Refuses starting a change outside its planned window, from
    /// `implementation.start_grace` before its planned start to its planned
    /// end, unless an emergency approved by someone other than its requester
    /// records an override reason; returns the audit text of an override.
    fn window_gate(
        view: &CatalogView,
        change: &Change,
        req: &TransitionRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ChangeError> {
        let grace = &view.catalog.implementation.start_grace;
        if gate::within_window(change, grace.chrono(), now) {
            return Ok(None);
        }
        let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let window = format!(
            "planned window {} to {} (starts may be {grace} early)",
            secs(change.planned_start),
            secs(change.planned_end)
        );
        let reason = req.override_reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        match reason {
            Some(reason) if change.change_type == ChangeType::Emergency && change.approved_by_another() => {
                Ok(Some(format!("window override (now {} is outside the {window}): {reason}", secs(now))))
            }
            _ => Err(refused(
                "outside_window",
                Some("planned_start"),
                format!(
                    "now ({}) is outside the change's {window}; reschedule it (POST /changes/{}/reschedule), or an approved emergency may start with an override_reason",
                    secs(now),
                    change.id
                ),
            )),
        }
    }

    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id, to = %req.to))]
    pub async fn transition(
        &self,
        caller: &Caller,
        id: &ChangeId,
        req: TransitionRequest,
    ) -> Result<Change, ChangeError> {
        check_text("reason", req.reason.as_ref(), false)?;
        check_text("override_reason", req.override_reason.as_ref(), false)?;
        // A major incident's commander schedules or starts the high-risk changes it holds.
        let held = |_: &Change| matches!(req.to, ChangeState::Scheduled | ChangeState::Implementing);
        let (_, view, current) = self.movable(caller, id, "moving a change", held).await?;
        current_at(&current, req.version)?;
        let now = self.clock.now();
        // Legality first, so an illegal move is named as such whatever else is wrong.
        current.transition(req.to, now)?;
        let mut pending = Pending::new(&current);
        match req.to {
            ChangeState::Approved | ChangeState::Rejected => {
                return Err(refused(
                    "decision_required",
                    Some("to"),
                    format!(
                        "a change is approved or rejected by its approvers' decisions (POST /changes/{id}/decisions), not moved there; only standard changes are approved on submission"
                    ),
                ));
            }
            ChangeState::Submitted => self.submit(caller, &view, &req, &mut pending, now).await?,
            ChangeState::Scheduled => {
                let planned = (current.planned_start, current.planned_end);
                let over = req.override_reason.as_deref();
                let freeze = self.freeze_gate(&current, planned, over, "scheduling").await?;
                let incident = self.incident_gate(caller, &current, over, "scheduled").await?;
                let conflicts = self.conflicts(&view, &current).await?;
                let reason = join_reasons([req.reason.clone(), freeze, incident]);
                let lead = &view.catalog.changes.starting_soon;
                pending.transition(ChangeState::Scheduled, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.arm_starting_soon(lead);
                })?;
            }
            ChangeState::Implementing => {
                let open: Vec<String> = current.open_checklist().map(|i| format!("{} ({})", i.id, i.text)).collect();
                if !open.is_empty() {
                    return Err(refused(
                        "checklist_incomplete",
                        Some("checklist"),
                        format!(
                            "the {} checklist must be complete before implementing; still open: {}",
                            current.category,
                            open.join(", ")
                        ),
                    ));
                }
                let window = Self::window_gate(&view, &current, &req, now)?;
                // The work runs from now to the planned end (as long as planned, if that is past).
                let work = gate::work_span(&current, now);
                let over = req.override_reason.as_deref();
                let freeze = self.freeze_gate(&current, work, over, "implementing").await?;
                let incident = self.incident_gate(caller, &current, over, "started").await?;
                let reason = join_reasons([req.reason.clone(), window, freeze, incident]);
                pending.transition(ChangeState::Implementing, now, &caller.user, reason, |_| {})?;
            }
            ChangeState::Verifying => {
                // Deployed by hand: the bake runs from now.
                let time = bake::bake_time(&view.catalog, &current);
                if time.is_zero() {
                    return Err(refused(
                        "no_bake_time",
                        Some("to"),
                        "verifying is the bake after a production deployment, and none of the change's services \
                         sets a bake_time (catalog services[].bake_time); move it to completed",
                    ));
                }
                let bake = Bake { until: now + time.chrono(), time, suspect: None, cleared: None };
                pending.transition(ChangeState::Verifying, now, &caller.user, req.reason.clone(), |c| {
                    c.bake = Some(bake);
                })?;
            }
            to @ (ChangeState::Completed | ChangeState::Failed | ChangeState::RolledBack) => {
                if matches!(current.state, ChangeState::Implementing | ChangeState::Verifying) {
                    pending.bumps = outcome_bumps(&current, to, now);
                }
                pending.transition(to, now, &caller.user, req.reason.clone(), |_| {})?;
            }
            to => pending.transition(to, now, &caller.user, req.reason.clone(), |_| {})?,
        }
        let change = self.save(pending, current.version).await?;
        tracing::info!(from = %current.state, state = %change.state, "change transitioned");
        Ok(change)
    }
}
