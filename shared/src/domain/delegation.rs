//! Delegation (out-of-office): an approver hands the approval levels they
//! decide to another person for a period. The delegate decides those levels
//! as the delegator would (as the delegator's groups), each decision recorded
//! on behalf of the delegator; dual control holds for both of them.
//!
//! The hub knows a person's groups only from their token, at request time, so
//! each person's part is checked from their own token: the delegator's groups
//! when they delegate (they must be in a group of every level they hand over;
//! those groups are recorded), the delegate's role when they decide (they must
//! hold the approver, cab or admin role then).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::FieldError;
use super::TenantId;
use super::access::Caller;
use super::approval::Proxy;
use super::catalog::Catalog;

/// The longest period one delegation may cover.
pub const MAX_DELEGATION_DAYS: i64 = 90;
/// Most delegations a tenant holds at once (active and upcoming, and revoked
/// ones until they would have ended).
pub const MAX_DELEGATIONS: usize = 500;

/// `POST /delegations`: the caller delegates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDelegation {
    pub delegate: String,
    /// The approval level names handed over; absent or empty: every level
    /// of the catalog the caller's groups decide.
    #[serde(default)]
    pub levels: Vec<String>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// Who revoked a delegation, when, and why if they said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revoked {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    pub id: String,
    pub tenant: TenantId,
    pub delegator: String,
    pub delegate: String,
    pub levels: Vec<String>,
    /// The delegator's groups that decide the delegated levels, as their token
    /// listed them when they delegated: the groups the delegate decides as.
    pub groups: Vec<String>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revoked>,
}

impl Delegation {
    /// Checks `req` from `caller` against the catalog and builds the record.
    pub fn new(
        caller: &Caller,
        catalog: &Catalog,
        req: NewDelegation,
        id: String,
        now: DateTime<Utc>,
    ) -> Result<Delegation, FieldError> {
        let delegate = req.delegate.trim().to_owned();
        if delegate.is_empty() || delegate.len() > 256 || delegate.chars().any(char::is_control) {
            return Err(FieldError::new("delegate", "delegate must name a user (1 to 256 characters)"));
        }
        if delegate == caller.user {
            return Err(FieldError::new("delegate", "delegate must be someone other than the delegator"));
        }
        if req.from >= req.until {
            return Err(FieldError::new("until", "until must be after from"));
        }
        if req.until <= now {
            return Err(FieldError::new("until", "until must be in the future"));
        }
        if req.until - req.from > Duration::days(MAX_DELEGATION_DAYS) {
            return Err(FieldError::new("until", format!("a delegation covers at most {MAX_DELEGATION_DAYS} days")));
        }
        let levels = catalog.services.iter().flat_map(|s| &s.approval);
        let mine: Vec<&super::catalog::ApprovalLevel> = levels.filter(|l| caller.in_any(&l.groups)).collect();
        let names: Vec<String> = if req.levels.is_empty() {
            let mut all: Vec<String> = mine.iter().map(|l| l.name.clone()).collect();
            all.sort();
            all.dedup();
            if all.is_empty() {
                let groups = if caller.groups.is_empty() { "none".to_owned() } else { caller.groups.join(", ") };
                return Err(FieldError::new(
                    "levels",
                    format!("your groups ({groups}) decide no approval level of the catalog: nothing to delegate"),
                ));
            }
            all
        } else {
            let mut named = req.levels.clone();
            named.sort();
            named.dedup();
            if let Some(bad) = named.iter().find(|n| !mine.iter().any(|l| &&l.name == n)) {
                return Err(FieldError::new(
                    "levels",
                    format!("level {bad:?} is not an approval level of the catalog that one of your groups decides"),
                ));
            }
            named
        };
        let mut groups: Vec<String> = mine
            .iter()
            .filter(|l| names.contains(&l.name))
            .flat_map(|l| l.groups.iter().filter(|g| caller.in_group(g)).cloned())
            .collect();
        groups.sort();
        groups.dedup();
        Ok(Delegation {
            id,
            tenant: caller.tenant.clone(),
            delegator: caller.user.clone(),
            delegate,
            levels: names,
            groups,
            from: req.from,
            until: req.until,
            reason: req.reason.trim().to_owned(),
            created_by: caller.user.clone(),
            created_at: now,
            revoked: None,
        })
    }

    /// In force at `at`: begun, not ended, not revoked.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.revoked.is_none() && self.from <= at && at < self.until
    }

    /// Not yet ended (active or upcoming), revoked or not.
    pub fn is_current(&self, at: DateTime<Utc>) -> bool {
        at < self.until
    }

    /// What the delegate decides as.
    pub fn proxy(&self) -> Proxy<'_> {
        Proxy { delegator: &self.delegator, delegation: &self.id, groups: &self.groups, levels: &self.levels }
    }
}

/// The tenant's delegations document: those not yet ended; an ended one
/// stays in the document's history and on the governance trail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub delegations: Vec<Delegation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).single().unwrap_or_default()
    }

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "services": [{
                "name": "payments", "owner_group": "payments", "tier": 1,
                "approval": [
                    {"name": "team", "groups": ["payments-leads"], "sla": "4h", "escalate_to": "x"},
                    {"name": "cab", "groups": ["cab", "security"], "rule": "all_of", "sla": "1d", "escalate_to": "x"}
                ]
            }]
        }))
        .unwrap_or_default()
    }

    fn who(user: &str, groups: &[&str]) -> Caller {
        Caller {
            tenant: TenantId::parse("acme").unwrap_or_else(|_| unreachable!()),
            user: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            granted: Default::default(),
        }
    }

    fn req(levels: &[&str], from: u32, until: u32) -> NewDelegation {
        NewDelegation {
            delegate: "bob".into(),
            levels: levels.iter().map(|l| (*l).to_owned()).collect(),
            from: at(from),
            until: at(until),
            reason: "leave".into(),
        }
    }

    #[test]
    fn delegating_every_level_takes_those_the_delegators_groups_decide() {
        let d = Delegation::new(&who("ann", &["security", "ops"]), &catalog(), req(&[], 1, 5), "d1".into(), at(0));
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.levels, vec!["cab".to_owned()]);
        assert_eq!(d.groups, vec!["security".to_owned()]);
        assert!(d.is_active(at(1)) && !d.is_active(at(5)) && !d.is_active(at(0)));
    }

    #[test]
    fn a_level_the_delegator_does_not_decide_is_refused_on_levels() {
        let err = Delegation::new(&who("ann", &["security"]), &catalog(), req(&["team"], 1, 5), "d1".into(), at(0));
        assert_eq!(err.map_err(|e| e.field), Err("levels".to_owned()));
    }

    #[test]
    fn a_period_backwards_or_too_long_is_refused_on_until() {
        let ann = who("ann", &["security"]);
        let backwards = Delegation::new(&ann, &catalog(), req(&[], 5, 1), "d".into(), at(0));
        assert_eq!(backwards.map_err(|e| e.field), Err("until".to_owned()));
        let mut long = req(&[], 1, 2);
        long.until = long.from + Duration::days(MAX_DELEGATION_DAYS + 1);
        assert_eq!(
            Delegation::new(&ann, &catalog(), long, "d".into(), at(0)).map_err(|e| e.field),
            Err("until".into())
        );
    }

    #[test]
    fn delegating_to_oneself_is_refused_on_delegate() {
        let mut r = req(&[], 1, 5);
        r.delegate = "ann".into();
        let err = Delegation::new(&who("ann", &["security"]), &catalog(), r, "d".into(), at(0));
        assert_eq!(err.map_err(|e| e.field), Err("delegate".to_owned()));
    }
}
