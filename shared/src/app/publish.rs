//! Turns committed mutations (stream records) into bus events and notifications.
//! The local hub feeds it from the embedded store's stream; on AWS the
//! table's DynamoDB stream feeds the same code.

use std::collections::BTreeMap;

use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use super::routed::{self, Routed, RoutedError, send_each};
use crate::domain::approval::{ApprovalPlan, Step};
use crate::domain::catalog::Catalog;
use crate::domain::routing::render::Occurrence;
use crate::domain::routing::{Audience, Named, Recipient, Subject, event_type_of, recipients};
use crate::domain::{AuditEntry, Change, HubEvent};
use crate::ports::{BusError, CatalogReader, ChangeReader, Clock, Dedupe, EventBus, Fact, Link, Notifier, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Notify(#[from] RoutedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another attempt holds this event's lease: retry once it ran out.
    #[error("event {0} is being published by another attempt; retry")]
    InProgress(String),
    /// A write's entries are not all stored: the table was changed by hand.
    #[error("change {change}: audit entries {seqs:?} expected, {found} found")]
    MissingEntries { change: String, seqs: std::ops::RangeInclusive<u64>, found: usize },
}

/// The severity of a change event, attribute `severity`: `high` when it
/// failed, was rolled back or breached its approval SLA, else the change's
/// risk level (`low` to `critical`; `unknown` before it was assessed).
pub fn severity_of(change: &Change, event_type: &str) -> String {
    match event_type {
        "change_failed" | "change_rolled_back" | "sla_breached" => "high".to_owned(),
        _ => change.risk.as_ref().map_or("unknown", |r| r.level.as_str()).to_owned(),
    }
}

/// The step a reminder, escalation or breach recorded as entry `seq` was taken on.
fn nudged_step(change: &Change, seq: u64) -> Option<&Step> {
    let plan = change.approval.as_ref()?;
    plan.steps.iter().find(|s| s.escalation.as_ref().and_then(|e| e.last.as_ref()).is_some_and(|n| n.seq == seq))
}

/// What routing needs of a change event: its services and requester, and
/// who may decide (the open level's groups and people, or those of the
/// step a reminder or escalation is for) and the escalation targets.
pub fn subject_of(change: &Change, entry: &AuditEntry, event_type: &str) -> Subject {
    let steps: Vec<&Step> = match nudged_step(change, entry.seq) {
        Some(step) => vec![step],
        None => change.approval.as_ref().map_or_else(Vec::new, |plan| {
            let open = plan.current_level();
            plan.steps.iter().filter(|s| Some(s.level) == open && !s.is_complete()).collect()
        }),
    };
    let mut subject = Subject::about(event_type, change.services.clone());
    subject.requester = Some(change.requester.clone());
    for step in steps {
        let named = |notify: &String| Named { notify: notify.clone(), service: step.service.clone() };
        subject.approvers.extend(step.groups.iter().chain(&step.users).map(named));
        subject.escalate_to.push(named(&step.escalate_to));
    }
    subject
}

/// The level `entry`'s write opened after another was decided (a decision
/// or peer review that completed the level before it), if it did: its
/// approvers are asked to decide, as `approval_requested`. A submission
/// opens the first level and says so itself (`change_submitted`).
pub fn level_opened(entry: &AuditEntry) -> Option<u32> {
    let plans = entry.changes.iter().find(|c| c.field == "approval")?;
    let level = |v: &serde_json::Value| serde_json::from_value::<ApprovalPlan>(v.clone()).ok()?.current_level();
    let (before, after) = (level(&plans.before)?, level(&plans.after)?);
    (before != after).then_some(after)
}

/// What the approvers of the level `entry` opened read: headlined
/// `[Approval Requested]`, saying which level waits for them, until when.
fn approval_requested(occurrence: &Occurrence, change: &Change, level: u32) -> Occurrence {
    let plan = change.approval.as_ref();
    let steps = plan.map(|p| p.waiting_for()).unwrap_or_default();
    let names = steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; ");
    let due = plan.and_then(ApprovalPlan::due_at).map(|d| format!(", due {}", d.format("%Y-%m-%d %H:%M UTC")));
    let mut details =
        vec![format!("Level {level} is open and waits for your decision: {names}{}", due.unwrap_or_default())];
    details.extend(occurrence.details.iter().cloned());
    Occurrence {
        event: REQUESTED.to_owned(),
        headline: format!("[Approval Requested] {}: {}", change.id, change.title),
        details,
        ..occurrence.clone()
    }
}

/// The event type of a level opening ([`level_opened`]).
pub const REQUESTED: &str = "approval_requested";

/// The change's page in the hub and the commands that decide it, with
/// `hub` the hub's public address when known (else `$CHANGEHUB_URL`).
fn links_and_commands(change: &Change, hub: Option<&str>) -> (Vec<Link>, Vec<String>) {
    let links = hub
        .map(|h| Link { label: "Change".to_owned(), url: format!("{}/changes/{}", h.trim_end_matches('/'), change.id) })
        .into_iter()
        .collect();
    let base = hub.map_or_else(|| "$CHANGEHUB_URL".to_owned(), |h| h.trim_end_matches('/').to_owned());
    let commands = vec![
        format!(
            "Approve: curl -X POST \"{base}/changes/{}/decisions\" -H \"authorization: Bearer $CHANGEHUB_TOKEN\" \
             -H 'content-type: application/json' -d '{{\"decision\": \"approve\"}}'",
            change.id
        ),
        "Waiting for you: changehub changes --mine".to_owned(),
    ];
    (links, commands)
}

/// The impact of `change` in plain words.
fn impact_of(change: &Change, event_type: &str) -> String {
    use crate::domain::risk::{AvailabilityImpact, DataImpact};
    let services = change.services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let mut impact = match event_type {
        "change_failed" | "change_rolled_back" => {
            format!("The change did not go as planned; the team that owns {services} is on it.")
        }
        _ => match change.impact.availability {
            AvailabilityImpact::Outage => format!("{services} may be unavailable during the change."),
            AvailabilityImpact::Degraded => format!("{services} may be slow or partly unavailable during the change."),
            AvailabilityImpact::None => format!("No interruption of {services} is expected."),
        },
    };
    if change.impact.data == DataImpact::Destructive {
        impact.push_str(" Some data is deleted or rewritten for good.");
    }
    impact
}

/// What people read of a mutation, whoever they are.
pub fn occurrence_of(change: &Change, entry: &AuditEntry, event: &HubEvent, hub: Option<&str>) -> Occurrence {
    let event_type = event_type_of(&event.detail_type);
    let fact = |name: &str, value: String| Fact { name: name.to_owned(), value };
    let state = event.detail["state"].as_str().unwrap_or(change.state.as_str()).to_owned();
    let mut facts = vec![
        fact("State", state),
        fact("Type", change.change_type.as_str().to_owned()),
        fact("Environment", change.environment.clone()),
    ];
    if let Some(risk) = &change.risk {
        facts.push(fact("Risk", format!("{} ({})", risk.level.as_str(), risk.score)));
    }
    facts.push(fact("Requester", change.requester.clone()));
    facts.push(fact("By", entry.actor.clone()));
    let mut details = Vec::new();
    if let Some(nudge) = change.approval.as_ref().and_then(|p| p.nudge_recorded_by(entry.seq)) {
        let step = nudged_step(change, entry.seq).map_or("", |s| s.name.as_str());
        details.push(format!(
            "{} {} of level {step}: due {}",
            event.detail_type,
            nudge.number,
            nudge.due_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if let Some(reason) = &entry.reason {
        details.push(format!("Reason: {reason}"));
    }
    let (links, commands) = links_and_commands(change, hub);
    Occurrence {
        headline: format!("[{}] {}: {}", event.detail_type, change.id, change.title),
        impact: Some(impact_of(change, &event_type)),
        event: event_type,
        reference: change.id.to_string(),
        title: change.title.clone(),
        services: change.services.clone(),
        at: entry.at,
        window: Some((change.planned_start, change.planned_end)),
        facts,
        details,
        links,
        commands,
    }
}

/// The notifications people get for a mutation: one per recipient the
/// catalog routes its event type to ([`crate::domain::routing`]), the feed
/// first, each with attributes `tenant`, `kind` (the bus detail-type),
/// `type` (the event type), `change_type`, `environment`, `services`,
/// `service`, `severity`, `audience` and `notify`. A write that opened the
/// next approval level also asks that level's approvers, as type
/// `approval_requested` (kind still the event's: `Approval Recorded`).
pub fn notifications_for(
    catalog: &Catalog,
    change: &Change,
    entry: &AuditEntry,
    event: &HubEvent,
    hub: Option<&str>,
) -> Vec<Routed> {
    let occurrence = occurrence_of(change, entry, event, hub);
    let mut attributes = BTreeMap::new();
    attributes.insert("kind".to_owned(), event.detail_type.clone());
    attributes.insert("tenant".to_owned(), change.tenant.to_string());
    attributes.insert("change_type".to_owned(), change.change_type.as_str().to_owned());
    attributes.insert("environment".to_owned(), change.environment.clone());
    // SNS filter policies match any element of a String.Array-like list; the
    // services are joined so a prefix or exact filter can select one.
    attributes.insert("services".to_owned(), change.services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    let mut body = serde_json::json!({
        "event": event.detail_type,
        "change": change,
        "actor": entry.actor,
        "reason": entry.reason,
        "changes": entry.changes,
    });
    // A reminder or an escalation names the delegates deciding for the level's approvers.
    if let Some(nudge) = change.approval.as_ref().and_then(|p| p.nudge_recorded_by(entry.seq))
        && !nudge.delegates.is_empty()
    {
        body["delegates"] = serde_json::json!(nudge.delegates);
    }
    let severity = severity_of(change, &occurrence.event);
    let told = recipients(catalog, &subject_of(change, entry, &occurrence.event));
    let Some(level) = level_opened(entry) else {
        return routed::notifications(&occurrence, &told, &attributes, &severity, &body);
    };
    // The decision opened the next level: its approvers are asked (first:
    // those asked to act), and whoever else hears of the decision is told.
    let asked: Vec<Recipient> = recipients(catalog, &subject_of(change, entry, REQUESTED))
        .into_iter()
        .filter(|r| r.audience != Audience::Feed)
        .collect();
    let (feed, others): (Vec<Recipient>, Vec<Recipient>) = told.into_iter().partition(|r| r.audience == Audience::Feed);
    let others: Vec<Recipient> = others.into_iter().filter(|r| !asked.iter().any(|a| a.notify == r.notify)).collect();
    let requested = approval_requested(&occurrence, change, level);
    let mut routed = routed::notifications(&occurrence, &feed, &attributes, &severity, &body);
    routed.extend(routed::notifications(&requested, &asked, &attributes, &severity, &body));
    routed.extend(routed::notifications(&occurrence, &others, &attributes, &severity, &body));
    routed
}

/// The outbox publisher: each committed mutation (an audit entry and the
/// change as that write left it) becomes one hub event and the
/// notifications the tenant's catalog routes it to, once, however often the
/// stream hands it over.
pub struct Outbox<D, B, N, C, K> {
    pub dedupe: D,
    pub bus: B,
    pub notifier: N,
    pub clock: C,
    /// The tenants' catalogs (their `routing:`), read through the cache.
    pub catalog: K,
    pub claims: ClaimTimes,
    /// The hub's public address, for links and commands (`CHANGEHUB_PUBLIC_URL`).
    pub public_url: Option<String>,
}

/// What [`Outbox::publish`] did with one mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Its event and notifications went out now.
    Sent,
    /// They went out before: nothing was sent again.
    Duplicate,
}

impl<D: Dedupe, B: EventBus, N: Notifier, C: Clock, K: CatalogReader> Outbox<D, B, N, C, K> {
    pub fn new(dedupe: D, bus: B, notifier: N, clock: C, catalog: K) -> Self {
        Self { dedupe, bus, notifier, clock, catalog, claims: ClaimTimes::default(), public_url: None }
    }

    pub fn with_claims(self, claims: ClaimTimes) -> Self {
        Self { claims, ..self }
    }

    pub fn with_public_url(self, public_url: Option<String>) -> Self {
        Self { public_url, ..self }
    }

    /// Publishes one committed mutation: its event on the bus, then its
    /// routed notifications, once per event id, and each notification once
    /// per recipient. If any fails, the event is not marked done: a retry
    /// publishes the event again (consumers drop a second copy by its id)
    /// and sends only the notifications not sent yet.
    pub async fn publish(&self, change: &Change, entry: &AuditEntry) -> Result<Published, PublishError> {
        let event = HubEvent::change_mutated(change, entry);
        let key = format!("outbox:{}:{}", change.tenant, event.id);
        let work = async {
            self.bus.publish(std::slice::from_ref(&event)).await?;
            let view = self.catalog.catalog(&change.tenant).await?;
            let routed = notifications_for(&view.catalog, change, entry, &event, self.public_url.as_deref());
            Box::pin(send_each(&self.dedupe, &self.clock, self.claims, &self.notifier, &key, &routed)).await?;
            Ok::<_, PublishError>(())
        };
        match once(&self.dedupe, &self.clock, self.claims, std::slice::from_ref(&key), work).await {
            Ok(Once::Done(())) => Ok(Published::Sent),
            Ok(Once::Duplicate) => Ok(Published::Duplicate),
            Ok(Once::InProgress) => Err(PublishError::InProgress(event.id)),
            Err(OnceError::Store(e)) => Err(e.into()),
            Err(OnceError::Work(e)) => Err(e),
        }
    }

    /// Publishes every entry one write of `change` added: those after
    /// `previous_version` (0 for its creation) up to its version, oldest
    /// first, read with one query. What a stream record of the change's
    /// item tells the publisher on AWS.
    pub async fn publish_write<R: ChangeReader>(
        &self,
        reader: &R,
        change: &Change,
        previous_version: u64,
    ) -> Result<Vec<Published>, PublishError> {
        if change.version <= previous_version {
            return Ok(Vec::new());
        }
        let seqs = previous_version + 1..=change.version;
        let entries = reader.audit_entries(&change.tenant, &change.id, seqs.clone()).await?;
        if entries.len() as u64 != change.version - previous_version {
            return Err(PublishError::MissingEntries { change: change.id.to_string(), seqs, found: entries.len() });
        }
        let mut published = Vec::with_capacity(entries.len());
        for entry in &entries {
            published.push(self.publish(change, entry).await?);
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::approval::ApprovalPlan;
    use crate::domain::audit::AuditAction;
    use crate::domain::catalog::CatalogView;
    use crate::domain::{ChangeId, ChangeState, NewChange, ServiceName, TenantId};
    use chrono::{DateTime, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
    }

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "roles": {"cab": ["cab"]},
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1, "approval": [
                    {"name": "team-lead", "groups": ["payments-leads"], "sla": "4h", "escalate_to": "managers"},
                    {"name": "cab", "groups": ["cab"], "sla": "1d", "escalate_to": "cto"}
                ]},
                {"name": "web", "owner_group": "web-team", "tier": 2, "depends_on": ["payments"]}
            ]
        }))
        .expect("catalog")
    }

    fn submitted() -> Change {
        let services = [ServiceName::parse("payments").expect("service")];
        let mut change =
            NewChange::basic("Rotate keys", &["payments"], "production", now(), now() + chrono::Duration::hours(1))
                .validate()
                .expect("valid")
                .into_draft(
                    ChangeId::new(),
                    TenantId::parse("acme").expect("tenant"),
                    "rita@example.com".into(),
                    now(),
                );
        change.state = ChangeState::Submitted;
        change.version = 2;
        let view = CatalogView::new(1, catalog());
        change.approval = Some(ApprovalPlan::build(&view, &services, false, now()).expect("plan"));
        change
    }

    fn entry(change: &Change, action: AuditAction) -> AuditEntry {
        AuditEntry {
            tenant: change.tenant.clone(),
            change_id: change.id,
            seq: change.version,
            at: now(),
            actor: "rita@example.com".into(),
            action,
            changes: vec![],
            reason: None,
            prev_hash: String::new(),
            hash: String::new(),
            seal: None,
        }
    }

    fn routed(change: &Change, action: AuditAction) -> Vec<(String, String, String, String)> {
        let entry = entry(change, action);
        let event = HubEvent::change_mutated(change, &entry);
        notifications_for(&catalog(), change, &entry, &event, None)
            .into_iter()
            .map(|r| {
                let a = &r.notification.attributes;
                let get = |k: &str| a.get(k).cloned().unwrap_or_default();
                (get("type"), get("audience"), get("notify"), get("service"))
            })
            .collect()
    }

    fn row(t: &str, audience: &str, notify: &str, service: &str) -> (String, String, String, String) {
        (t.into(), audience.into(), notify.into(), service.into())
    }

    #[test]
    fn a_submission_reaches_the_open_levels_approvers_and_the_owners_with_the_event_type() {
        let change = submitted();
        let mut e = entry(&change, AuditAction::Transitioned);
        e.changes = vec![crate::domain::FieldChange {
            field: "state".into(),
            before: "draft".into(),
            after: "submitted".into(),
        }];
        let event = HubEvent::change_mutated(&change, &e);
        let routed = notifications_for(&catalog(), &change, &e, &event, None);
        let who: Vec<(&str, Option<&str>)> = routed
            .iter()
            .map(|r| {
                (
                    r.notification.attributes["audience"].as_str(),
                    r.notification.attributes.get("notify").map(String::as_str),
                )
            })
            .collect();
        assert_eq!(who, [("feed", None), ("approvers", Some("payments-leads")), ("owners", Some("payments-team"))]);
        let a = &routed[0].notification.attributes;
        assert_eq!(
            (a["type"].as_str(), a["change_type"].as_str(), a["kind"].as_str()),
            ("change_submitted", "normal", "Change Submitted")
        );
        assert!(!a.contains_key("state"), "the event type says it");
        assert!(routed.iter().all(|r| r.notification.attributes.len() <= 10), "SNS takes 10 attributes");
        let approvers = &routed[1].notification.message;
        assert!(approvers.lines.iter().any(|l| l.contains("$CHANGEHUB_URL/changes/")), "{approvers:?}");
    }

    #[test]
    fn an_escalation_goes_to_the_escalated_steps_target_and_a_breach_to_the_cab() {
        let mut change = submitted();
        let plan = change.approval.as_mut().expect("plan");
        let due = plan.steps[0].due_at.expect("due");
        let i = plan.nudges_due(due).into_iter().next().expect("a step due");
        plan.nudge(i, due, "cab", 3, &[]).expect("escalated");
        change.version = 3;
        assert_eq!(
            routed(&change, AuditAction::ApprovalEscalated),
            [
                row("approval_escalated", "feed", "", "payments"),
                row("approval_escalated", "escalate_to", "managers", "payments")
            ]
        );
    }

    /// `change` after pat (payments-leads) approved level 1, and the entry of that decision.
    fn level_one_approved(change: &Change) -> (Change, AuditEntry) {
        let caller = crate::domain::access::Caller {
            tenant: change.tenant.clone(),
            user: "pat@example.com".into(),
            groups: vec!["payments-leads".into()],
            granted: [crate::domain::catalog::Role::Approver].into(),
        };
        let mut next = change.revised(now());
        let plan = next.approval.as_mut().expect("plan");
        let roles = [crate::domain::catalog::Role::Approver].into();
        let verdict = crate::domain::approval::Verdict::Approve;
        plan.decide(&caller, &roles, &change.requester, verdict, None, now()).expect("decided");
        crate::domain::audit::record(Some(change), next, "pat@example.com", AuditAction::Decided, None)
    }

    #[test]
    fn a_decision_that_opens_the_next_level_asks_its_approvers_once() {
        let (change, e) = level_one_approved(&submitted());
        assert_eq!(level_opened(&e), Some(2));
        let event = HubEvent::change_mutated(&change, &e);
        assert_eq!(event.detail_type, "Approval Recorded");
        let routed = notifications_for(&catalog(), &change, &e, &event, Some("https://hub.example.com"));
        let who: Vec<(&str, &str, Option<&str>)> = routed
            .iter()
            .map(|r| {
                let a = &r.notification.attributes;
                (a["type"].as_str(), a["audience"].as_str(), a.get("notify").map(String::as_str))
            })
            .collect();
        assert_eq!(
            who,
            [("change_approval_recorded", "feed", None), ("approval_requested", "approvers", Some("cab"))],
            "the feed hears of the decision, level 2's approvers are asked"
        );
        let asked = &routed[1].notification;
        assert_eq!(asked.attributes["kind"], "Approval Recorded");
        assert_eq!(asked.subject, format!("[Approval Requested] {}: Rotate keys (to cab)", change.id));
        let first = &asked.message.lines[0];
        assert!(
            first.starts_with("Level 2 is open and waits for your decision: level 2 (cab of payments), due "),
            "{first}"
        );
        assert!(asked.message.lines.iter().any(|l| l.starts_with("Approve: curl")), "{:?}", asked.message.lines);
        assert_eq!(asked.message.links[0].url, format!("https://hub.example.com/changes/{}", change.id));
    }

    #[test]
    fn a_write_that_leaves_the_level_open_or_closes_the_plan_asks_nobody() {
        let change = submitted();
        let mut e = entry(&change, AuditAction::Decided);
        assert_eq!(level_opened(&e), None, "the plan did not change");
        let (approved, _) = level_one_approved(&change);
        let plan = |c: &Change| serde_json::to_value(c.approval.as_ref()).expect("json");
        let field = |before, after| crate::domain::FieldChange { field: "approval".into(), before, after };
        e.changes = vec![field(plan(&approved), plan(&approved))];
        assert_eq!(level_opened(&e), None, "level 2 was open before");
        let mut closed = approved.clone();
        closed.approval.as_mut().expect("plan").rejected =
            closed.approval.as_ref().and_then(|p| p.steps[0].approvals.first().cloned());
        e.changes = vec![field(plan(&approved), plan(&closed))];
        assert_eq!(level_opened(&e), None, "no level is open once the plan is decided");
        e.changes = vec![field(serde_json::Value::Null, plan(&change))];
        assert_eq!(level_opened(&e), None, "a submission opens level 1 and says so itself");
    }

    #[test]
    fn severity_is_high_for_failures_and_breaches_else_the_risk_level() {
        let mut change = submitted();
        assert_eq!(severity_of(&change, "change_submitted"), "unknown");
        change.risk = Some(crate::domain::risk::RiskAssessment {
            score: 12,
            level: crate::domain::risk::RiskLevel::Medium,
            factors: vec![],
        });
        assert_eq!(severity_of(&change, "change_submitted"), "medium");
        for high in ["change_failed", "change_rolled_back", "sla_breached"] {
            assert_eq!(severity_of(&change, high), "high");
        }
    }

    #[test]
    fn a_failure_reaches_the_dependents_and_the_cab() {
        let mut change = submitted();
        change.approval = None;
        let who: Vec<(String, String)> =
            routed(&change, AuditAction::Created).into_iter().map(|(_, a, n, _)| (a, n)).collect();
        assert_eq!(who, [("feed".into(), String::new())], "a creation goes to the feed only");
        let mut e = entry(&change, AuditAction::Transitioned);
        e.changes = vec![crate::domain::FieldChange {
            field: "state".into(),
            before: "implementing".into(),
            after: "failed".into(),
        }];
        let event = HubEvent::change_mutated(&change, &e);
        let audiences: Vec<String> =
            notifications_for(&catalog(), &change, &e, &event, Some("https://hub.example.com"))
                .iter()
                .map(|r| format!("{}:{}", r.notification.attributes["audience"], r.notification.attributes["type"]))
                .collect();
        assert_eq!(
            audiences,
            [
                "feed:change_failed",
                "owners:change_failed",
                "requester:change_failed",
                "dependents:change_failed",
                "cab:change_failed"
            ]
        );
    }
}
