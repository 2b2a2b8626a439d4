//! The sample catalog (`events/catalog/acme.yaml`) and the people the tests act as.

use changehub::app::changes::{ChangeStore, DecisionRequest};
use changehub::app::{Caller, Changes, TransitionRequest};
use changehub::domain::approval::Verdict;
use changehub::domain::catalog::{Catalog, Role, parse_yaml};
use changehub::domain::{Change, ChangeId, ChangeState, TenantId};
use changehub::ports::Clock;

/// The sample catalog every walkthrough uses.
pub const CATALOG_YAML: &str = include_str!("../../events/catalog/acme.yaml");

pub fn catalog() -> Catalog {
    parse_yaml(CATALOG_YAML).unwrap_or_else(|e| panic!("events/catalog/acme.yaml: {e}"))
}

pub fn who(tenant: &str, user: &str, groups: &[&str]) -> Caller {
    Caller {
        tenant: TenantId::parse(tenant).expect("tenant"),
        user: user.to_owned(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        granted: Default::default(),
    }
}

/// Alice opens changes (group engineers: requester).
pub fn alice(tenant: &str) -> Caller {
    who(tenant, "alice@example.com", &["engineers"])
}

/// Pat leads the payments team (approver; level 1 of payments).
pub fn pat(tenant: &str) -> Caller {
    who(tenant, "pat@example.com", &["payments-leads"])
}

/// Carol sits on the change advisory board (cab; level 2 of payments).
pub fn carol(tenant: &str) -> Caller {
    who(tenant, "carol@example.com", &["cab"])
}

/// The tenant's bootstrap administrator: a member of `changehub-admins`, which the authenticator makes admin.
pub fn root(tenant: &str) -> Caller {
    Caller { granted: [Role::Admin].into(), ..who(tenant, "root@example.com", &["changehub-admins"]) }
}

/// Imports the sample catalog into `tenant`.
pub async fn seed<S: ChangeStore, C: Clock>(app: &Changes<S, C>, tenant: &str) {
    app.catalog.replace(&root(tenant), catalog(), None, &app.clock).await.expect("import the sample catalog");
}

pub fn to(state: ChangeState, version: u64) -> TransitionRequest {
    TransitionRequest { to: state, version, reason: None, override_reason: None }
}

pub fn approve() -> DecisionRequest {
    DecisionRequest { decision: Verdict::Approve, version: None, comment: None }
}

pub fn peer_review() -> DecisionRequest {
    DecisionRequest { decision: Verdict::PeerReview, ..approve() }
}

/// An edit (or rework) at `version` of the fields of the JSON object `fields`.
pub fn edit(version: u64, fields: serde_json::Value) -> changehub::app::changes::EditRequest {
    let serde_json::Value::Object(fields) = fields else { panic!("fields are an object") };
    changehub::app::changes::EditRequest { version, fields }
}

/// Submits a draft on `payments` and has Pat then Carol approve it.
pub async fn submit_and_approve<S: ChangeStore, C: Clock>(app: &Changes<S, C>, tenant: &str, id: &ChangeId) -> Change {
    let submitted = app.transition(&alice(tenant), id, to(ChangeState::Submitted, 1)).await.expect("submit");
    assert_eq!(submitted.state, ChangeState::Submitted);
    app.decide(&pat(tenant), id, approve()).await.expect("level 1");
    let approved = app.decide(&carol(tenant), id, approve()).await.expect("level 2").change;
    assert_eq!(approved.state, ChangeState::Approved);
    approved
}
