//! The canonical hub event envelope, and EventBridge-style pattern matching
//! used by the in-process bus (and by the tests that check template rules).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::AuditEntry;
use super::change::Change;

/// Every event source the hub emits begins with this prefix.
pub const SOURCE_PREFIX: &str = "changehub.";
/// `source` of events about change records.
pub const SOURCE_CHANGE: &str = "changehub.change";

/// One event on the hub bus, shaped like an EventBridge event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubEvent {
    pub id: String,
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: Value,
}

/// EventBridge refuses entries over 256 KB ([`HubEvent::entry_size`]).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

impl HubEvent {
    /// The event that announces an audited mutation of a change. Its id is
    /// derived from the audit entry, so a re-publish is recognisably the same event.
    pub fn change_mutated(change: &Change, entry: &AuditEntry) -> HubEvent {
        use super::audit::AuditAction;
        // A write may hold several entries (submitted, then approved): each
        // names the state its own entry reached.
        let moved_to = entry.moved_to().map(|s| s.as_str());
        let state_after = moved_to.unwrap_or(change.state.as_str()).to_owned();
        let detail_type = match entry.action {
            AuditAction::Created => "Change Created".to_owned(),
            AuditAction::Transitioned => format!("Change {}", title_case(&state_after)),
            // The decision that completes (or rejects) the plan moves the change.
            AuditAction::Decided if moved_to.is_some() => format!("Change {}", title_case(&state_after)),
            AuditAction::Decided => "Approval Recorded".to_owned(),
            AuditAction::ChecklistItemDone => "Checklist Item Done".to_owned(),
            AuditAction::Reviewed => "Change Reviewed".to_owned(),
            AuditAction::Rescheduled => "Change Rescheduled".to_owned(),
            AuditAction::PeerReviewed => "Peer Review Recorded".to_owned(),
            AuditAction::Edited => "Change Edited".to_owned(),
            AuditAction::Reworked => "Change Reworked".to_owned(),
            AuditAction::DeploymentRecorded => "Change Deployment Recorded".to_owned(),
            AuditAction::IncidentRelated => "Change Incident Related".to_owned(),
            AuditAction::IncidentUnrelated => "Change Incident Unrelated".to_owned(),
            AuditAction::ApprovalReminded => "Approval Reminder".to_owned(),
            AuditAction::ApprovalEscalated => "Approval Escalated".to_owned(),
            AuditAction::ApprovalSlaBreached => "Approval SLA Breached".to_owned(),
            AuditAction::ChangeStartingSoon => "Change Starting Soon".to_owned(),
            AuditAction::SuspectCleared => "Change Suspect Cleared".to_owned(),
            AuditAction::RollbackDispatched => "Change Rollback Dispatched".to_owned(),
            // Governance trail entries are not change mutations; named for completeness.
            AuditAction::CatalogImported => "Catalog Imported".to_owned(),
            AuditAction::FreezeDeclared => "Freeze Declared".to_owned(),
            AuditAction::FreezeLifted => "Freeze Lifted".to_owned(),
            AuditAction::FreezeStarting => "Freeze Starting".to_owned(),
            AuditAction::IncidentDeclared => "Incident Declared".to_owned(),
            AuditAction::IncidentResolved => "Incident Resolved".to_owned(),
            AuditAction::DelegationCreated => "Delegation Created".to_owned(),
            AuditAction::DelegationRevoked => "Delegation Revoked".to_owned(),
            AuditAction::SuppressionDeclared => "Suppression Declared".to_owned(),
            AuditAction::SuppressionLifted => "Suppression Lifted".to_owned(),
        };
        let id = format!("{}-{}", change.id, entry.seq);
        HubEvent {
            id: id.clone(),
            source: SOURCE_CHANGE.to_owned(),
            detail_type,
            time: entry.at,
            resources: vec![],
            detail: serde_json::json!({
                "event_id": id,
                "tenant": change.tenant,
                "change_id": change.id,
                "state": state_after,
                "version": change.version,
                "type": change.change_type,
                "services": change.services,
                "environment": change.environment,
                "actor": entry.actor,
                "audit_hash": entry.hash,
            }),
        }
    }

    /// The size EventBridge counts against its entry limit: detail, source,
    /// detail-type and resources together.
    pub fn entry_size(&self) -> usize {
        let detail = serde_json::to_string(&self.detail).map_or(0, |d| d.len());
        detail + self.source.len() + self.detail_type.len() + self.resources.iter().map(String::len).sum::<usize>()
    }

    /// The event as the JSON object a rule pattern is matched against.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn title_case(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An EventBridge event pattern (the subset the hub uses: exact values,
/// `prefix`, `exists`, `anything-but`, nested objects).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern(Value);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event pattern at {path}: {message}")]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

impl EventPattern {
    pub fn parse(v: Value) -> Result<Self, PatternError> {
        check_pattern(&v, "$")?;
        Ok(Self(v))
    }

    pub fn as_json(&self) -> &Value {
        &self.0
    }

    pub fn matches(&self, event: &Value) -> bool {
        match_object(&self.0, event)
    }
}

fn check_pattern(v: &Value, path: &str) -> Result<(), PatternError> {
    let err = |m: &str| PatternError { path: path.to_owned(), message: m.to_owned() };
    let Value::Object(m) = v else { return Err(err("a pattern must be an object")) };
    for (k, sub) in m {
        let p = format!("{path}.{k}");
        match sub {
            Value::Object(_) => check_pattern(sub, &p)?,
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    if let Value::Object(op) = item {
                        let ok = op.len() == 1
                            && op.keys().all(|k| matches!(k.as_str(), "prefix" | "exists" | "anything-but"));
                        if !ok {
                            return Err(PatternError {
                                path: p.clone(),
                                message: "supported operators: prefix, exists, anything-but".to_owned(),
                            });
                        }
                    }
                }
            }
            _ => return Err(PatternError { path: p, message: "a leaf must be a non-empty array".to_owned() }),
        }
    }
    Ok(())
}

fn match_object(pattern: &Value, event: &Value) -> bool {
    let Value::Object(p) = pattern else { return false };
    p.iter().all(|(k, sub)| {
        let field = event.get(k);
        match sub {
            // A missing object matches as an empty one, so `exists: false`
            // below it holds, as in EventBridge.
            Value::Object(_) => match_object(sub, field.unwrap_or(&Value::Null)),
            Value::Array(alts) => alts.iter().any(|alt| match_leaf(alt, field)),
            _ => false,
        }
    })
}

fn match_leaf(alt: &Value, field: Option<&Value>) -> bool {
    // An array field matches when any of its elements does, as in EventBridge.
    let values: Vec<&Value> = match field {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => vec![],
    };
    match alt {
        Value::Object(op) => {
            if let Some(Value::Bool(want)) = op.get("exists") {
                return values.is_empty() != *want;
            }
            if let Some(Value::String(prefix)) = op.get("prefix") {
                return values.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())));
            }
            if let Some(but) = op.get("anything-but") {
                let excluded = |v: &Value| match but {
                    Value::Array(xs) => xs.contains(v),
                    x => x == v,
                };
                return !values.is_empty() && values.iter().all(|v| !excluded(v));
            }
            false
        }
        exact => values.contains(&exact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(v: Value) -> EventPattern {
        EventPattern::parse(v).expect("valid pattern")
    }

    #[test]
    fn exact_values_and_nested_fields_match() {
        let p = pattern(json!({"source": ["changehub.change"], "detail": {"state": ["approved", "scheduled"]}}));
        assert!(p.matches(&json!({"source": "changehub.change", "detail": {"state": "approved"}})));
        assert!(!p.matches(&json!({"source": "changehub.change", "detail": {"state": "draft"}})));
        assert!(!p.matches(&json!({"source": "changehub.github", "detail": {"state": "approved"}})));
        assert!(!p.matches(&json!({"source": "changehub.change"})));
    }

    #[test]
    fn prefix_exists_and_anything_but_operators() {
        let p = pattern(
            json!({"source": [{"prefix": "changehub."}], "detail": {"service": [{"exists": true}], "env": [{"anything-but": ["staging"]}]}}),
        );
        assert!(p.matches(&json!({"source": "changehub.aws", "detail": {"service": "x", "env": "production"}})));
        assert!(!p.matches(&json!({"source": "changehub.aws", "detail": {"service": "x", "env": "staging"}})));
        assert!(!p.matches(&json!({"source": "changehub.aws", "detail": {"env": "production"}})));
        assert!(!p.matches(&json!({"source": "aws.config", "detail": {"service": "x", "env": "production"}})));
    }

    #[test]
    fn exists_false_holds_below_a_missing_object() {
        let p = pattern(json!({"detail": {"issuer": {"arn": [{"anything-but": ["mine"]}, {"exists": false}]}}}));
        assert!(p.matches(&json!({"detail": {}})));
        assert!(p.matches(&json!({"detail": {"issuer": {"arn": "theirs"}}})));
        assert!(!p.matches(&json!({"detail": {"issuer": {"arn": "mine"}}})));
        assert!(!pattern(json!({"detail": {"issuer": {"arn": ["x"]}}})).matches(&json!({"detail": {}})));
    }

    #[test]
    fn array_fields_match_when_any_element_matches() {
        let p = pattern(json!({"detail": {"services": ["payments"]}}));
        assert!(p.matches(&json!({"detail": {"services": ["search", "payments"]}})));
        assert!(!p.matches(&json!({"detail": {"services": ["search"]}})));
    }

    #[test]
    fn malformed_patterns_are_refused_with_their_path() {
        let e = EventPattern::parse(json!({"source": "changehub.change"})).unwrap_err();
        assert_eq!(e.path, "$.source");
        let e = EventPattern::parse(json!({"detail": {"x": [{"suffix": "a"}]}})).unwrap_err();
        assert_eq!(e.path, "$.detail.x");
    }

    #[test]
    fn each_entry_of_a_write_names_the_state_it_reached() {
        use crate::domain::audit::{AuditAction, record};
        use crate::domain::{ChangeId, ChangeState, NewChange, TenantId};
        use chrono::TimeZone;
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default();
        let draft = NewChange::basic("x", &["payments"], "production", at, at + chrono::Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), at);
        let (draft, _) = record(None, draft, "alice", AuditAction::Created, None);
        let submitted = draft.transition(ChangeState::Submitted, at).expect("legal");
        let (submitted, first) = record(Some(&draft), submitted, "alice", AuditAction::Transitioned, None);
        let approved = submitted.transition(ChangeState::Approved, at).expect("legal");
        let (approved, second) = record(Some(&submitted), approved, "changehub", AuditAction::Transitioned, None);
        // Both published with the final record, as a standard change's submission is.
        assert_eq!(HubEvent::change_mutated(&approved, &first).detail_type, "Change Submitted");
        assert_eq!(HubEvent::change_mutated(&approved, &second).detail_type, "Change Approved");
        assert_eq!(HubEvent::change_mutated(&approved, &first).detail["state"], "submitted");
        let mut pending = approved.clone();
        pending.version += 1;
        let (pending, recorded) = record(Some(&approved), pending, "pat", AuditAction::Decided, None);
        assert_eq!(HubEvent::change_mutated(&pending, &recorded).detail_type, "Approval Recorded");
        let decided = submitted.transition(ChangeState::Approved, at).expect("legal");
        let (decided, last) = record(Some(&submitted), decided, "carol", AuditAction::Decided, None);
        assert_eq!(HubEvent::change_mutated(&decided, &last).detail_type, "Change Approved");
        for (action, detail_type) in [
            (AuditAction::PeerReviewed, "Peer Review Recorded"),
            (AuditAction::Edited, "Change Edited"),
            (AuditAction::Reworked, "Change Reworked"),
        ] {
            let next = draft.revised(at);
            let (next, entry) = record(Some(&draft), next, "alice", action, None);
            assert_eq!(HubEvent::change_mutated(&next, &entry).detail_type, detail_type);
        }
    }
}
