//! Submitting a draft: the path each change type takes to approval.

use chrono::{DateTime, Utc};

use super::{
    ChangeError, ChangeStore, Changes, Pending, SYSTEM_ACTOR, TransitionRequest, join_reasons, month_of, refused,
};
use crate::domain::access::Caller;
use crate::domain::approval::ApprovalPlan;
use crate::domain::catalog::CatalogView;
use crate::domain::risk::RiskLevel;
use crate::domain::{Change, ChangeState, ChangeType, ServiceName};
use crate::ports::{Clock, VolumeKey, VolumeOf};

/// The volume counters a submission of `change` adds one to: its requester's
/// and each owning team's (the catalog's owner group of its services), this month.
fn volume_keys(view: &CatalogView, change: &Change, now: DateTime<Utc>) -> Vec<VolumeKey> {
    let key =
        |of| VolumeKey { tenant: change.tenant.clone(), month: month_of(now), change_type: change.change_type, of };
    let mut keys = vec![key(VolumeOf::Requester(change.requester.clone()))];
    for service in &change.services {
        if let Some(svc) = view.catalog.service(service) {
            let team = key(VolumeOf::Team(svc.owner_group.clone()));
            if !keys.contains(&team) {
                keys.push(team);
            }
        }
    }
    keys
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Draft → submitted, and on: standard changes are approved at once by
    /// their template; emergencies wait for one approval by the emergency
    /// approvers (or the commander of the major incident they fix), and are
    /// counted per requester and team; normal changes wait for their approval plan.
    pub(super) async fn submit(
        &self,
        caller: &Caller,
        view: &CatalogView,
        req: &TransitionRequest,
        pending: &mut Pending,
        now: DateTime<Utc>,
    ) -> Result<(), ChangeError> {
        let current = pending.change.clone();
        let planned = (current.planned_start, current.planned_end);
        let freeze = self.freeze_gate(&current, planned, req.override_reason.as_deref(), "submitting").await?;
        let conflicts = self.conflicts(view, &current).await?;
        let risk = self.assess(view, &current).await?;
        let reason = join_reasons([req.reason.clone(), freeze]);
        match current.change_type {
            ChangeType::Standard => {
                let id = current.template.clone().unwrap_or_default();
                let template = view.catalog.template(&id).ok_or_else(|| {
                    refused(
                        "template_unknown",
                        Some("template"),
                        format!("the catalog no longer has standard template {id:?}"),
                    )
                })?;
                if let Some(outside) =
                    current.services.iter().find(|s| !template.services.is_empty() && !template.services.contains(s))
                {
                    return Err(refused(
                        "template_mismatch",
                        Some("services"),
                        format!(
                            "standard template {id} does not cover service {outside}; submit a normal change instead"
                        ),
                    ));
                }
                if template.category != current.category {
                    return Err(refused(
                        "template_mismatch",
                        Some("category"),
                        format!(
                            "standard template {id} is for category {}, not {}",
                            template.category, current.category
                        ),
                    ));
                }
                let receipt = format!(
                    "approved on submission: standard change from pre-approved template {id} ({}), catalog version {}",
                    template.title, view.version
                );
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                })?;
                pending.transition(ChangeState::Approved, now, SYSTEM_ACTOR, Some(receipt), |_| {})?;
            }
            ChangeType::Emergency => {
                let commander = match &current.incident {
                    None => None,
                    Some(id) => match self.open_incident(&current.tenant, id).await? {
                        Some(incident) if incident.touches(&current.services) => {
                            incident.confirming_commander(&current.services).map(str::to_owned)
                        }
                        Some(incident) => {
                            return Err(refused(
                                "incident_unrelated",
                                Some("incident"),
                                format!(
                                    "major incident {id:?} is on {}, none of this change's services; name the incident this change fixes",
                                    incident.services.iter().map(ServiceName::as_str).collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                        None => {
                            return Err(refused(
                                "incident_not_open",
                                Some("incident"),
                                format!(
                                    "there is no open major incident {id:?}; name an open one, or leave incident out for the emergency approvers to decide"
                                ),
                            ));
                        }
                    },
                };
                let plan = ApprovalPlan::emergency(view, commander.as_deref(), now)
                    .map_err(|e| refused("no_approval_chain", Some("type"), e.0))?;
                pending.volumes = volume_keys(view, &current, now);
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                    c.approval = Some(plan);
                })?;
            }
            ChangeType::Normal => {
                let peer = risk.level >= RiskLevel::High || current.privileged_access || current.cryptographic_keys;
                let plan = ApprovalPlan::build(view, &current.services, peer, now)
                    .map_err(|e| refused("no_approval_chain", Some("services"), e.0))?;
                pending.transition(ChangeState::Submitted, now, &caller.user, reason, |c| {
                    c.conflicts = conflicts;
                    c.risk = Some(risk);
                    c.approval = Some(plan);
                })?;
            }
            // Never a draft: the hub makes recorded changes already scheduled.
            ChangeType::Recorded => {
                return Err(refused(
                    "recorded_change",
                    Some("type"),
                    "a recorded change is never submitted for approval",
                ));
            }
        }
        Ok(())
    }
}
