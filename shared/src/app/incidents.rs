//! Incident records from canonical hub events: `Incident Triggered /
//! Acknowledged / Resolved / Reopened / Priority Changed` (PagerDuty,
//! incident.io), `Alert Firing / Resolved` (Alertmanager) and `Alarm State
//! Changed` (CloudWatch, ALARM and back to OK) each update the record of
//! their tenant, source and external id.
//!
//! **Idempotent by construction.** The record is a fold of its events that
//! does not depend on their order and that a repeated event leaves as it was
//! ([`Incident::apply`]): a duplicate delivery reads the record, finds
//! nothing to change and writes nothing, so no claim is needed. Writes are
//! conditional on the version and retried on conflict.
//!
//! **The hold.** A major incident opening adds it to the tenant's open major
//! incidents (the `incidents` document the change gates read with one
//! GetItem); resolving it, or lowering its priority, takes it off
//! ([`crate::app::governance::hold`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::app::governance;
use crate::domain::incident::{Incident, IncidentEvent, IncidentId, MajorRule, Signal, Source};
use crate::domain::{ServiceName, TenantId};
use crate::ingest::Fact;
use crate::ingest::canonical::{Alarm, Alert, Detail, Incident as IncidentFact, Origin};
use crate::ports::{Clock, IncidentQuery, IncidentStore, Page, StoreError, TenantDocs};

/// The canonical detail-types this consumer applies.
pub const DETAIL_TYPES: [&str; 8] = [
    "Incident Triggered",
    "Incident Acknowledged",
    "Incident Resolved",
    "Incident Reopened",
    "Incident Priority Changed",
    "Alert Firing",
    "Alert Resolved",
    "Alarm State Changed",
];

/// How many times a write that lost a race is tried again.
const ATTEMPTS: usize = 5;

/// An event this consumer cannot read.
#[derive(Debug, thiserror::Error)]
pub enum IncidentEventError {
    #[error("detail of a {detail_type:?} event: {message}")]
    Malformed { detail_type: String, message: String },
    #[error("detail names tenant {0:?}, which is not a tenant id")]
    Tenant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Not an incident (an alarm's INSUFFICIENT_DATA, an OK that ends no ALARM...).
    Ignored(&'static str),
    /// The record already said everything the event says (a duplicate).
    Unchanged(Box<Incident>),
    /// The record as written.
    Written(Box<Incident>),
}

/// One canonical event, read for the incident it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentUpdate {
    pub tenant: TenantId,
    pub source: Source,
    pub external_id: String,
    pub event: IncidentEvent,
}

/// Reads a hub event's `detail` of `detail_type`: the incident update it
/// carries, `None` when it is about no incident.
pub fn update_of(detail_type: &str, detail: &serde_json::Value) -> Result<Option<IncidentUpdate>, IncidentEventError> {
    let malformed = |e: serde_json::Error| IncidentEventError::Malformed {
        detail_type: detail_type.to_owned(),
        message: e.to_string(),
    };
    let envelope: Detail<serde_json::Value> = Detail::deserialize(detail).map_err(malformed)?;
    let tagged = serde_json::json!({"detail_type": detail_type, "data": envelope.data});
    let fact = Fact::deserialize(&tagged).map_err(malformed)?;
    let tenant = TenantId::parse(&envelope.tenant).map_err(|_| IncidentEventError::Tenant(envelope.tenant.clone()))?;
    let Some((source, signal, mut event)) = read_fact(envelope.origin, &fact, envelope.occurred_at) else {
        return Ok(None);
    };
    event.event_id = envelope.event_id;
    event.at = envelope.occurred_at;
    event.signal = Some(signal);
    event.service = envelope.service.as_deref().and_then(|s| ServiceName::parse(s).ok());
    event.service_reason = match (&event.service, envelope.service_resolution.reason) {
        (None, None) => envelope.service.map(|s| format!("{s:?} is not a catalog service name")),
        (_, reason) => reason,
    };
    event.environment = envelope.environment;
    event.link = envelope.url;
    Ok(Some(IncidentUpdate { tenant, source, external_id: envelope.external_id, event }))
}

/// The source, the signal and what the fact itself says.
fn read_fact(origin: Origin, fact: &Fact, at: DateTime<Utc>) -> Option<(Source, Signal, IncidentEvent)> {
    let incident = |signal: Signal, i: &IncidentFact| {
        let source = if origin == Origin::Incidentio { Source::Incidentio } else { Source::Pagerduty };
        // incident.io names a severity where PagerDuty names a priority.
        let (priority, severity) = match source {
            Source::Incidentio => (None, i.priority.clone()),
            _ => (i.priority.clone(), None),
        };
        let event = IncidentEvent {
            started_at: i.created_at,
            title: Some(i.title.clone()).filter(|t| !t.is_empty()),
            priority,
            urgency: i.urgency.clone(),
            severity,
            ..IncidentEvent::default()
        };
        Some((source, signal, event))
    };
    let alert = |signal: Signal, a: &Alert| {
        let event = IncidentEvent {
            started_at: Some(a.starts_at),
            title: Some(a.summary.clone().unwrap_or_else(|| a.alertname.clone())),
            severity: a.labels.get("severity").cloned(),
            fingerprint: Some(a.fingerprint.clone()),
            ..IncidentEvent::default()
        };
        Some((Source::Alertmanager, signal, event))
    };
    match fact {
        Fact::IncidentTriggered(i) => incident(Signal::Triggered, i),
        Fact::IncidentAcknowledged(i) => incident(Signal::Acknowledged, i),
        Fact::IncidentResolved(i) => incident(Signal::Resolved, i),
        Fact::IncidentReopened(i) => incident(Signal::Reopened, i),
        Fact::IncidentPriorityChanged(i) => incident(Signal::PriorityChanged, i),
        Fact::AlertFiring(a) => alert(Signal::Triggered, a),
        Fact::AlertResolved(a) => alert(Signal::Resolved, a),
        Fact::AlarmStateChanged(a) => alarm(a, at),
        _ => None,
    }
}

/// An alarm entering ALARM triggers; one going from ALARM to OK resolves;
/// any other state change is no incident.
fn alarm(a: &Alarm, at: DateTime<Utc>) -> Option<(Source, Signal, IncidentEvent)> {
    let signal = match (a.state.as_str(), a.previous_state.as_deref()) {
        ("ALARM", _) => Signal::Triggered,
        ("OK", Some("ALARM")) => Signal::Resolved,
        _ => return None,
    };
    let event = IncidentEvent {
        // The state change is the alarm's own time: the start of an ALARM.
        started_at: (signal == Signal::Triggered).then_some(at),
        title: Some(a.alarm_name.clone()),
        resources: a.alarm_arn.iter().cloned().collect(),
        ..IncidentEvent::default()
    };
    Some((Source::Cloudwatch, signal, event))
}

/// Why an event [`update_of`] reads as none is ignored.
pub const NOT_AN_INCIDENT: &str = "not an incident: an alarm state other than ALARM, or OK after no ALARM";

/// Applies incident events to their records.
pub struct Incidents<'a, S, C> {
    pub store: &'a S,
    pub clock: &'a C,
    pub rule: MajorRule,
}

impl<'a, S: IncidentStore + TenantDocs, C: Clock> Incidents<'a, S, C> {
    pub fn new(store: &'a S, clock: &'a C) -> Self {
        Incidents { store, clock, rule: MajorRule::default() }
    }

    /// Applies a hub event (its `detail-type` and `detail`) to its record.
    pub async fn apply_event(
        &self,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<Applied, IncidentEventError> {
        match update_of(detail_type, detail)? {
            None => Ok(Applied::Ignored(NOT_AN_INCIDENT)),
            Some(update) => Ok(self.apply(&update).await?),
        }
    }

    /// Applies one update: read, fold, write conditionally (again on a
    /// conflict), then bring the tenant's open major incidents up to date.
    pub async fn apply(&self, update: &IncidentUpdate) -> Result<Applied, StoreError> {
        let id = IncidentId::of(&update.tenant, update.source, &update.external_id);
        for _ in 0..ATTEMPTS {
            let before = self.store.get_incident(&update.tenant, &id).await?;
            let mut after = match &before {
                Some(b) => {
                    let mut a = b.clone();
                    a.apply(&update.event, &self.rule);
                    a
                }
                None => Incident::new(&update.tenant, update.source, &update.external_id, &update.event, &self.rule),
            };
            let was_major = before.as_ref().is_some_and(Incident::is_open_major);
            if before.as_ref() == Some(&after) {
                // Also after a write whose hold update failed: bring the hold up to date again.
                if was_major {
                    governance::hold(self.store, self.clock, &after).await?;
                }
                return Ok(Applied::Unchanged(Box::new(after)));
            }
            after.version = before.as_ref().map_or(0, |b| b.version) + 1;
            match self.store.put_incident(before.as_ref(), &after).await {
                Ok(()) => {}
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
            tracing::info!(
                tenant = %after.tenant, incident = %after.id, source = after.source.as_str(),
                external_id = %after.external_id, status = after.status.as_str(), major = after.major,
                version = after.version, "incident record written"
            );
            if was_major || after.is_open_major() {
                governance::hold(self.store, self.clock, &after).await?;
            }
            return Ok(Applied::Written(Box::new(after)));
        }
        Err(StoreError::backend(true, "the incident record kept changing under concurrent writers"))
    }
}

/// `GET /incidents`: every filter optional; `since`/`until` bound `started_at`.
#[derive(Debug, Clone, Default)]
pub struct IncidentRequest {
    pub source: Option<Source>,
    pub external_id: Option<String>,
    pub service: Option<String>,
    pub status: Option<crate::domain::incident::Status>,
    pub major: Option<bool>,
    pub change_related: Option<bool>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl<S: crate::app::changes::ChangeStore, C: Clock> crate::app::Changes<S, C> {
    /// A page of the caller's tenant's incident records, newest first by
    /// start. Any role that reads changes reads them. With `source` and
    /// `external_id` both given, one read of the record's own key.
    pub async fn incidents(
        &self,
        caller: &crate::app::Caller,
        req: IncidentRequest,
    ) -> Result<Page<Incident>, crate::app::ChangeError> {
        self.reader(caller, "reading incidents").await?;
        let (limit, after) = crate::app::changes::page(req.limit, req.cursor.as_deref())?;
        let service = req.service.as_deref().map(ServiceName::parse).transpose()?;
        crate::app::activity::time_range(req.since, req.until)?;
        let query = IncidentQuery {
            service,
            source: req.source,
            external_id: req.external_id,
            status: req.status,
            major: req.major,
            change_related: req.change_related,
            since: req.since,
            until: req.until,
            after,
            ..IncidentQuery::new(caller.tenant.clone(), limit)
        };
        if let (Some(source), Some(external_id), None) = (query.source, &query.external_id, &query.after) {
            let id = IncidentId::of(&caller.tenant, source, external_id);
            let found = self.store.get_incident(&caller.tenant, &id).await?;
            return Ok(Page { items: found.into_iter().filter(|i| query.matches(i)).collect(), next: None });
        }
        Ok(self.store.incidents(&query).await?)
    }

    /// One incident record of the caller's tenant.
    pub async fn incident(&self, caller: &crate::app::Caller, id: &str) -> Result<Incident, crate::app::ChangeError> {
        self.reader(caller, "reading incidents").await?;
        let missing = || crate::app::ChangeError::Missing(format!("no incident {id:?}"));
        let id = IncidentId::parse(id).map_err(|_| missing())?;
        self.store.get_incident(&caller.tenant, &id).await?.ok_or_else(missing)
    }
}
