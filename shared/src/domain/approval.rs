//! A change's approval plan and the rules of deciding it: levels in order,
//! any-of / all-of groups, a deadline per level, and dual control (nobody
//! approves their own change; one person's approval counts at one level
//! only; high-risk and privileged changes need a peer review). A normal
//! change climbs its services' chains; an emergency change waits for one
//! approval by the emergency approvers (or its major incident's commander).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use super::access::Caller;
use super::catalog::{CatalogView, Role, Rule, Span};
use super::escalation::{Cadence, Escalation};
use super::ids::ServiceName;

/// The name of the step a peer (anyone but the requester) decides.
pub const PEER_REVIEW: &str = "peer-review";
/// The name of the one step an emergency change waits for.
pub const EMERGENCY_APPROVAL: &str = "emergency";

/// One approval, or the rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    /// The group the decision was made as (none for a peer review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Set when `by` decided as another approver's delegate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<OnBehalf>,
}

/// Whom a delegate decided for, under which delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnBehalf {
    pub user: String,
    pub delegation: String,
}

impl Decision {
    /// Whether `user` made this decision, themself or through their delegate:
    /// dual control counts both as the same person's decision.
    pub fn involves(&self, user: &str) -> bool {
        self.by == user || self.on_behalf_of.as_ref().is_some_and(|o| o.user == user)
    }
}

/// A delegate deciding for their delegator: the delegator's groups (as their
/// token showed them when they delegated) on the delegated levels only.
#[derive(Debug, Clone, Copy)]
pub struct Proxy<'a> {
    pub delegator: &'a str,
    pub delegation: &'a str,
    pub groups: &'a [String],
    pub levels: &'a [String],
}

/// One requirement of the plan: a service's approval level, or the peer review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Steps run level by level, 1 first; the steps of one level run side by side.
    pub level: u32,
    pub name: String,
    /// The service whose chain this level comes from (none for the peer review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    /// Groups whose members may decide; empty for the peer review (any other person with a role).
    pub groups: Vec<String>,
    /// People who may decide the step by name, whatever their groups: the
    /// commander of the major incident an emergency change fixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    pub rule: Rule,
    pub sla: Span,
    pub escalate_to: String,
    /// Set when the step's level becomes the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub approvals: Vec<Decision>,
    /// How the step is chased while it waits (the default cadence when absent).
    #[serde(default, skip_serializing_if = "Cadence::is_default")]
    pub cadence: Cadence,
    /// Where the step stands in its cadence, from when its level opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

impl Step {
    /// A peer review: anyone but the requester holding a role may decide it.
    pub fn is_peer_review(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty()
    }

    pub fn is_complete(&self) -> bool {
        match self.rule {
            _ if self.groups.is_empty() => !self.approvals.is_empty(),
            Rule::AnyOf => !self.approvals.is_empty(),
            Rule::AllOf => self.groups.iter().all(|g| self.approvals.iter().any(|a| a.group.as_deref() == Some(g))),
        }
    }

    /// The group `caller` would approve this step as, if they may.
    /// The group `caller` would approve this step as (none when named in
    /// `users` or for a peer review), if they may.
    fn group_for(&self, caller: &Caller) -> Option<Option<String>> {
        if self.is_peer_review() {
            return Some(None);
        }
        let open = |g: &&String| match self.rule {
            Rule::AnyOf => true,
            Rule::AllOf => !self.approvals.iter().any(|a| a.group.as_deref() == Some(g.as_str())),
        };
        match self.groups.iter().filter(open).find(|g| caller.in_group(g)) {
            Some(g) => Some(Some(g.clone())),
            None if self.users.contains(&caller.user) => Some(None),
            None => None,
        }
    }

    fn describe(&self) -> String {
        let whose = self.service.as_ref().map(|s| format!(" of service {s}")).unwrap_or_default();
        if self.is_peer_review() {
            format!("level {} ({}) needs a peer review by someone other than the requester", self.level, self.name)
        } else {
            let rule = match self.rule {
                Rule::AnyOf => "a member of any of",
                Rule::AllOf => "a member of each of",
            };
            let named =
                if self.users.is_empty() { String::new() } else { format!(", or by name: {}", self.users.join(", ")) };
            format!("level {} ({}{whose}) needs {rule}: {}{named}", self.level, self.name, self.groups.join(", "))
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalPlan {
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Decision>,
    /// A level waited past its last escalation: the CAB was told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sla_breached: bool,
}

/// Why a plan cannot be built for a normal change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoChain(pub String);

/// Where an approval plan stands after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    /// The level is still open, or the next level is now current.
    Pending,
    /// Every step is complete.
    Approved,
    Rejected,
}

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// The caller may not decide (dual control, wrong group, no role).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing is waiting for a decision.
    #[error("{0}")]
    Closed(String),
    /// An approval was sent while the current level waits for a peer review:
    /// an approval is never spent on a peer review.
    #[error("{0}")]
    PeerReviewRequired(String),
    /// A peer review was sent while no peer review is waiting.
    #[error("{0}")]
    NoPeerReviewPending(String),
}

/// What a decision is: an approval of the current level's steps, the peer
/// review that precedes them, or the rejection of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
    PeerReview,
}

impl Verdict {
    /// Whether a decision of this kind acts on `step`: a peer review on peer
    /// reviews only, an approval never on one, a rejection on any step.
    fn acts_on(self, step: &Step) -> bool {
        match self {
            Verdict::PeerReview => step.is_peer_review(),
            Verdict::Approve => !step.is_peer_review(),
            Verdict::Reject => true,
        }
    }
}

/// A step of a plan, as a decision's answer names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    pub level: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
}

impl StepRef {
    pub(super) fn of(step: &Step) -> Self {
        StepRef { level: step.level, name: step.name.clone(), service: step.service.clone() }
    }
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(s) => write!(f, "level {} ({} of {s})", self.level, self.name),
            None => write!(f, "level {} ({})", self.level, self.name),
        }
    }
}

/// A recorded decision: where the plan stands, and the steps it counted for
/// (every step of the level it completed or joined; the step a rejection was made at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub status: PlanStatus,
    pub counted_for: Vec<StepRef>,
}

impl ApprovalPlan {
    /// The plan of a normal change on `services`: a peer review first when
    /// `needs_peer_review`, then each service's catalog chain, level by level.
    pub fn build(
        catalog: &CatalogView,
        services: &[ServiceName],
        needs_peer_review: bool,
        now: DateTime<Utc>,
    ) -> Result<ApprovalPlan, NoChain> {
        let mut steps = Vec::new();
        let offset = u32::from(needs_peer_review);
        for name in services {
            let svc = catalog.catalog.service(name).ok_or_else(|| {
                NoChain(format!(
                    "service {name} is not in the catalog; a normal change needs the approval chain the catalog gives each service"
                ))
            })?;
            if svc.approval.is_empty() {
                return Err(NoChain(format!(
                    "service {name} has no approval chain in the catalog; add one, or use a standard change template"
                )));
            }
            for (i, level) in svc.approval.iter().enumerate() {
                steps.push(Step {
                    level: offset + i as u32 + 1,
                    name: level.name.clone(),
                    service: Some(name.clone()),
                    groups: level.groups.clone(),
                    users: vec![],
                    rule: level.rule,
                    sla: level.sla.clone(),
                    escalate_to: level.escalate_to.clone(),
                    due_at: None,
                    approvals: vec![],
                    cadence: level.cadence(),
                    escalation: None,
                });
            }
        }
        if needs_peer_review {
            let first = steps.first().cloned();
            steps.insert(
                0,
                Step {
                    level: 1,
                    name: PEER_REVIEW.into(),
                    service: None,
                    groups: vec![],
                    users: vec![],
                    rule: Rule::AnyOf,
                    sla: first
                        .as_ref()
                        .map_or_else(|| Span::new(std::time::Duration::from_secs(86_400)), |s| s.sla.clone()),
                    cadence: first.as_ref().map(|s| s.cadence.clone()).unwrap_or_default(),
                    escalate_to: first.map_or_else(String::new, |s| s.escalate_to),
                    due_at: None,
                    approvals: vec![],
                    escalation: None,
                },
            );
        }
        let mut plan = ApprovalPlan { steps, rejected: None, sla_breached: false };
        plan.open_current_level(now);
        Ok(plan)
    }

    /// The plan of an emergency change: one level, one approval by a member
    /// of the catalog's emergency approvers (default: the cab role's groups)
    /// within `emergency.approval_sla`. An emergency that fixes an open major
    /// incident may also be confirmed by that incident's `commander`, or by a
    /// member of the cab. Dual control still holds: never the requester.
    pub fn emergency(
        catalog: &CatalogView,
        commander: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ApprovalPlan, NoChain> {
        let mut groups = catalog.catalog.emergency_approvers().to_vec();
        if commander.is_some() {
            for g in &catalog.catalog.roles.cab {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        if groups.is_empty() {
            return Err(NoChain(
                "an emergency change needs an approver, and the catalog names no emergency.approvers and no group holding the cab role".into(),
            ));
        }
        let policy = &catalog.catalog.emergency;
        let step = Step {
            level: 1,
            name: EMERGENCY_APPROVAL.into(),
            service: None,
            escalate_to: groups.join(", "),
            groups,
            users: commander.map(str::to_owned).into_iter().collect(),
            rule: Rule::AnyOf,
            sla: policy.approval_sla.clone(),
            due_at: None,
            approvals: vec![],
            cadence: Cadence::default(),
            escalation: None,
        };
        let mut plan = ApprovalPlan { steps: vec![step], rejected: None, sla_breached: false };
        plan.open_current_level(now);
        Ok(plan)
    }

    /// Whether `user` is named (not by group) on a step of the current level.
    pub fn names(&self, user: &str) -> bool {
        let level = self.current_level();
        self.steps.iter().any(|s| Some(s.level) == level && s.users.iter().any(|u| u == user))
    }

    /// Takes `user` off every step they are named on: they no longer hold
    /// what named them (the incident was resolved, or has another commander).
    pub fn unname(&mut self, user: &str) {
        for step in &mut self.steps {
            step.users.retain(|u| u != user);
        }
    }

    /// The level now waiting for decisions, if any.
    pub fn current_level(&self) -> Option<u32> {
        if self.rejected.is_some() {
            return None;
        }
        self.steps.iter().filter(|s| !s.is_complete()).map(|s| s.level).min()
    }

    /// The earliest deadline of the current level: when it becomes overdue.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        let level = self.current_level()?;
        self.steps.iter().filter(|s| s.level == level && !s.is_complete()).filter_map(|s| s.due_at).min()
    }

    fn open_current_level(&mut self, now: DateTime<Utc>) {
        if let Some(level) = self.current_level() {
            for step in self.steps.iter_mut().filter(|s| s.level == level && s.due_at.is_none()) {
                step.due_at = Some(now + step.sla.chrono());
                step.start_cadence();
            }
        }
    }

    /// Everyone who has approved any step.
    pub fn approvers(&self) -> BTreeSet<&str> {
        self.steps.iter().flat_map(|s| s.approvals.iter().map(|a| a.by.as_str())).collect()
    }

    /// The incomplete steps of the current level a decision of kind `verdict` acts on.
    fn waiting(&self, level: u32, verdict: Verdict) -> impl Iterator<Item = (usize, &Step)> {
        self.steps.iter().enumerate().filter(move |(_, s)| s.level == level && !s.is_complete() && verdict.acts_on(s))
    }

    /// The steps now waiting for a decision (none once the plan is decided).
    pub fn waiting_for(&self) -> Vec<StepRef> {
        let Some(level) = self.current_level() else { return vec![] };
        self.steps.iter().filter(|s| s.level == level && !s.is_complete()).map(StepRef::of).collect()
    }

    /// Records `caller`'s verdict on the current level of `requester`'s change.
    /// A peer review (no groups) is given with [`Verdict::PeerReview`] by
    /// anyone else who may change things (a requester, approver, cab member
    /// or admin, not an auditor); an approval never counts for it, and counts
    /// for every other step of the current level the caller may decide. The
    /// caller must not be the requester, nor have approved or peer reviewed
    /// an earlier level, and must belong to a group the step requires. A
    /// rejection may be made at any step, the peer review included.
    pub fn decide(
        &mut self,
        caller: &Caller,
        roles: &BTreeSet<Role>,
        requester: &str,
        verdict: Verdict,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Decided, DecisionError> {
        self.decide_as(caller, roles, requester, verdict, comment, now, None)
    }

    /// [`Self::decide`] by `caller` as `proxy.delegator`'s delegate: on the
    /// delegated levels' steps, as the delegator's groups, the decision
    /// recorded as `caller`'s on behalf of the delegator. Dual control holds
    /// for both: neither may have requested the change, nor decided an
    /// earlier level, nor already decided the step (themself or through a
    /// delegation), so one person never counts twice on an `all_of` level.
    /// `roles` are the caller's own: a delegate needs a deciding role.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_on_behalf(
        &mut self,
        caller: &Caller,
        roles: &BTreeSet<Role>,
        requester: &str,
        verdict: Verdict,
        comment: Option<String>,
        now: DateTime<Utc>,
        proxy: Proxy<'_>,
    ) -> Result<Decided, DecisionError> {
        self.decide_as(caller, roles, requester, verdict, comment, now, Some(proxy))
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_as(
        &mut self,
        caller: &Caller,
        roles: &BTreeSet<Role>,
        requester: &str,
        verdict: Verdict,
        comment: Option<String>,
        now: DateTime<Utc>,
        proxy: Option<Proxy<'_>>,
    ) -> Result<Decided, DecisionError> {
        let Some(level) = self.current_level() else {
            return Err(DecisionError::Closed("no approval level is waiting for a decision".into()));
        };
        if caller.user == requester {
            return Err(DecisionError::Forbidden(format!(
                "dual control: {} requested this change and cannot decide it; another person must",
                caller.user
            )));
        }
        if let Some(p) = proxy.filter(|p| p.delegator == requester) {
            return Err(DecisionError::Forbidden(format!(
                "dual control: {} requested this change; {}, their delegate (delegation {}), cannot decide it for them",
                p.delegator, caller.user, p.delegation
            )));
        }
        let persons: Vec<&str> = std::iter::once(caller.user.as_str()).chain(proxy.map(|p| p.delegator)).collect();
        let involved =
            |s: &Step| s.approvals.iter().find(|a| persons.iter().any(|p| a.involves(p))).map(|a| a.by.clone());
        let open: Vec<&Step> = self.steps.iter().filter(|s| s.level == level && !s.is_complete()).collect();
        let described = || open.iter().map(|s| s.describe()).collect::<Vec<_>>().join("; ");
        if self.waiting(level, verdict).next().is_none() {
            return Err(match verdict {
                Verdict::PeerReview => DecisionError::NoPeerReviewPending(format!(
                    "no peer review is waiting: {}; decide it with approve or reject",
                    described()
                )),
                _ => DecisionError::PeerReviewRequired(format!(
                    "{}: give it with {{\"decision\": \"peer_review\"}} (an approval never counts for it); the approval levels open once it is done",
                    described()
                )),
            });
        }
        let peer_only = self.waiting(level, verdict).all(|(_, s)| s.is_peer_review());
        let deciding_roles = [Role::Approver, Role::Cab, Role::Admin];
        if !peer_only && !self.names(&caller.user) && !deciding_roles.iter().any(|r| roles.contains(r)) {
            return Err(DecisionError::Forbidden(
                "deciding an approval level needs the approver, cab or admin role".into(),
            ));
        }
        let peer_roles = [Role::Requester, Role::Approver, Role::Cab, Role::Admin];
        if !peer_roles.iter().any(|r| roles.contains(r)) {
            return Err(DecisionError::Forbidden(
                "a peer review needs the requester, approver, cab or admin role; an auditor only reads".into(),
            ));
        }
        if let Some((earlier, who)) =
            self.steps.iter().filter(|s| s.level < level).find_map(|s| involved(s).map(|who| (s, who)))
        {
            let did = if earlier.is_peer_review() { "peer reviewed" } else { "approved" };
            let through = if who == caller.user { String::new() } else { format!(" (through {who})") };
            return Err(DecisionError::Forbidden(format!(
                "dual control: {} already {did} level {} ({}){through}; level {level} needs someone else",
                persons.join(" or "),
                earlier.level,
                earlier.name
            )));
        }
        let acting = match proxy {
            Some(p) => Caller { groups: p.groups.to_vec(), ..caller.clone() },
            None => caller.clone(),
        };
        let delegated = |s: &Step| proxy.is_none_or(|p| p.levels.contains(&s.name));
        let eligible: Vec<(usize, Option<String>)> = self
            .waiting(level, verdict)
            .filter(|(_, s)| involved(s).is_none() && delegated(s))
            .filter_map(|(i, s)| s.group_for(&acting).map(|g| (i, g)))
            .collect();
        if eligible.is_empty() {
            let waiting: Vec<String> = self
                .waiting(level, verdict)
                .map(|(_, s)| {
                    if let Some(who) = involved(s) {
                        format!("{} (already approved by {who})", s.describe())
                    } else {
                        s.describe()
                    }
                })
                .collect();
            let groups = if acting.groups.is_empty() { "none".to_owned() } else { acting.groups.join(", ") };
            let whose = match proxy {
                Some(p) => format!(
                    "as {}'s delegate (delegation {}, levels {}) their groups",
                    p.delegator,
                    p.delegation,
                    p.levels.join(", ")
                ),
                None => "your groups".to_owned(),
            };
            return Err(DecisionError::Forbidden(format!("{}; {whose}: {groups}", waiting.join("; "))));
        }
        let counted_for: Vec<StepRef> =
            eligible.iter().filter_map(|(i, _)| self.steps.get(*i)).map(StepRef::of).collect();
        let on_behalf_of =
            proxy.map(|p| OnBehalf { user: p.delegator.to_owned(), delegation: p.delegation.to_owned() });
        let decision = |group: Option<String>| Decision {
            by: caller.user.clone(),
            group,
            at: now,
            comment: comment.clone(),
            on_behalf_of: on_behalf_of.clone(),
        };
        if verdict == Verdict::Reject {
            self.rejected = Some(decision(eligible.first().and_then(|(_, g)| g.clone())));
            let counted_for = counted_for.into_iter().take(1).collect();
            return Ok(Decided { status: PlanStatus::Rejected, counted_for });
        }
        for (i, group) in eligible {
            if let Some(step) = self.steps.get_mut(i) {
                step.approvals.push(decision(group));
            }
        }
        if self.current_level().is_none() {
            return Ok(Decided { status: PlanStatus::Approved, counted_for });
        }
        self.open_current_level(now);
        Ok(Decided { status: PlanStatus::Pending, counted_for })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;
    use crate::domain::catalog::Catalog;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
    }

    fn view() -> CatalogView {
        let catalog: Catalog = serde_json::from_value(json!({
            "services": [
                {"name": "payments", "owner_group": "payments-team", "tier": 1,
                 "approval": [
                    {"name": "team-lead", "groups": ["payments-leads"], "sla": "4h", "escalate_to": "payments-managers"},
                    {"name": "cab", "groups": ["cab", "security"], "rule": "all_of", "sla": "1d", "escalate_to": "cto"}
                 ]},
                {"name": "ledger", "owner_group": "ledger-team", "tier": 2,
                 "approval": [{"name": "team-lead", "groups": ["ledger-leads"], "sla": "2h", "escalate_to": "ledger-managers"}]},
                {"name": "docs", "owner_group": "docs-team", "tier": 4}
            ]
        }))
        .expect("catalog");
        CatalogView::new(1, catalog)
    }

    fn svc(names: &[&str]) -> Vec<ServiceName> {
        names.iter().map(|n| ServiceName::parse(n).expect("name")).collect()
    }

    fn who(user: &str, groups: &[&str]) -> Caller {
        Caller {
            tenant: TenantId::parse("acme").expect("tenant"),
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            granted: BTreeSet::new(),
        }
    }

    fn approver() -> BTreeSet<Role> {
        BTreeSet::from([Role::Approver])
    }

    fn approve(plan: &mut ApprovalPlan, c: &Caller) -> Result<PlanStatus, DecisionError> {
        plan.decide(c, &approver(), "rita", Verdict::Approve, None, now()).map(|d| d.status)
    }

    #[test]
    fn levels_open_in_order_with_deadlines_from_their_sla() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments", "ledger"]), false, now()).expect("plan");
        assert_eq!(plan.current_level(), Some(1));
        assert_eq!(plan.due_at(), Some(now() + chrono::Duration::hours(2)));
        assert_eq!(approve(&mut plan, &who("pat", &["payments-leads"])), Ok(PlanStatus::Pending));
        assert_eq!(plan.current_level(), Some(1), "ledger's level 1 is still open");
        assert_eq!(approve(&mut plan, &who("lee", &["ledger-leads"])), Ok(PlanStatus::Pending));
        assert_eq!(plan.current_level(), Some(2));
        assert_eq!(plan.due_at(), Some(now() + chrono::Duration::days(1)));
        assert_eq!(approve(&mut plan, &who("cam", &["cab"])), Ok(PlanStatus::Pending), "all_of needs security too");
        assert_eq!(approve(&mut plan, &who("sec", &["security"])), Ok(PlanStatus::Approved));
        assert_eq!(plan.current_level(), None);
    }

    #[test]
    fn a_delegate_counts_as_the_delegator_for_dual_control_across_levels() {
        let (groups, levels) = (vec!["payments-leads".to_owned()], vec!["team-lead".to_owned()]);
        let proxy = Proxy { delegator: "pat", delegation: "d1", groups: &groups, levels: &levels };
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), false, now()).expect("plan");
        let dave = who("dave", &["engineers"]);
        let decided = plan.decide_on_behalf(&dave, &approver(), "rita", Verdict::Approve, None, now(), proxy);
        assert_eq!(decided.map(|d| d.status), Ok(PlanStatus::Pending));
        let recorded = &plan.steps[0].approvals[0];
        assert_eq!((recorded.by.as_str(), recorded.group.as_deref()), ("dave", Some("payments-leads")));
        assert_eq!(recorded.on_behalf_of, Some(OnBehalf { user: "pat".into(), delegation: "d1".into() }));
        let err = approve(&mut plan, &who("pat", &["cab"])).expect_err("pat approved level 1 through dave");
        assert!(
            err.to_string().starts_with("dual control: pat already approved level 1 (team-lead) (through dave)"),
            "{err}"
        );
        let cab = vec!["cab".to_owned()];
        let cab_levels = vec!["cab".to_owned()];
        let proxy = Proxy { delegator: "cam", delegation: "d2", groups: &cab, levels: &cab_levels };
        let err = plan
            .decide_on_behalf(&dave, &approver(), "rita", Verdict::Approve, None, now(), proxy)
            .expect_err("dave approved level 1");
        assert!(err.to_string().starts_with("dual control: dave or cam already approved level 1"), "{err}");
    }

    #[test]
    fn the_requester_never_decides_their_own_change() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), false, now()).expect("plan");
        let err = approve(&mut plan, &who("rita", &["payments-leads", "cab"])).expect_err("self");
        assert!(matches!(&err, DecisionError::Forbidden(m) if m.starts_with("dual control: rita requested")), "{err}");
    }

    #[test]
    fn one_person_approves_at_one_level_only() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), false, now()).expect("plan");
        let both = who("pat", &["payments-leads", "cab", "security"]);
        approve(&mut plan, &both).expect("level 1");
        let err = approve(&mut plan, &both).expect_err("level 2 by the same person");
        assert!(err.to_string().contains("already approved level 1 (team-lead)"), "{err}");
    }

    #[test]
    fn an_approver_outside_the_required_groups_is_told_which_groups_decide() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), false, now()).expect("plan");
        let err = approve(&mut plan, &who("cam", &["cab"])).expect_err("not level 1's group");
        assert_eq!(
            err.to_string(),
            "level 1 (team-lead of service payments) needs a member of any of: payments-leads; your groups: cab"
        );
        let err = plan
            .decide(
                &who("pat", &["payments-leads"]),
                &BTreeSet::from([Role::Requester]),
                "rita",
                Verdict::Approve,
                None,
                now(),
            )
            .expect_err("no approver role");
        assert!(err.to_string().contains("needs the approver, cab or admin role"), "{err}");
    }

    #[test]
    fn high_risk_changes_start_with_a_peer_review_anyone_else_may_give() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        assert_eq!(plan.steps[0].name, PEER_REVIEW);
        assert_eq!(plan.steps[1].level, 2);
        let peer = who("dev", &["engineers"]);
        let reviewed = plan.decide(&peer, &BTreeSet::from([Role::Requester]), "rita", Verdict::PeerReview, None, now());
        let peer_review = StepRef { level: 1, name: PEER_REVIEW.into(), service: None };
        assert_eq!(reviewed, Ok(Decided { status: PlanStatus::Pending, counted_for: vec![peer_review] }));
        assert_eq!(plan.current_level(), Some(2));
        let outsider = who("eve", &[]);
        let mut fresh = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        assert!(fresh.decide(&outsider, &BTreeSet::new(), "rita", Verdict::PeerReview, None, now()).is_err());
    }

    #[test]
    fn an_approval_is_never_spent_on_the_peer_review() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        let pat = who("pat", &["payments-leads"]);
        let err = plan.decide(&pat, &approver(), "rita", Verdict::Approve, None, now()).expect_err("peer review first");
        assert!(
            matches!(&err, DecisionError::PeerReviewRequired(m) if m.contains(r#"{"decision": "peer_review"}"#)),
            "{err}"
        );
        assert!(plan.steps.iter().all(|s| s.approvals.is_empty()), "nothing recorded");
        // The one payments lead keeps their approval for their own level, after someone else's peer review.
        plan.decide(
            &who("dev", &["engineers"]),
            &BTreeSet::from([Role::Requester]),
            "rita",
            Verdict::PeerReview,
            None,
            now(),
        )
        .expect("peer review");
        let err =
            plan.decide(&pat, &approver(), "rita", Verdict::PeerReview, None, now()).expect_err("no peer review waits");
        assert!(
            matches!(&err, DecisionError::NoPeerReviewPending(m) if m.contains("level 2 (team-lead of service payments)")),
            "{err}"
        );
        let decided = plan.decide(&pat, &approver(), "rita", Verdict::Approve, None, now()).expect("level 2");
        let team_lead = StepRef { level: 2, name: "team-lead".into(), service: svc(&["payments"]).pop() };
        assert_eq!(decided.counted_for, std::slice::from_ref(&team_lead));
        assert_eq!(team_lead.to_string(), "level 2 (team-lead of payments)");
        assert_eq!(plan.waiting_for().iter().map(|s| (s.level, s.name.as_str())).collect::<Vec<_>>(), [(3, "cab")]);
        assert_eq!(approve(&mut plan, &who("cam", &["cab"])), Ok(PlanStatus::Pending));
        assert_eq!(approve(&mut plan, &who("sec", &["security"])), Ok(PlanStatus::Approved));
        assert!(plan.waiting_for().is_empty());
    }

    #[test]
    fn a_peer_reviewer_approves_no_later_level_and_may_reject() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        let pat = who("pat", &["payments-leads"]);
        plan.decide(&pat, &approver(), "rita", Verdict::PeerReview, None, now()).expect("pat peer reviews");
        let err = approve(&mut plan, &pat).expect_err("and then approves level 2");
        assert!(
            err.to_string().contains("pat already peer reviewed level 1 (peer-review); level 2 needs someone else"),
            "{err}"
        );

        let mut rejected = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        let dev = who("dev", &["engineers"]);
        let out = rejected.decide(&dev, &BTreeSet::from([Role::Requester]), "rita", Verdict::Reject, None, now());
        let peer_review = StepRef { level: 1, name: PEER_REVIEW.into(), service: None };
        assert_eq!(out, Ok(Decided { status: PlanStatus::Rejected, counted_for: vec![peer_review] }));
        assert_eq!(rejected.rejected.map(|d| d.by), Some("dev".into()));
    }

    #[test]
    fn an_auditor_cannot_give_a_peer_review() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), true, now()).expect("plan");
        for only in [Role::Auditor, Role::Ingest] {
            let err = plan
                .decide(&who("aud", &["audit"]), &BTreeSet::from([only]), "rita", Verdict::PeerReview, None, now())
                .expect_err("an auditor only reads");
            assert!(
                err.to_string().contains("a peer review needs the requester, approver, cab or admin role"),
                "{err}"
            );
        }
        assert_eq!(plan.current_level(), Some(1), "the peer review is still waiting");
    }

    #[test]
    fn a_rejection_closes_the_plan() {
        let mut plan = ApprovalPlan::build(&view(), &svc(&["payments"]), false, now()).expect("plan");
        let out = plan.decide(
            &who("pat", &["payments-leads"]),
            &approver(),
            "rita",
            Verdict::Reject,
            Some("no rollback".into()),
            now(),
        );
        assert_eq!(out.map(|d| d.status), Ok(PlanStatus::Rejected));
        assert!(matches!(approve(&mut plan, &who("lee", &["payments-leads"])), Err(DecisionError::Closed(_))));
    }

    fn with_roles(cab: &[&str], approvers: &[&str]) -> CatalogView {
        let mut catalog = view().catalog;
        catalog.roles.cab = cab.iter().map(|g| g.to_string()).collect();
        catalog.emergency.approvers = approvers.iter().map(|g| g.to_string()).collect();
        CatalogView::new(1, catalog)
    }

    #[test]
    fn an_emergency_waits_for_one_approval_by_the_emergency_approvers_never_its_requester() {
        let mut plan = ApprovalPlan::emergency(&with_roles(&["cab"], &[]), None, now()).expect("plan");
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(
            (plan.steps[0].name.as_str(), plan.steps[0].groups.clone()),
            (EMERGENCY_APPROVAL, vec!["cab".into()])
        );
        assert_eq!(plan.due_at(), Some(now() + chrono::Duration::hours(1)));
        let err = approve(&mut plan, &who("rita", &["cab"])).expect_err("own emergency");
        assert!(err.to_string().starts_with("dual control: rita requested"), "{err}");
        assert!(approve(&mut plan, &who("pat", &["payments-leads"])).is_err(), "not an emergency approver");
        assert_eq!(approve(&mut plan, &who("cam", &["cab"])), Ok(PlanStatus::Approved));

        let mut ecab = ApprovalPlan::emergency(&with_roles(&["cab"], &["ecab"]), None, now()).expect("plan");
        assert!(approve(&mut ecab, &who("cam", &["cab"])).is_err(), "an ECAB replaces the cab");
        assert_eq!(approve(&mut ecab, &who("eve", &["ecab"])), Ok(PlanStatus::Approved));

        let err = ApprovalPlan::emergency(&with_roles(&[], &[]), None, now()).expect_err("nobody may approve");
        assert!(err.0.contains("no emergency.approvers"), "{err}");
    }

    #[test]
    fn an_incident_commander_confirms_an_emergency_by_name_while_named() {
        let plan = ApprovalPlan::emergency(&with_roles(&["cab"], &["ecab"]), Some("ivy"), now()).expect("plan");
        assert_eq!(plan.steps[0].groups, ["ecab", "cab"], "a cab member confirms an incident's fix too");
        assert!(plan.names("ivy") && !plan.names("cam"));
        let ivy = who("ivy", &["engineers"]);
        let requester_role = BTreeSet::from([Role::Requester]);
        let mut by_commander = plan.clone();
        let decided = by_commander.decide(&ivy, &requester_role, "rita", Verdict::Approve, None, now());
        assert_eq!(decided.map(|d| d.status), Ok(PlanStatus::Approved), "the commander needs no approving role");
        assert_eq!(by_commander.steps[0].approvals[0].group, None);
        let mut unnamed = plan.clone();
        unnamed.unname("ivy");
        let err = unnamed.decide(&ivy, &requester_role, "rita", Verdict::Approve, None, now()).expect_err("unnamed");
        assert!(err.to_string().contains("needs the approver, cab or admin role"), "{err}");
        let mut own = plan;
        let err = own.decide(&ivy, &requester_role, "ivy", Verdict::Approve, None, now()).expect_err("own");
        assert!(err.to_string().starts_with("dual control"), "{err}");
    }

    #[test]
    fn services_without_a_chain_cannot_take_normal_changes() {
        let err = ApprovalPlan::build(&view(), &svc(&["docs"]), false, now()).expect_err("no chain");
        assert!(err.0.contains("service docs has no approval chain"), "{err}");
        let err = ApprovalPlan::build(&view(), &svc(&["nowhere"]), false, now()).expect_err("unknown");
        assert!(err.0.contains("service nowhere is not in the catalog"), "{err}");
    }
}
