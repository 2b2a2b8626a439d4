//! The rules a change meets on its way: conflicting changes, freeze
//! windows and major incidents.

use chrono::{DateTime, Utc};
use std::collections::HashSet;

use super::{ChangeError, ChangeStore, Changes, MAX_CONFLICT_SERVICES, refused};
use crate::app::governance::{Freezes, Incidents, MajorIncident, read_doc};
use crate::domain::access::{Caller, Forbidden};
use crate::domain::catalog::CatalogView;
use crate::domain::change::Conflict;
use crate::domain::risk::RiskLevel;
use crate::domain::{Change, ChangeState, ChangeType, ServiceName};
use crate::domain::{freeze, gate};
use crate::ports::{Clock, DocKind, MAX_PAGE, ServiceWindowQuery};

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Other live changes whose planned windows overlap `change`'s on its
    /// services or on the services they depend on (one index query per service).
    pub(super) async fn conflicts(&self, view: &CatalogView, change: &Change) -> Result<Vec<Conflict>, ChangeError> {
        let mut targets: Vec<(ServiceName, String)> = Vec::new();
        for s in &change.services {
            targets.push((s.clone(), "same service".to_owned()));
        }
        for s in &change.services {
            for dep in view.catalog.service(s).map(|svc| svc.depends_on.as_slice()).unwrap_or_default() {
                targets.push((dep.clone(), format!("{s} depends on {dep}")));
            }
        }
        let mut seen = HashSet::new();
        targets.retain(|(s, _)| seen.insert(s.clone()));
        targets.truncate(MAX_CONFLICT_SERVICES);
        let mut found: Vec<Conflict> = Vec::new();
        for (service, reason) in targets {
            let query = ServiceWindowQuery {
                tenant: change.tenant.clone(),
                service: service.clone(),
                from: change.planned_start,
                to: change.planned_end,
                limit: MAX_PAGE,
                after: None,
            };
            for other in self.store.changes_for_service(&query).await?.items {
                let live = matches!(
                    other.state,
                    ChangeState::Submitted
                        | ChangeState::Approved
                        | ChangeState::Scheduled
                        | ChangeState::Implementing
                        | ChangeState::Verifying
                );
                let overlaps = other.planned_start < change.planned_end && change.planned_start < other.planned_end;
                if other.id != change.id && live && overlaps && !found.iter().any(|c| c.change_id == other.id) {
                    found.push(Conflict {
                        change_id: other.id,
                        title: other.title.clone(),
                        state: other.state,
                        service: service.clone(),
                        reason: reason.clone(),
                        planned_start: other.planned_start,
                        planned_end: other.planned_end,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Refuses work during `[start, end)` that enters a freeze window, unless
    /// an emergency change records an override reason; returns the audit text
    /// of an override. A draft emergency may ask for the override when it is
    /// submitted; the override holds only once someone other than its
    /// requester approved the emergency, so scheduling and implementing check
    /// that.
    pub(super) async fn freeze_gate(
        &self,
        change: &Change,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        override_reason: Option<&str>,
        verb: &str,
    ) -> Result<Option<String>, ChangeError> {
        let (freezes, _): (Freezes, u64) = read_doc(&self.store, &change.tenant, DocKind::Freezes).await?;
        let Some((window, occurrence)) = freeze::blocking(&freezes.windows, &change.services, start, end) else {
            return Ok(None);
        };
        let described = window.describe(&occurrence);
        let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
        match (reason, change.change_type) {
            (Some(reason), ChangeType::Emergency) if change.state == ChangeState::Draft => Ok(Some(format!(
                "freeze override requested, to hold once another person approves ({described}): {reason}"
            ))),
            (Some(reason), ChangeType::Emergency) if change.approved_by_another() => {
                Ok(Some(format!("freeze override ({described}): {reason}")))
            }
            (Some(_), ChangeType::Emergency) => Err(refused(
                "freeze_window",
                Some("override_reason"),
                format!(
                    "{verb} this change enters a {described}; an emergency overrides a freeze only once someone other than its requester approved it (POST /changes/{}/decisions)",
                    change.id
                ),
            )),
            (_, ChangeType::Emergency) => Err(refused(
                "freeze_window",
                Some("override_reason"),
                format!(
                    "{verb} this change enters a {described}; as an emergency it may proceed with an override_reason, which is audited"
                ),
            )),
            _ => Err(refused(
                "freeze_window",
                Some("planned_start"),
                format!(
                    "{verb} this change enters a {described}; move its planned window, or only an emergency change with an override_reason may enter a freeze"
                ),
            )),
        }
    }

    /// The tenant's open major incident `id`, if it is open.
    pub(super) async fn open_incident(
        &self,
        tenant: &crate::domain::TenantId,
        id: &str,
    ) -> Result<Option<MajorIncident>, ChangeError> {
        let (incidents, _): (Incidents, u64) = read_doc(&self.store, tenant, DocKind::Incidents).await?;
        Ok(incidents.open.into_iter().find(|i| i.id == id))
    }

    /// The open major incidents that hold `change`: on its services while it
    /// is high risk, except the one an approved emergency names (it fixes it).
    async fn holding(&self, change: &Change) -> Result<Vec<MajorIncident>, ChangeError> {
        if change.risk.as_ref().is_none_or(|r| r.level < RiskLevel::High) {
            return Ok(vec![]);
        }
        let (incidents, _): (Incidents, u64) = read_doc(&self.store, &change.tenant, DocKind::Incidents).await?;
        Ok(incidents.open.into_iter().filter(|i| gate::holds(change, &i.id, &i.services)).collect())
    }

    /// Whether `caller` commands every open major incident holding `change`
    /// (and one does): the commander may schedule or start it.
    pub(super) async fn commands_hold(&self, caller: &Caller, change: &Change) -> Result<bool, ChangeError> {
        let holding = self.holding(change).await?;
        Ok(!holding.is_empty() && holding.iter().all(|i| i.commander == caller.user))
    }

    /// Refuses scheduling (or starting) a high-risk change on a service with
    /// an open major incident, unless that incident's commander moves it
    /// with a reason. An approved emergency is not held up by the incident
    /// it fixes. Dual control: a commander does not lift the hold on a change
    /// they requested themselves.
    pub(super) async fn incident_gate(
        &self,
        caller: &Caller,
        change: &Change,
        override_reason: Option<&str>,
        verb: &str,
    ) -> Result<Option<String>, ChangeError> {
        let blocking = self.holding(change).await?;
        if blocking.is_empty() {
            return Ok(None);
        }
        let commands_all = blocking.iter().all(|i| i.commander == caller.user);
        let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
        let names = blocking
            .iter()
            .map(|i| format!("{} \"{}\" (commander {})", i.id, i.title, i.commander))
            .collect::<Vec<_>>();
        match reason {
            Some(_) if commands_all && caller.user == change.requester => Err(Forbidden(format!(
                "dual control: {} requested this change, and the commander of major incident {} does not lift its hold on their own change; it waits until the incident is resolved",
                caller.user,
                names.join(", ")
            ))
            .into()),
            Some(reason) if commands_all => Ok(Some(format!(
                "authorized by incident commander {} during major incident {}: {reason}",
                caller.user,
                names.join(", ")
            ))),
            _ => Err(refused(
                "major_incident",
                Some("override_reason"),
                format!(
                    "a {} risk change cannot be {verb} while major incident {} is open on its services, unless the incident commander does it with an override_reason",
                    change.risk.as_ref().map_or("high", |r| r.level.as_str()),
                    names.join(", ")
                ),
            )),
        }
    }
}
