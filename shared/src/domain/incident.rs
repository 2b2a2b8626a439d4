//! Incident records: one per tenant, source and external id, folded from the
//! source's events (PagerDuty and incident.io incidents, Alertmanager alerts,
//! CloudWatch alarms) or declared in the hub (`POST /incidents`).
//!
//! **A fold of facts.** Every field is decided by the events' own times, never
//! by the order they arrive in: a field takes the value of the latest event
//! that says something about it (ties by event id); `started_at` is the
//! earliest start known, preferring the source's own start (`created_at`, an
//! alert's `startsAt`) to a trigger's time and that to any other event's time;
//! `acknowledged_at` is the first acknowledgement; the status is the latest
//! event's (at one instant, resolved over acknowledged over triggered);
//! resources and links are unions. So applying the same events in any order,
//! duplicates included, gives the same record ([`Incident::apply`]), and a
//! duplicate changes nothing.
//!
//! **Major incidents** ([`MajorRule`], the tenant's catalog `incidents.major`;
//! by default PagerDuty urgency `high` or priority `P1`; incident.io severity
//! `SEV1` or `Critical`; an Alertmanager alert labelled `severity=critical`);
//! every incident declared in the hub. CloudWatch alarms carry no severity,
//! so they are never major.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod major;
pub use major::{IncidentPolicy, MajorRule};

use super::correlation::{IncidentFacts, Reason};
use super::ids::{ChangeId, ServiceName, TenantId};
use super::validation::FieldError;

/// Most resources and links a record keeps (the first ones in sort order).
pub const MAX_RESOURCES: usize = 20;
pub const MAX_LINKS: usize = 10;

/// Where an incident comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Pagerduty,
    Incidentio,
    Alertmanager,
    Cloudwatch,
    /// Declared in the hub (`POST /incidents`).
    Hub,
}

impl Source {
    pub const ALL: [Source; 5] =
        [Source::Pagerduty, Source::Incidentio, Source::Alertmanager, Source::Cloudwatch, Source::Hub];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pagerduty => "pagerduty",
            Source::Incidentio => "incidentio",
            Source::Alertmanager => "alertmanager",
            Source::Cloudwatch => "cloudwatch",
            Source::Hub => "hub",
        }
    }
}

/// A record's id: derived from its tenant, source and external id, so one
/// incident seen by two consumers (or twice) is one record, and a lookup by
/// source and external id is one read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IncidentId(String);

const ID_PREFIX: &str = "inc_";

impl IncidentId {
    pub fn of(tenant: &TenantId, source: Source, external_id: &str) -> IncidentId {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{tenant}\n{}\n{external_id}", source.as_str()).as_bytes());
        IncidentId(format!("{ID_PREFIX}{}", hex::encode(&digest[..16])))
    }

    pub fn parse(s: &str) -> Result<IncidentId, FieldError> {
        match s.strip_prefix(ID_PREFIX) {
            Some(hex) if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
                Ok(IncidentId(s.to_owned()))
            }
            _ => Err(FieldError::new("id", format!("{s:?} is not an incident id (inc_ and 32 hex digits)"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IncidentId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        IncidentId::parse(&s)
    }
}

impl From<IncidentId> for String {
    fn from(id: IncidentId) -> String {
        id.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Triggered,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

/// What an event says happened to the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Triggered, an alert firing, an alarm entering ALARM.
    Triggered,
    Acknowledged,
    /// Resolved, an alert resolved, an alarm back to OK.
    Resolved,
    Reopened,
    /// Its priority, urgency or severity changed; its status did not.
    PriorityChanged,
}

impl Signal {
    fn status(self) -> Option<Status> {
        match self {
            Signal::Triggered | Signal::Reopened => Some(Status::Triggered),
            Signal::Acknowledged => Some(Status::Acknowledged),
            Signal::Resolved => Some(Status::Resolved),
            Signal::PriorityChanged => None,
        }
    }
}

/// One event about an incident, as its source said it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncidentEvent {
    /// The hub event's id: ties between events at one instant go by it.
    pub event_id: String,
    /// When it happened, by the source's clock.
    pub at: DateTime<Utc>,
    pub signal: Option<Signal>,
    /// When the incident started, when the source says (`created_at`, `startsAt`).
    pub started_at: Option<DateTime<Utc>>,
    pub title: Option<String>,
    pub service: Option<ServiceName>,
    /// Why the service is unknown, when it is.
    pub service_reason: Option<String>,
    pub environment: Option<String>,
    pub resources: Vec<String>,
    pub priority: Option<String>,
    pub urgency: Option<String>,
    pub severity: Option<String>,
    pub link: Option<String>,
    pub fingerprint: Option<String>,
}

/// Who declared an incident in the hub, who commands it, and what it affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    pub commander: String,
    pub declared_by: String,
    pub services: Vec<ServiceName>,
}

/// A change the correlation relates the incident to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedChangeRef {
    pub change_id: ChangeId,
    pub reasons: Vec<Reason>,
    /// In (0, 1].
    pub confidence: f64,
    pub explanation: String,
}

/// A tag removed as wrong: which change, by whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedTag {
    pub change_id: ChangeId,
    pub removed_by: String,
    pub removed_at: DateTime<Utc>,
    pub reason: String,
}

/// The event that last set a field: its time, then its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub event_id: String,
}

/// What the start time was taken from, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartedFrom {
    /// The source's own start (`created_at`, `startsAt`).
    Source,
    /// The time of the first trigger.
    Trigger,
    /// The time of the earliest event seen (no trigger seen yet).
    FirstEvent,
}

/// The fields an event may set, each kept with the [`Stamp`] that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Title,
    Service,
    ServiceReason,
    Environment,
    Priority,
    Urgency,
    Severity,
    Fingerprint,
}

/// What the fold keeps beside the fields, so events merge in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The event that set each field.
    #[serde(default)]
    pub fields: BTreeMap<Field, Stamp>,
    /// The event that set the status (ties at one instant: resolved, then acknowledged, then triggered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Stamp>,
    pub started_from: Option<StartedFrom>,
}

/// An incident record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub tenant: TenantId,
    pub source: Source,
    /// The source's own id: PagerDuty or incident.io incident id, alert
    /// fingerprint, alarm ARN, or the id it was declared with.
    pub external_id: String,
    pub title: String,
    /// The catalog service, or `None` with [`Incident::service_reason`].
    pub service: Option<ServiceName>,
    pub service_reason: Option<String>,
    /// The environment, when the source says (an alert's label).
    pub environment: Option<String>,
    /// Resources the source names (an alarm's ARN...).
    #[serde(default)]
    pub resources: Vec<String>,
    pub severity: Option<String>,
    pub priority: Option<String>,
    pub urgency: Option<String>,
    /// Holds high-risk changes to its services while open (see [`MajorRule`]).
    pub major: bool,
    pub status: Status,
    /// When it started, by the source's clock (never the time it was received).
    pub started_at: DateTime<Utc>,
    /// The first acknowledgement.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was resolved, while it is.
    pub resolved_at: Option<DateTime<Utc>>,
    /// `resolved_at - started_at`, in seconds, while it is resolved.
    pub time_to_restore_seconds: Option<i64>,
    #[serde(default)]
    pub links: Vec<String>,
    /// An alert's fingerprint.
    pub fingerprint: Option<String>,
    /// Set on incidents declared in the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<Declaration>,
    /// Whether at least one change is related to it.
    #[serde(default)]
    pub change_related: bool,
    #[serde(default)]
    pub related_changes: Vec<RelatedChangeRef>,
    /// Tags a cab member or admin removed as wrong: a later correlation
    /// never relates these changes again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_changes: Vec<RemovedTag>,
    pub version: u64,
    /// The time of the latest event applied, by its source's clock.
    pub updated_at: DateTime<Utc>,
    /// The stamps that let events merge in any order.
    #[serde(default)]
    pub observed: Observed,
}

impl Incident {
    /// The record of one event, before anything else is known.
    pub fn new(tenant: &TenantId, source: Source, external_id: &str, event: &IncidentEvent, rule: &MajorRule) -> Self {
        let mut incident = Incident {
            id: IncidentId::of(tenant, source, external_id),
            tenant: tenant.clone(),
            source,
            external_id: external_id.to_owned(),
            title: String::new(),
            service: None,
            service_reason: None,
            environment: None,
            resources: vec![],
            severity: None,
            priority: None,
            urgency: None,
            major: false,
            status: Status::Triggered,
            started_at: event.at,
            acknowledged_at: None,
            resolved_at: None,
            time_to_restore_seconds: None,
            links: vec![],
            fingerprint: None,
            declared: None,
            change_related: false,
            related_changes: vec![],
            removed_changes: vec![],
            version: 0,
            updated_at: event.at,
            observed: Observed::default(),
        };
        incident.apply(event, rule);
        incident
    }

    /// An incident declared in the hub: major, triggered at `at`.
    pub fn declared(
        tenant: &TenantId,
        external_id: &str,
        title: &str,
        declaration: Declaration,
        at: DateTime<Utc>,
    ) -> Self {
        let event = IncidentEvent {
            event_id: format!("hub-declared-{}", at.timestamp_micros()),
            at,
            signal: Some(Signal::Triggered),
            started_at: Some(at),
            title: Some(title.to_owned()),
            service: declaration.services.first().cloned(),
            ..IncidentEvent::default()
        };
        let mut incident = Incident::new(tenant, Source::Hub, external_id, &event, &MajorRule::default());
        incident.declared = Some(declaration);
        incident.major = true;
        incident
    }

    /// Merges one event in: the result does not depend on the order events
    /// come in, and applying one twice changes nothing.
    pub fn apply(&mut self, event: &IncidentEvent, rule: &MajorRule) {
        let stamp = Stamp { at: event.at, event_id: event.event_id.clone() };
        let fields = &mut self.observed.fields;
        let mut title = Some(std::mem::take(&mut self.title)).filter(|t| !t.is_empty());
        latest(fields, Field::Title, &stamp, event.title.as_ref(), &mut title);
        self.title = title.unwrap_or_default();
        latest(fields, Field::Service, &stamp, event.service.as_ref(), &mut self.service);
        latest(fields, Field::ServiceReason, &stamp, event.service_reason.as_ref(), &mut self.service_reason);
        if self.service.is_some() {
            self.service_reason = None;
        }
        latest(fields, Field::Environment, &stamp, event.environment.as_ref(), &mut self.environment);
        latest(fields, Field::Priority, &stamp, event.priority.as_ref(), &mut self.priority);
        latest(fields, Field::Urgency, &stamp, event.urgency.as_ref(), &mut self.urgency);
        latest(fields, Field::Severity, &stamp, event.severity.as_ref(), &mut self.severity);
        latest(fields, Field::Fingerprint, &stamp, event.fingerprint.as_ref(), &mut self.fingerprint);
        self.updated_at = self.updated_at.max(event.at);
        self.resources = union(&self.resources, &event.resources, MAX_RESOURCES);
        self.links = union(&self.links, event.link.as_slice(), MAX_LINKS);
        self.apply_times(event, &stamp);
        self.major = self.declared.is_some()
            || rule.is_major(self.source, self.priority.as_deref(), self.urgency.as_deref(), self.severity.as_deref());
    }

    fn apply_times(&mut self, event: &IncidentEvent, stamp: &Stamp) {
        let start = match (event.started_at, event.signal) {
            (Some(at), _) => (StartedFrom::Source, at),
            (None, Some(Signal::Triggered)) => (StartedFrom::Trigger, event.at),
            _ => (StartedFrom::FirstEvent, event.at),
        };
        match self.observed.started_from {
            Some(from) if (from, self.started_at) <= start => {}
            _ => (self.observed.started_from, self.started_at) = (Some(start.0), start.1),
        }
        if event.signal == Some(Signal::Acknowledged) && self.acknowledged_at.is_none_or(|a| event.at < a) {
            self.acknowledged_at = Some(event.at);
        }
        if let Some(status) = event.signal.and_then(Signal::status) {
            let newer = match &self.observed.status {
                None => true,
                Some(s) => (s.at, self.status, &s.event_id) < (stamp.at, status, &stamp.event_id),
            };
            if newer {
                self.status = status;
                self.observed.status = Some(stamp.clone());
            }
        }
        // Derived from the fields above, so as order-free as they are.
        self.resolved_at = match (&self.observed.status, self.status) {
            (Some(s), Status::Resolved) => Some(s.at),
            _ => None,
        };
        self.time_to_restore_seconds = self.resolved_at.map(|r| (r - self.started_at).num_seconds().max(0));
    }

    /// Whether it holds high-risk changes now: major and not resolved.
    pub fn is_open_major(&self) -> bool {
        self.major && self.status != Status::Resolved
    }

    /// What the correlation needs, when the service is known.
    /// Sets the changes a correlation relates (`related`, ranked), leaving
    /// out the tags removed as wrong; whether the record changed.
    pub fn relate(&mut self, related: Vec<RelatedChangeRef>) -> bool {
        let kept: Vec<RelatedChangeRef> =
            related.into_iter().filter(|r| !self.removed_changes.iter().any(|x| x.change_id == r.change_id)).collect();
        if kept == self.related_changes {
            return false;
        }
        self.change_related = !kept.is_empty();
        self.related_changes = kept;
        true
    }

    pub fn facts(&self) -> Option<IncidentFacts> {
        Some(IncidentFacts {
            service: self.service.clone()?,
            started_at: self.started_at,
            environment: self.environment.clone(),
            resources: self.resources.clone(),
        })
    }
}

/// Sets `slot` to `value` when the event says something and is later than
/// the one that last set the field.
fn latest<T: Clone>(
    fields: &mut BTreeMap<Field, Stamp>,
    field: Field,
    stamp: &Stamp,
    value: Option<&T>,
    slot: &mut Option<T>,
) {
    if let Some(v) = value
        && fields.get(&field).is_none_or(|s| stamp > s)
    {
        *slot = Some(v.clone());
        fields.insert(field, stamp.clone());
    }
}

/// The first `max` of both lists' values, sorted, each once.
fn union(a: &[String], b: &[String], max: usize) -> Vec<String> {
    let all: BTreeSet<&String> = a.iter().chain(b).collect();
    all.into_iter().take(max).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("tenant")
    }

    fn event(id: &str, at: &str, signal: Signal) -> IncidentEvent {
        IncidentEvent { event_id: id.into(), at: t(at), signal: Some(signal), ..IncidentEvent::default() }
    }

    fn fold(events: &[IncidentEvent]) -> Incident {
        let rule = MajorRule::default();
        let mut incident = Incident::new(&tenant(), Source::Pagerduty, "Q1", &events[0], &rule);
        for e in &events[1..] {
            incident.apply(e, &rule);
        }
        incident
    }

    #[test]
    fn the_id_is_derived_from_tenant_source_and_external_id() {
        let id = IncidentId::of(&tenant(), Source::Pagerduty, "Q1");
        assert_eq!(id, IncidentId::of(&tenant(), Source::Pagerduty, "Q1"));
        assert_ne!(id, IncidentId::of(&tenant(), Source::Incidentio, "Q1"));
        assert_ne!(id, IncidentId::of(&TenantId::parse("other").expect("tenant"), Source::Pagerduty, "Q1"));
        assert_eq!(IncidentId::parse(id.as_str()), Ok(id));
        assert!(IncidentId::parse("inc_xyz").is_err());
    }

    #[test]
    fn a_resolve_that_arrives_before_its_trigger_still_resolves_and_keeps_the_source_start() {
        let trigger = IncidentEvent {
            started_at: Some(t("2026-11-30T09:58:00Z")),
            ..event("a", "2026-11-30T10:00:00Z", Signal::Triggered)
        };
        let resolve = event("b", "2026-11-30T10:30:00Z", Signal::Resolved);
        let record = fold(&[resolve, trigger]);
        assert_eq!(record.status, Status::Resolved);
        assert_eq!(record.started_at, t("2026-11-30T09:58:00Z"));
        assert_eq!(record.observed.started_from, Some(StartedFrom::Source));
        assert_eq!(record.resolved_at, Some(t("2026-11-30T10:30:00Z")));
        assert_eq!(record.time_to_restore_seconds, Some(32 * 60));
    }

    #[test]
    fn a_reopen_after_a_resolve_opens_it_again_and_clears_the_restore_time() {
        let record = fold(&[
            event("a", "2026-11-30T10:00:00Z", Signal::Triggered),
            event("b", "2026-11-30T10:05:00Z", Signal::Acknowledged),
            event("c", "2026-11-30T10:30:00Z", Signal::Resolved),
            event("d", "2026-11-30T11:00:00Z", Signal::Reopened),
        ]);
        assert_eq!(record.status, Status::Triggered);
        assert_eq!(record.resolved_at, None);
        assert_eq!(record.time_to_restore_seconds, None);
        assert_eq!(record.acknowledged_at, Some(t("2026-11-30T10:05:00Z")));
        assert_eq!(record.started_at, t("2026-11-30T10:00:00Z"));
    }

    #[test]
    fn a_priority_raised_to_p1_makes_it_major_and_lowered_again_does_not() {
        let p = |id: &str, at: &str, prio: &str| IncidentEvent {
            priority: Some(prio.into()),
            ..event(id, at, Signal::PriorityChanged)
        };
        let trigger = event("a", "2026-11-30T10:00:00Z", Signal::Triggered);
        let raised = fold(&[trigger.clone(), p("b", "2026-11-30T10:01:00Z", "P1")]);
        assert!(raised.major && raised.is_open_major());
        let lowered = fold(&[p("c", "2026-11-30T10:02:00Z", "P3"), trigger, p("b", "2026-11-30T10:01:00Z", "P1")]);
        assert_eq!(lowered.priority.as_deref(), Some("P3"));
        assert!(!lowered.major);
    }

    #[test]
    fn an_unresolved_service_keeps_its_reason_and_has_no_facts() {
        let e = IncidentEvent {
            service_reason: Some("no catalog service has pagerduty id PX".into()),
            ..event("a", "2026-11-30T10:00:00Z", Signal::Triggered)
        };
        let record = fold(&[e]);
        assert_eq!(record.service, None);
        assert_eq!(record.service_reason.as_deref(), Some("no catalog service has pagerduty id PX"));
        assert_eq!(record.facts(), None);
        let named = IncidentEvent {
            service: Some(ServiceName::parse("payments").expect("svc")),
            ..event("b", "2026-11-30T09:00:00Z", Signal::Acknowledged)
        };
        let record = fold(&[event("a", "2026-11-30T10:00:00Z", Signal::Triggered), named]);
        assert_eq!(record.service_reason, None);
        let facts = record.facts().expect("facts");
        assert_eq!(facts.service.to_string(), "payments");
        assert_eq!(facts.started_at, t("2026-11-30T10:00:00Z"), "a trigger's time over an earlier acknowledgement's");
    }

    #[test]
    fn a_declared_incident_is_major_and_resolves_like_any_other() {
        let declaration = Declaration {
            commander: "ivy@example.com".into(),
            declared_by: "pat@example.com".into(),
            services: vec![ServiceName::parse("payments").expect("svc")],
        };
        let mut record =
            Incident::declared(&tenant(), "INC-7", "Card payments failing", declaration, t("2026-11-30T10:00:00Z"));
        assert_eq!(record.source, Source::Hub);
        assert!(record.is_open_major());
        record.apply(&event("r", "2026-11-30T10:10:00Z", Signal::Resolved), &MajorRule::default());
        assert!(record.major && !record.is_open_major());
        assert_eq!(record.time_to_restore_seconds, Some(600));
    }

    fn arb_event() -> impl Strategy<Value = IncidentEvent> {
        let signal = prop_oneof![
            Just(Signal::Triggered),
            Just(Signal::Acknowledged),
            Just(Signal::Resolved),
            Just(Signal::Reopened),
            Just(Signal::PriorityChanged),
        ];
        let word =
            || proptest::option::of(prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("P1".to_owned())]);
        (
            0u8..6,
            0i64..8,
            signal,
            proptest::option::of(0i64..8),
            word(),
            word(),
            word(),
            word(),
            word(),
            proptest::collection::vec("[ab]", 0..2),
        )
            .prop_map(|(id, minute, signal, start, title, priority, urgency, env, link, resources)| {
                let base = t("2026-11-30T10:00:00Z");
                IncidentEvent {
                    event_id: format!("e{id}"),
                    at: base + chrono::Duration::minutes(minute),
                    signal: Some(signal),
                    started_at: start.map(|m| base + chrono::Duration::minutes(m)),
                    title,
                    priority,
                    urgency,
                    environment: env,
                    link,
                    resources,
                    service: (id % 2 == 0).then(|| ServiceName::parse("payments").expect("svc")),
                    service_reason: (id % 2 == 1).then(|| format!("reason {id}")),
                    ..IncidentEvent::default()
                }
            })
    }

    proptest! {
        #[test]
        fn events_in_any_order_and_repeated_give_the_same_record(
            events in proptest::collection::vec(arb_event(), 1..8),
            seed in any::<u64>(),
            repeat in 0usize..8,
        ) {
            // One event id names one event: later copies with the id are the same event.
            let mut seen = BTreeMap::new();
            let events: Vec<IncidentEvent> =
                events.into_iter().map(|e| seen.entry(e.event_id.clone()).or_insert(e).clone()).collect();
            let mut shuffled = events.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            shuffled.push(events[repeat % events.len()].clone());
            prop_assert_eq!(fold(&events), fold(&shuffled));
        }
    }
}
