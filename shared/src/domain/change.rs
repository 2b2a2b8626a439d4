//! The change record and its lifecycle.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::approval::{ApprovalPlan, Decision};
use super::bake::Bake;
use super::correlation::{Implementation, Outcome};
use super::deployment::{Deployed, DeploymentOrigin, PostMortem};
use super::ids::{ChangeId, ServiceName, TenantId};
use super::risk::{Complexity, Impact, RiskAssessment};
use super::soon::StartingSoon;

/// The longest planned window a change may have. Queries for "changes touching
/// a service in a time range" rely on this bound to stay proportional to the
/// range asked for, not to the service's whole history.
pub const MAX_PLANNED_WINDOW: Duration = Duration::days(31);
/// Most services one change may name.
pub const MAX_SERVICES: usize = 20;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// Low-risk, pre-approved by template.
    Standard,
    /// Goes through the approval chain.
    Normal,
    /// May proceed at once; reviewed afterwards.
    Emergency,
    /// Made by the hub from a deployment it was told of (non-production, by
    /// default): a record of what happened, never approval-gated.
    Recorded,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Standard => "standard",
            ChangeType::Normal => "normal",
            ChangeType::Emergency => "emergency",
            ChangeType::Recorded => "recorded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Scheduled,
    Implementing,
    /// Deployed to production and baking: it completes on its own once the
    /// service's bake time passes with no incident on its services.
    Verifying,
    Completed,
    Failed,
    RolledBack,
    Closed,
    Cancelled,
}

impl ChangeState {
    pub const ALL: [ChangeState; 12] = [
        ChangeState::Draft,
        ChangeState::Submitted,
        ChangeState::Approved,
        ChangeState::Rejected,
        ChangeState::Scheduled,
        ChangeState::Implementing,
        ChangeState::Verifying,
        ChangeState::Completed,
        ChangeState::Failed,
        ChangeState::RolledBack,
        ChangeState::Closed,
        ChangeState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "draft",
            ChangeState::Submitted => "submitted",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
            ChangeState::Scheduled => "scheduled",
            ChangeState::Implementing => "implementing",
            ChangeState::Verifying => "verifying",
            ChangeState::Completed => "completed",
            ChangeState::Failed => "failed",
            ChangeState::RolledBack => "rolled_back",
            ChangeState::Closed => "closed",
            ChangeState::Cancelled => "cancelled",
        }
    }

    /// Open states are those before implementation starts; a change in one
    /// of them may still be cancelled. Once implementation has started the
    /// outcome must be recorded (completed, failed or rolled back) instead.
    pub fn is_open(self) -> bool {
        matches!(self, ChangeState::Draft | ChangeState::Submitted | ChangeState::Approved | ChangeState::Scheduled)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }

    /// The states this one may move to, in lifecycle order.
    pub fn allowed_next(self) -> &'static [ChangeState] {
        use ChangeState::*;
        match self {
            Draft => &[Submitted, Cancelled],
            Submitted => &[Approved, Rejected, Cancelled],
            Approved => &[Scheduled, Cancelled],
            Rejected => &[Closed],
            Scheduled => &[Implementing, Cancelled],
            Implementing => &[Verifying, Completed, Failed, RolledBack],
            Verifying => &[Completed, Failed, RolledBack],
            Completed => &[Closed],
            Failed => &[RolledBack, Closed],
            RolledBack => &[Closed],
            Closed | Cancelled => &[],
        }
    }

    pub fn can_move_to(self, to: ChangeState) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a change from {from} to {to}; allowed from {from}: {}", allowed_list(.allowed))]
pub struct IllegalTransition {
    pub from: ChangeState,
    pub to: ChangeState,
    pub allowed: Vec<ChangeState>,
}

fn allowed_list(allowed: &[ChangeState]) -> String {
    if allowed.is_empty() {
        "none (terminal state)".to_owned()
    } else {
        allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A change record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: ChangeId,
    pub tenant: TenantId,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub services: Vec<ServiceName>,
    pub environment: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    pub requester: String,
    pub state: ChangeState,
    /// Starts at 1 and grows by one with every mutation; every update is
    /// conditional on it. It is also the sequence number of the latest audit entry.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Hash of the latest audit entry: the next entry chains onto it.
    pub audit_head: String,
    /// The catalog category; it decides the checklist.
    #[serde(default = "default_category")]
    pub category: String,
    /// The standard-change template a standard change uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default)]
    pub impact: Impact,
    #[serde(default)]
    pub complexity: Complexity,
    /// The change touches privileged accounts: it needs a peer review.
    #[serde(default)]
    pub privileged_access: bool,
    /// The change touches cryptographic keys: it needs a peer review.
    #[serde(default)]
    pub cryptographic_keys: bool,
    /// The latest risk assessment (at creation, then at submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    /// The approval plan of a normal change, from submission on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPlan>,
    /// What must be done before implementation starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<ChecklistItem>,
    /// Other changes whose planned windows overlap this one on the same
    /// services or on services they depend on, as of the last submit or schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// An emergency change's post-implementation review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<PostReview>,
    /// A failed or rolled-back production change's post-mortem draft, from
    /// its deployments and related incidents: what its review starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<PostMortem>,
    /// The bake of a change verifying in production (`domain::bake`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<Bake>,
    /// The open major incident an emergency change fixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The rejected change this draft reworks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reworks: Option<ChangeId>,
    /// The draft this rejected change was reworked into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reworked_as: Option<ChangeId>,
    /// When it was actually implemented, by the times its transitions were
    /// made (or the deployment's own times): what correlation compares with
    /// an incident's start. `None` until implementation starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<Implementation>,
    /// Where a change the hub made from a deployment came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<DeploymentOrigin>,
    /// The deployments of this change, each with every status seen merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<Deployed>,
    /// The incidents the correlation relates to this change, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_incidents: Vec<RelatedIncident>,
    /// The "starting soon" reminder of a scheduled change (`domain::soon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_soon: Option<StartingSoon>,
    /// How the change is rolled back (`automated`: by its services' configured rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<crate::domain::deployment::rollback::RollbackPlan>,
    /// The resources it will touch, by id or ARN (see `NewChange::resources`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// An incident related to a change: the change's side of the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedIncident {
    pub incident_id: String,
    pub source: super::incident::Source,
    pub external_id: String,
    pub reasons: Vec<super::correlation::Reason>,
    /// In (0, 1].
    pub confidence: f64,
    /// When the incident started, by its source's clock.
    pub started_at: DateTime<Utc>,
    /// The month (`YYYY-MM`) whose failure counters this incident added one
    /// to; `None` when the change was already counted as failed (by its
    /// outcome or by another incident).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<String>,
}

fn default_category() -> String {
    super::catalog::DEFAULT_CATEGORY.to_owned()
}

/// Someone did something, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Done>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub change_id: ChangeId,
    pub title: String,
    pub state: ChangeState,
    /// The service the other change touches.
    pub service: ServiceName,
    /// `same service`, or `payments depends on ledger`.
    pub reason: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostReview {
    pub due_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Done>,
}

/// What a change is waiting for, and by when: the sparse due index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The current approval level's next reminder, escalation or breach.
    Approval(DateTime<Utc>),
    /// An emergency change's post-implementation review deadline.
    Review(DateTime<Utc>),
    /// A scheduled change's "starting soon" reminder.
    StartingSoon(DateTime<Utc>),
    /// The end of a verifying change's bake, when it completes on its own.
    Bake(DateTime<Utc>),
}

impl Change {
    /// Whether a related incident already counts as this change's failure.
    pub fn failure_counted_by_incident(&self) -> bool {
        self.related_incidents.iter().any(|r| r.counted.is_some())
    }

    /// What the change waits for, one thing at a time: the next step of its
    /// current approval level's cadence (a reminder, an escalation, the
    /// breach) while submitted; else the review of an emergency change until
    /// it is done; else, while scheduled, its "starting soon" reminder. An
    /// open review comes before the reminder, whichever is earlier, so that
    /// the pending-reviews report (which reads the reviews partition) lists
    /// every open review: such a change gets no reminder.
    pub fn due(&self) -> Option<Due> {
        if self.state == ChangeState::Submitted
            && let Some(at) = self.approval.as_ref().and_then(|p| p.next_nudge_at())
        {
            return Some(Due::Approval(at));
        }
        // A review follows implementation: a change baking completes first.
        if let Some(until) = self.bake_due() {
            return Some(Due::Bake(until));
        }
        match &self.review {
            Some(r) if r.done.is_none() && !matches!(self.state, ChangeState::Cancelled) => Some(Due::Review(r.due_at)),
            _ => self.starting_soon_at().map(Due::StartingSoon),
        }
    }

    /// Whether the change is approved by a decision of someone other than
    /// its requester: every step of its plan complete, none rejected. What
    /// an emergency needs before it may override a freeze or its window.
    pub fn approved_by_another(&self) -> bool {
        matches!(
            self.state,
            ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing | ChangeState::Verifying
        ) && self.approval.as_ref().is_some_and(|p| {
            p.rejected.is_none()
                && !p.steps.is_empty()
                && p.steps.iter().all(|s| s.is_complete())
                && p.approvers().iter().all(|by| *by != self.requester)
        })
    }

    /// Whether the change was rejected by its approvers (it may have been closed since).
    pub fn was_rejected(&self) -> bool {
        self.state == ChangeState::Rejected || (self.state == ChangeState::Closed && self.rejection().is_some())
    }

    /// The approvers' rejection, when there was one.
    pub fn rejection(&self) -> Option<&Decision> {
        self.approval.as_ref().and_then(|p| p.rejected.as_ref())
    }

    /// What the gates tell a developer about a rejected change: who
    /// rejected it (and for whom, as a delegate), what to do, and the
    /// rejecter's comment last (on one line), so that a cut to a short limit
    /// shortens the comment only: `rejected by rita; open a new change.
    /// Reason: too risky before the sale`.
    pub fn rejected_text(&self) -> String {
        let Some(d) = self.rejection() else {
            return "rejected; open a new change".to_owned();
        };
        let by = match &d.on_behalf_of {
            Some(o) => format!("{} for {}", d.by, o.user),
            None => d.by.clone(),
        };
        let reason = d.comment.as_deref().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "));
        match reason.filter(|r| !r.is_empty()) {
            Some(r) => format!("rejected by {by}; open a new change. Reason: {r}"),
            None => format!("rejected by {by}; open a new change"),
        }
    }

    /// Checklist items not yet done.
    pub fn open_checklist(&self) -> impl Iterator<Item = &ChecklistItem> {
        self.checklist.iter().filter(|i| i.done.is_none())
    }

    /// Derives the post-mortem draft from the deployments and related
    /// incidents; a draft its review already recorded stays as reviewed.
    pub fn draft_postmortem(&mut self) {
        if self.review.as_ref().is_none_or(|r| r.done.is_none()) {
            let automated = self.postmortem.as_mut().and_then(|p| p.automated_rollback.take());
            self.postmortem = PostMortem::draft(&self.deployments, &self.related_incidents)
                .map(|p| PostMortem { automated_rollback: automated, ..p });
        }
    }

    /// [`Change::draft_postmortem`] once the change has a draft: an incident
    /// related (or unrelated) later joins (or leaves) it.
    pub fn refresh_postmortem(&mut self) {
        if self.postmortem.is_some() {
            self.draft_postmortem();
        }
    }

    /// The next version of the change, in the same state, as of `at`: the
    /// record an audited edit (a decision, a checklist item, a review) starts from.
    pub fn revised(&self, at: DateTime<Utc>) -> Change {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = at;
        next
    }

    /// Moves the change to `to`, or says why it may not.
    pub fn transition(&self, to: ChangeState, at: DateTime<Utc>) -> Result<Change, IllegalTransition> {
        if !self.state.can_move_to(to) {
            return Err(IllegalTransition { from: self.state, to, allowed: self.state.allowed_next().to_vec() });
        }
        let mut next = self.revised(at);
        next.state = to;
        next.implementation = self.implemented_after(to, at);
        Ok(next)
    }

    /// The implementation as it stands after moving to `to` at `at`: it starts
    /// on `implementing`, and ends (or ends again, for a rollback after a
    /// failure) on an outcome, keeping its start.
    fn implemented_after(&self, to: ChangeState, at: DateTime<Utc>) -> Option<Implementation> {
        let started_at = self.implementation.map_or(at, |i| i.started_at());
        let finished = |outcome| Some(Implementation::Finished { started_at, ended_at: at, outcome });
        match to {
            ChangeState::Implementing => Some(Implementation::Ongoing { started_at: at }),
            // A bake that ends keeps the deployment's end.
            ChangeState::Completed if self.state == ChangeState::Verifying => self.implementation,
            ChangeState::Verifying => finished(Outcome::Succeeded),
            ChangeState::Completed => finished(Outcome::Succeeded),
            ChangeState::Failed => finished(Outcome::Failed),
            ChangeState::RolledBack => finished(Outcome::RolledBack),
            _ => self.implementation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::new_change::NewChange;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default() + Duration::hours(h)
    }

    fn draft() -> Change {
        NewChange::basic("Upgrade payments DB", &["payments"], "production", t(22), t(23))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), t(0))
    }

    #[test]
    fn happy_path_reaches_closed() {
        use ChangeState::*;
        let mut c = draft();
        for (i, to) in [Submitted, Approved, Scheduled, Implementing, Completed, Closed].into_iter().enumerate() {
            c = c.transition(to, t(i as i64 + 1)).expect("legal");
        }
        assert_eq!(c.state, Closed);
        assert_eq!(c.version, 7);
        assert_eq!(c.updated_at, t(6));
    }

    #[test]
    fn the_record_keeps_when_it_was_implemented_and_how_it_ended() {
        use ChangeState::*;
        let mut c = draft();
        for (i, to) in [Submitted, Approved, Scheduled].into_iter().enumerate() {
            c = c.transition(to, t(i as i64 + 1)).expect("legal");
        }
        assert_eq!(c.implementation, None);
        c = c.transition(Implementing, t(4)).expect("legal");
        assert_eq!(c.implementation, Some(Implementation::Ongoing { started_at: t(4) }));
        c = c.transition(Failed, t(5)).expect("legal");
        let failed = Implementation::Finished { started_at: t(4), ended_at: t(5), outcome: Outcome::Failed };
        assert_eq!(c.implementation, Some(failed));
        c = c.transition(RolledBack, t(6)).expect("legal");
        let rolled_back = Implementation::Finished { started_at: t(4), ended_at: t(6), outcome: Outcome::RolledBack };
        assert_eq!(c.implementation, Some(rolled_back));
        c = c.transition(Closed, t(7)).expect("legal");
        assert_eq!(c.implementation, Some(rolled_back), "closing keeps how it ended");
    }

    #[test]
    fn illegal_transition_names_from_to_and_allowed() {
        let err = draft().transition(ChangeState::Implementing, t(1)).expect_err("illegal");
        assert_eq!(err.from, ChangeState::Draft);
        assert_eq!(err.to, ChangeState::Implementing);
        assert_eq!(err.allowed, vec![ChangeState::Submitted, ChangeState::Cancelled]);
        assert_eq!(
            err.to_string(),
            "cannot move a change from draft to implementing; allowed from draft: submitted, cancelled"
        );
    }

    #[test]
    fn only_a_complete_plan_decided_by_others_counts_as_approved_by_another() {
        use crate::domain::approval::{ApprovalPlan, Decision, Step};
        use crate::domain::catalog::{Rule, Span};
        let approved = |by: &str| {
            let mut c = draft().transition(ChangeState::Submitted, t(1)).expect("legal");
            c = c.transition(ChangeState::Approved, t(2)).expect("legal");
            let decision =
                Decision { by: by.into(), group: Some("cab".into()), at: t(2), comment: None, on_behalf_of: None };
            c.approval = Some(ApprovalPlan {
                steps: vec![Step {
                    level: 1,
                    name: "emergency".into(),
                    service: None,
                    groups: vec!["cab".into()],
                    users: vec![],
                    rule: Rule::AnyOf,
                    sla: Span::new(std::time::Duration::from_secs(3600)),
                    escalate_to: "cab".into(),
                    due_at: Some(t(2)),
                    approvals: vec![decision],
                    cadence: Default::default(),
                    escalation: None,
                }],
                rejected: None,
                sla_breached: false,
            });
            c
        };
        assert!(approved("carol").approved_by_another());
        assert!(!approved("alice").approved_by_another(), "its requester's own approval");
        let mut by_the_hub = approved("carol");
        by_the_hub.approval = None;
        assert!(!by_the_hub.approved_by_another(), "approved on submission, as emergencies once were");
        let submitted = draft().transition(ChangeState::Submitted, t(1)).expect("legal");
        assert!(!submitted.approved_by_another());
    }

    #[test]
    fn terminal_states_say_so() {
        let mut c = draft().transition(ChangeState::Cancelled, t(1)).expect("legal");
        c.version = 2;
        let err = c.transition(ChangeState::Draft, t(2)).expect_err("terminal");
        assert!(err.to_string().ends_with("allowed from cancelled: none (terminal state)"), "{err}");
    }

    #[test]
    fn only_open_states_can_be_cancelled() {
        for s in ChangeState::ALL {
            assert_eq!(s.can_move_to(ChangeState::Cancelled), s.is_open(), "{s}");
        }
    }

    #[test]
    fn every_state_is_reachable_from_draft_and_reaches_a_terminal_state() {
        use std::collections::BTreeSet;
        let mut seen = BTreeSet::from([ChangeState::Draft]);
        let mut frontier = vec![ChangeState::Draft];
        while let Some(s) = frontier.pop() {
            for &n in s.allowed_next() {
                if seen.insert(n) {
                    frontier.push(n);
                }
            }
        }
        assert_eq!(seen.len(), ChangeState::ALL.len());
        for s in ChangeState::ALL {
            let mut cur = s;
            let mut steps = 0;
            while !cur.is_terminal() {
                cur = *cur.allowed_next().last().expect("non-terminal has a successor");
                steps += 1;
                assert!(steps < 20, "{s} never terminates");
            }
        }
    }

    #[test]
    fn states_serialize_as_snake_case_names() {
        for s in ChangeState::ALL {
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
            let back: ChangeState = serde_json::from_value(serde_json::json!(s.as_str())).expect("parse");
            assert_eq!(back, s);
        }
    }

    fn any_state() -> impl Strategy<Value = ChangeState> {
        proptest::sample::select(ChangeState::ALL.to_vec())
    }

    proptest! {
        /// Over any sequence of requested transitions: legal ones apply and bump the
        /// version by one; illegal ones change nothing and name what was allowed.
        #[test]
        fn random_transition_sequences_respect_the_lifecycle(targets in proptest::collection::vec(any_state(), 0..40)) {
            let mut c = draft();
            for (i, to) in targets.into_iter().enumerate() {
                let before = c.clone();
                match c.transition(to, t(i as i64 + 1)) {
                    Ok(next) => {
                        prop_assert!(before.state.allowed_next().contains(&to));
                        prop_assert_eq!(next.state, to);
                        prop_assert_eq!(next.version, before.version + 1);
                        prop_assert_eq!(&next.title, &before.title);
                        prop_assert_eq!(next.created_at, before.created_at);
                        c = next;
                    }
                    Err(e) => {
                        prop_assert!(!before.state.can_move_to(to));
                        prop_assert_eq!(e.from, before.state);
                        prop_assert_eq!(e.to, to);
                        prop_assert_eq!(e.allowed, before.state.allowed_next().to_vec());
                    }
                }
                // Once terminal, always terminal.
                if before.state.is_terminal() {
                    prop_assert_eq!(c.state, before.state);
                }
            }
        }
    }
}
