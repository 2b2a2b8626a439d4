//! Removing a wrong tag: a cab member or admin says an incident is not
//! related to a change, with a reason. The incident keeps the removal (so a
//! later correlation never relates the change again); the change drops the
//! incident with an audited `incident_unrelated` update that takes back the
//! failure the incident counted.

use super::{ChangeError, ChangeStore, Changes, check_text};
use crate::app::tagging::failure_bumps;
use crate::domain::access::Caller;
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::Role;
use crate::domain::incident::{Incident, IncidentId, RemovedTag};
use crate::domain::{Change, ChangeId, TenantId};
use crate::ports::{ChangeReader, ChangeUpdate, ChangeWriter, Clock, StoreError};

/// Reads and writes of one record before giving up to concurrent writers.
const ATTEMPTS: usize = 8;

/// `POST /incidents/{id}/unrelate`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnrelateRequest {
    pub change_id: ChangeId,
    pub reason: String,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Removes the tag relating incident `id` to `req.change_id`: the
    /// incident record as written. Again after a partial failure, it
    /// finishes the change's side.
    pub async fn unrelate(&self, caller: &Caller, id: &str, req: UnrelateRequest) -> Result<Incident, ChangeError> {
        check_text("reason", Some(&req.reason), true)?;
        let (access, _) = self.access(caller).await?;
        access.require(&[Role::Cab, Role::Admin], "removing an incident's related change")?;
        let missing = || ChangeError::Missing(format!("no incident {id:?}"));
        let incident_id = IncidentId::parse(id).map_err(|_| missing())?;
        let reason = req.reason.trim().to_owned();
        let mut incident = None;
        for _ in 0..ATTEMPTS {
            let current = self.store.get_incident(&caller.tenant, &incident_id).await?.ok_or_else(missing)?;
            let related = current.related_changes.iter().any(|r| r.change_id == req.change_id);
            let removed = current.removed_changes.iter().any(|r| r.change_id == req.change_id);
            if !related && !removed {
                return Err(ChangeError::Missing(format!(
                    "incident {id:?} is not related to change {}",
                    req.change_id
                )));
            }
            if !related {
                incident = Some(current);
                break;
            }
            let mut next = current.clone();
            next.related_changes.retain(|r| r.change_id != req.change_id);
            next.change_related = !next.related_changes.is_empty();
            next.removed_changes.push(RemovedTag {
                change_id: req.change_id,
                removed_by: caller.user.clone(),
                removed_at: self.clock.now(),
                reason: reason.clone(),
            });
            next.version += 1;
            match self.store.put_incident(Some(&current), &next).await {
                Ok(()) => {
                    incident = Some(next);
                    break;
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let incident = incident.ok_or_else(|| contended(id))?;
        let (tenant, user) = (&caller.tenant, &caller.user);
        unlist(&self.store, &self.clock, tenant, &incident.id, req.change_id, user, &reason).await?;
        Ok(incident)
    }
}

/// Takes incident `incident` off change `id`'s `related_incidents` with an
/// audited `incident_unrelated` update by `actor` saying `why`, and takes
/// back the failure it counted: nothing when the change is gone or does not
/// list the incident. The cab's removal and a re-correlation that no longer
/// relates the change both end here.
pub(crate) async fn unlist<S: ChangeReader + ChangeWriter, C: Clock>(
    store: &S,
    clock: &C,
    tenant: &TenantId,
    incident: &IncidentId,
    id: ChangeId,
    actor: &str,
    why: &str,
) -> Result<(), StoreError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = store.get_change(tenant, &id).await? else { return Ok(()) };
        let Some(at) = current.related_incidents.iter().position(|r| r.incident_id == incident.as_str()) else {
            return Ok(());
        };
        let (next, bumps) = unlisted(&current, at, clock.now());
        let reason = format!("incident {incident} is not related to the change: {why}");
        let (next, entry) = audit::record(Some(&current), next, actor, AuditAction::IncidentUnrelated, Some(reason));
        let update = ChangeUpdate {
            before: &current,
            change: &next,
            entries: &[entry],
            bumps: &bumps,
            volumes: &[],
            waits: &[],
        };
        match store.update_change(update).await {
            Ok(()) => {
                tracing::info!(change_id = %id, %incident, why, "incident unrelated from change");
                return Ok(());
            }
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(contended(&id.to_string()))
}

/// The change without its related incident `at`, and what that takes back
/// from the failure counters: nothing when another related incident
/// carries the count on (it takes over the month counted).
fn unlisted(current: &Change, at: usize, now: chrono::DateTime<chrono::Utc>) -> (Change, Vec<crate::ports::Bump>) {
    let mut next = current.revised(now);
    let gone = next.related_incidents.remove(at);
    next.refresh_postmortem();
    let Some(month) = gone.counted else { return (next, vec![]) };
    match next.related_incidents.first_mut() {
        Some(heir) => {
            heir.counted = Some(month);
            (next, vec![])
        }
        None => (next, failure_bumps(current, &month, -1)),
    }
}

fn contended(what: &str) -> StoreError {
    StoreError::backend(true, format!("{what} kept changing under concurrent writers"))
}
