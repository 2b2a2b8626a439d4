//! Out of order: a change event that arrives after the incidents it may
//! have caused. Delivery is unordered, so the correlate consumer also reads
//! the change events that set or move a change's implementation
//! ([`DETAIL_TYPES`]) and hands back to [`Tagging::tag`] every incident the
//! change may explain: those started in its window on the services it
//! exposes ([`Exposed`]: its own and the services that depend on them,
//! within each one's hops), and those it already lists (a moved
//! implementation may no longer relate them).
//!
//! Reads are keyed by service and start time (each exposed service's
//! incident index, all pages), never a scan; the event's times are never
//! compared, only the change's recorded implementation and the incidents'
//! own starts, so a replay gives the same answer.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::app::tagging::{TagError, TagStore, Tagging};
use crate::domain::correlation::Exposed;
use crate::domain::incident::{Incident, IncidentId};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{CatalogReader, Clock, IncidentQuery, MAX_PAGE};

/// The change events whose audited write sets or moves `Change::implementation`:
/// the transitions that start and end it (through the API or a deployment),
/// and a deployment recorded on a change already where it says (its times re-date it).
pub const DETAIL_TYPES: [&str; 6] = [
    "Change Implementing",
    "Change Verifying",
    "Change Completed",
    "Change Failed",
    "Change Rolled Back",
    "Change Deployment Recorded",
];

/// What the consumer reads of a change event's detail.
#[derive(Debug, Deserialize)]
struct ChangeEvent {
    tenant: TenantId,
    change_id: ChangeId,
}

/// The incidents a change event sends back to tagging.
#[derive(Debug, Clone, PartialEq)]
pub enum Exposure {
    /// None, and why.
    Skipped(&'static str),
    /// The incidents the change may explain, by id, and how many records were read to find them.
    Incidents { change: ChangeId, incidents: Vec<Incident>, read: usize },
}

impl<S: TagStore, K: CatalogReader, C: Clock> Tagging<S, K, C> {
    /// The incidents the change a change event names may explain: none for
    /// a change that is gone, has not started implementing or is not a
    /// production change.
    pub async fn exposed_by(&self, detail_type: &str, detail: &serde_json::Value) -> Result<Exposure, TagError> {
        let event = ChangeEvent::deserialize(detail)
            .map_err(|e| TagError::Unreadable { detail_type: detail_type.to_owned(), message: e.to_string() })?;
        let Some(change) = self.store.get_change(&event.tenant, &event.change_id).await? else {
            return Ok(Exposure::Skipped("the change is gone"));
        };
        let Some(implementation) = change.implementation else {
            return Ok(Exposure::Skipped("the change has not started implementing"));
        };
        let view = self.catalog.catalog(&change.tenant).await?;
        if !view.catalog.correlation.is_production(&change.environment) {
            return Ok(Exposure::Skipped("not a production change"));
        }
        let mut found = BTreeMap::new();
        let mut read = 0;
        for exposed in Exposed::of(&view.catalog, &change.services) {
            let (since, until) = exposed.started_between(&implementation);
            let mut query = IncidentQuery {
                service: Some(exposed.service),
                since: Some(since),
                until,
                ..IncidentQuery::new(change.tenant.clone(), MAX_PAGE)
            };
            loop {
                let page = self.store.incidents(&query).await?;
                read += page.items.len();
                found.extend(page.items.into_iter().map(|i| (i.id.clone(), i)));
                match page.next {
                    Some(next) => query.after = Some(next),
                    None => break,
                }
            }
        }
        for listed in &change.related_incidents {
            let Ok(id) = IncidentId::parse(&listed.incident_id) else { continue };
            if found.contains_key(&id) {
                continue;
            }
            if let Some(incident) = self.store.get_incident(&change.tenant, &id).await? {
                read += 1;
                found.insert(id, incident);
            }
        }
        tracing::info!(
            tenant = %change.tenant, change_id = %change.id, items_read = read, incidents = found.len(),
            "incidents the change may explain"
        );
        Ok(Exposure::Incidents { change: change.id, incidents: found.into_values().collect(), read })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{self, AuditAction};
    use crate::domain::correlation::{Implementation, Outcome};
    use crate::domain::{ChangeState, HubEvent, NewChange};
    use chrono::{Duration, TimeZone, Utc};
    use std::collections::BTreeSet;

    /// The transitions whose write sets or moves the implementation are
    /// exactly the change events the consumer re-checks on, with the
    /// deployment recorded on a change already where it says (the
    /// deployments consumer's `settle`, the only other writer of it).
    #[test]
    fn the_rechecked_events_are_the_writes_that_move_an_implementation() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().unwrap_or_default();
        let draft = NewChange::basic("x", &["payments"], "production", t0, t0 + Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), t0);
        let implementations = [
            None,
            Some(Implementation::Ongoing { started_at: t0 }),
            Some(Implementation::Finished { started_at: t0, ended_at: t0, outcome: Outcome::Failed }),
        ];
        let mut moving = BTreeSet::from(["Change Deployment Recorded".to_owned()]);
        for from in ChangeState::ALL {
            for implementation in implementations {
                let before = crate::domain::Change { state: from, implementation, ..draft.clone() };
                for to in ChangeState::ALL.into_iter().filter(|to| from.can_move_to(*to)) {
                    let next = before.transition(to, t0 + Duration::minutes(5)).expect("allowed");
                    let (next, entry) = audit::record(Some(&before), next, "alice", AuditAction::Transitioned, None);
                    if next.implementation != before.implementation {
                        moving.insert(HubEvent::change_mutated(&next, &entry).detail_type);
                    }
                }
            }
        }
        assert_eq!(moving, DETAIL_TYPES.map(str::to_owned).into_iter().collect());
    }
}
