//! Who may do what: the caller's identity (from a verified token), the roles
//! their groups grant in their tenant, and the checks that say what is missing.

use std::collections::BTreeSet;

use super::catalog::{Role, RoleMap};
use super::ids::TenantId;

/// The default bootstrap admin group: its members are administrators of
/// their tenant whatever the catalog says, so that a tenant can import its
/// first catalog. Deployments name their own (`CHANGEHUB_BOOTSTRAP_ADMIN_GROUP`,
/// `changehub serve --bootstrap-admin-group`) or none, once the catalog's
/// `roles.admin` names the admins.
pub const BOOTSTRAP_ADMIN_GROUP: &str = "changehub-admins";

/// The verified identity behind a request. The tenant always comes from the
/// token, never from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub user: String,
    pub groups: Vec<String>,
    /// Roles the authenticator grants whatever the catalog says: admin to
    /// members of the deployment's bootstrap admin group, ingest to the local
    /// hub's replay tokens.
    pub granted: BTreeSet<Role>,
}

impl Caller {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    pub fn in_any(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.in_group(g))
    }

    /// The roles the caller's groups grant under `map`, and those the authenticator granted.
    pub fn roles(&self, map: &RoleMap) -> BTreeSet<Role> {
        let mut roles: BTreeSet<Role> = Role::ALL.into_iter().filter(|r| self.in_any(map.groups(*r))).collect();
        roles.extend(&self.granted);
        roles
    }
}

/// A valid caller without the right to do something; the message says what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// The caller with their roles resolved.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub caller: &'a Caller,
    pub roles: BTreeSet<Role>,
}

impl<'a> Access<'a> {
    pub fn new(caller: &'a Caller, map: &RoleMap) -> Self {
        Self { caller, roles: caller.roles(map) }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// Ok if the caller holds one of `roles`; otherwise says which role `action` needs.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), Forbidden> {
        if self.has_any(roles) {
            return Ok(());
        }
        let needed = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
        Err(Forbidden(format!("{action} needs the {needed} role in tenant {}; {}", self.caller.tenant, self.held())))
    }

    /// "you hold: a, b" or an explanation that the groups grant nothing.
    pub fn held(&self) -> String {
        if self.roles.is_empty() {
            let groups = if self.caller.groups.is_empty() {
                "your token lists no groups".to_owned()
            } else {
                format!("your groups ({}) grant no role", self.caller.groups.join(", "))
            };
            format!("{groups}; an admin maps groups to roles in the catalog's roles section")
        } else {
            format!("you hold: {}", self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(groups: &[&str]) -> Caller {
        Caller {
            tenant: TenantId::parse("acme").expect("tenant"),
            user: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            granted: BTreeSet::new(),
        }
    }

    fn map() -> RoleMap {
        RoleMap {
            requester: vec!["engineers".into()],
            cab: vec!["cab".into(), "Change Board".into()],
            ..RoleMap::default()
        }
    }

    #[test]
    fn groups_grant_roles_and_granted_roles_are_added() {
        let c = Caller { granted: BTreeSet::from([Role::Admin]), ..caller(&["engineers", "other"]) };
        assert_eq!(c.roles(&map()), BTreeSet::from([Role::Requester, Role::Admin]));
        assert!(caller(&["other"]).roles(&map()).is_empty());
    }

    #[test]
    fn a_group_name_with_a_space_grants_only_its_own_role() {
        assert_eq!(caller(&["Change Board"]).roles(&map()), BTreeSet::from([Role::Cab]));
        assert!(caller(&["Change", "Board"]).roles(&map()).is_empty());
        assert!(
            caller(&["changehub-admins"]).roles(&map()).is_empty(),
            "only the authenticator grants bootstrap admin"
        );
    }

    #[test]
    fn refusals_say_which_role_is_needed_and_what_the_caller_holds() {
        let c = caller(&["engineers"]);
        let access = Access::new(&c, &map());
        let err = access.require(&[Role::Admin], "importing the catalog").expect_err("forbidden");
        assert_eq!(err.0, "importing the catalog needs the admin role in tenant acme; you hold: requester");
        let nobody = caller(&["visitors"]);
        let err = Access::new(&nobody, &map()).require(&[Role::Cab, Role::Admin], "x").expect_err("forbidden");
        assert!(err.0.contains("needs the cab or admin role"), "{err}");
        assert!(err.0.contains("your groups (visitors) grant no role"), "{err}");
        assert!(access.require(&[Role::Requester, Role::Admin], "x").is_ok());
    }
}
