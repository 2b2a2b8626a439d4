//! Whom a change waits for: the people who may decide its current approval
//! level, by group, by name, or (a peer review) anyone but its requester.
//! The stores keep one index entry per change and principal, so "waiting for
//! my decision" reads the caller's few partitions instead of every change.

use std::collections::BTreeSet;

use super::change::{Change, ChangeState};

/// Who may decide an open step of a change's current approval level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Awaiting {
    /// Members of a group the step names (for `all_of`, a group that has not approved yet).
    Group(String),
    /// A person the step names (an incident commander).
    User(String),
    /// Anyone but the requester: a peer review.
    Peer,
}

/// Whom `change` waits for: nobody unless it is submitted with a current
/// approval level; then every principal of that level's open steps.
pub fn awaiting(change: &Change) -> BTreeSet<Awaiting> {
    let Some(plan) = change.approval.as_ref().filter(|_| change.state == ChangeState::Submitted) else {
        return BTreeSet::new();
    };
    let Some(level) = plan.current_level() else { return BTreeSet::new() };
    let mut who = BTreeSet::new();
    for step in plan.steps.iter().filter(|s| s.level == level && !s.is_complete()) {
        if step.is_peer_review() {
            who.insert(Awaiting::Peer);
            continue;
        }
        let approved = |g: &String| step.approvals.iter().any(|a| a.group.as_ref() == Some(g));
        let open_groups = step.groups.iter().filter(|g| step.rule == super::catalog::Rule::AnyOf || !approved(g));
        who.extend(open_groups.cloned().map(Awaiting::Group));
        who.extend(step.users.iter().cloned().map(Awaiting::User));
    }
    who
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::Caller;
    use crate::domain::approval::{ApprovalPlan, Verdict};
    use crate::domain::catalog::{Catalog, CatalogView, Role};
    use crate::domain::new_change::NewChange;
    use crate::domain::{ChangeId, ServiceName, TenantId};
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
    }

    fn view() -> CatalogView {
        let catalog: Catalog = serde_json::from_value(json!({
            "services": [{"name": "payments", "owner_group": "payments-team", "tier": 1, "approval": [
                {"name": "team-lead", "groups": ["payments-leads"], "sla": "4h", "escalate_to": "managers"},
                {"name": "cab", "groups": ["cab", "security"], "rule": "all_of", "sla": "1d", "escalate_to": "cto"}
            ]}]
        }))
        .expect("catalog");
        CatalogView::new(1, catalog)
    }

    fn submitted(peer_review: bool) -> Change {
        let services = [ServiceName::parse("payments").expect("service")];
        let mut change = NewChange::basic("x", &["payments"], "production", now(), now() + chrono::Duration::hours(1))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "rita".into(), now());
        change.state = ChangeState::Submitted;
        change.approval = Some(ApprovalPlan::build(&view(), &services, peer_review, now()).expect("plan"));
        change
    }

    fn approve(change: &mut Change, user: &str, groups: &[&str]) {
        let caller = Caller {
            tenant: change.tenant.clone(),
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            granted: Default::default(),
        };
        let roles = [Role::Approver].into();
        if let Some(plan) = change.approval.as_mut() {
            plan.decide(&caller, &roles, "rita", Verdict::Approve, None, now()).expect("approve");
        }
    }

    fn group(g: &str) -> Awaiting {
        Awaiting::Group(g.into())
    }

    #[test]
    fn a_change_waits_for_its_current_levels_open_groups_only() {
        let mut change = submitted(false);
        assert_eq!(awaiting(&change), BTreeSet::from([group("payments-leads")]));
        approve(&mut change, "pat", &["payments-leads"]);
        assert_eq!(awaiting(&change), BTreeSet::from([group("cab"), group("security")]));
        approve(&mut change, "cam", &["cab"]);
        assert_eq!(awaiting(&change), BTreeSet::from([group("security")]), "all_of: the cab has approved");
        approve(&mut change, "sec", &["security"]);
        assert!(awaiting(&change).is_empty(), "approved: nobody is waited for");
    }

    #[test]
    fn a_peer_review_waits_for_anyone_and_a_draft_for_nobody() {
        assert_eq!(awaiting(&submitted(true)), BTreeSet::from([Awaiting::Peer]));
        let mut draft = submitted(false);
        draft.state = ChangeState::Draft;
        assert!(awaiting(&draft).is_empty());
    }

    #[test]
    fn a_named_commander_is_waited_for_by_name() {
        let mut change = submitted(false);
        if let Some(step) = change.approval.as_mut().and_then(|p| p.steps.first_mut()) {
            step.users.push("ivy".into());
        }
        assert_eq!(awaiting(&change), BTreeSet::from([group("payments-leads"), Awaiting::User("ivy".into())]));
    }
}
