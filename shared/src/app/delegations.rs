//! `/delegations`: approvers handing their approval levels to a delegate for
//! a period (out-of-office). One tenant document, written like the freezes
//! and incidents documents: each write appends to the governance trail.

use chrono::{DateTime, Utc};

use crate::app::ChangeError;
use crate::app::governance::{Governance, GovernanceWrite, read_doc, update_doc};
use crate::domain::FieldError;
use crate::domain::TenantId;
use crate::domain::access::{Caller, Forbidden};
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::delegation::{Delegation, Delegations, MAX_DELEGATIONS, NewDelegation, Revoked};

/// `DELETE /delegations/{id}?reason=`: why, optionally.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeDelegation {
    #[serde(default)]
    pub reason: Option<String>,
}
use crate::ports::{CatalogReader, Clock, DocKind, IncidentStore, StoreError, TenantDocs};

/// The roles that decide approval levels: a delegator needs one to delegate.
const DECIDING: [Role; 3] = [Role::Approver, Role::Cab, Role::Admin];

/// The tenant's delegations in force at `at`.
pub async fn active<D: TenantDocs>(
    docs: &D,
    tenant: &TenantId,
    at: DateTime<Utc>,
) -> Result<Vec<Delegation>, StoreError> {
    let (doc, _): (Delegations, u64) = read_doc(docs, tenant, DocKind::Delegations).await?;
    Ok(doc.delegations.into_iter().filter(|d| d.is_active(at)).collect())
}

/// The delegations in force at `at` whose delegate is `user`.
pub async fn active_for<D: TenantDocs>(
    docs: &D,
    tenant: &TenantId,
    user: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Delegation>, StoreError> {
    Ok(active(docs, tenant, at).await?.into_iter().filter(|d| d.delegate == user).collect())
}

impl<D: TenantDocs + IncidentStore, K: CatalogReader, C: Clock> Governance<'_, D, K, C> {
    /// The tenant's active and upcoming delegations for the cab, admins and
    /// auditors; for anyone else, those they gave or were given.
    pub async fn delegations(&self, caller: &Caller) -> Result<Vec<Delegation>, ChangeError> {
        let access = self.require(caller, &Role::PEOPLE, "reading delegations").await?;
        let all = access.has_any(&[Role::Cab, Role::Admin, Role::Auditor]);
        let now = self.clock.now();
        let (doc, _): (Delegations, u64) = read_doc(self.docs, &caller.tenant, DocKind::Delegations).await?;
        Ok(doc
            .delegations
            .into_iter()
            .filter(|d| d.revoked.is_none() && d.is_current(now))
            .filter(|d| all || d.delegator == caller.user || d.delegate == caller.user)
            .collect())
    }

    /// The caller delegates the levels their groups decide (or some of them)
    /// to another person for a period; recorded on the governance trail.
    pub async fn delegate(&self, caller: &Caller, req: NewDelegation) -> Result<Delegation, ChangeError> {
        self.require(caller, &DECIDING, "delegating approval levels").await?;
        crate::app::changes::check_text("reason", Some(&req.reason), true)?;
        let view = self.catalog.catalog(&caller.tenant).await?;
        let id = format!("dlg-{}", uuid::Uuid::now_v7());
        let delegation = Delegation::new(caller, &view.catalog, req, id, self.clock.now())?;
        update_doc(self.docs, caller, DocKind::Delegations, self.clock, |d: &mut Delegations, at| {
            d.delegations.retain(|x| x.is_current(at));
            if d.delegations.len() >= MAX_DELEGATIONS {
                let full = format!("at most {MAX_DELEGATIONS} current delegations per tenant");
                return Err(FieldError::new("delegate", full).into());
            }
            d.delegations.push(delegation.clone());
            let field = format!("delegations.{}", delegation.id);
            let trail = GovernanceWrite::item(AuditAction::DelegationCreated, field, None::<&()>, Some(&delegation));
            Ok(Some(GovernanceWrite { reason: Some(delegation.reason.clone()), ..trail }))
        })
        .await?;
        tracing::info!(
            tenant = %caller.tenant, delegation = %delegation.id, delegator = %caller.user,
            delegate = %delegation.delegate, "approval levels delegated"
        );
        Ok(delegation)
    }

    /// Ends a delegation now: its delegator, or someone with the cab or
    /// admin role, saying why if they want (kept on the delegation and its
    /// governance trail entry).
    pub async fn revoke_delegation(
        &self,
        caller: &Caller,
        id: &str,
        reason: Option<String>,
    ) -> Result<Delegation, ChangeError> {
        let access = self.require(caller, &Role::PEOPLE, "revoking a delegation").await?;
        let reason = reason.map(|r| r.trim().to_owned());
        crate::app::changes::check_text("reason", reason.as_ref(), reason.is_some())?;
        let doc = update_doc(self.docs, caller, DocKind::Delegations, self.clock, |d: &mut Delegations, at| {
            d.delegations.retain(|x| x.is_current(at));
            let Some(found) = d.delegations.iter_mut().find(|x| x.id == id) else {
                return Err(ChangeError::Missing(format!("no current delegation {id:?}")));
            };
            if found.delegator != caller.user && !access.has_any(&[Role::Cab, Role::Admin]) {
                return Err(Forbidden(format!(
                    "revoking delegation {id:?} needs its delegator ({}) or the cab or admin role; {}",
                    found.delegator,
                    access.held()
                ))
                .into());
            }
            if let Some(r) = &found.revoked {
                return Err(ChangeError::Refused {
                    code: "delegation_revoked",
                    field: None,
                    message: format!("delegation {id:?} was already revoked by {} at {}", r.by, r.at.to_rfc3339()),
                });
            }
            let before = found.clone();
            found.revoked = Some(Revoked { by: caller.user.clone(), at, reason: reason.clone() });
            let field = format!("delegations.{id}");
            let trail = GovernanceWrite::item(AuditAction::DelegationRevoked, field, Some(&before), Some(&*found));
            Ok(Some(GovernanceWrite { reason: reason.clone(), ..trail }))
        })
        .await?;
        tracing::info!(tenant = %caller.tenant, delegation = %id, user = %caller.user, "delegation revoked");
        doc.delegations
            .into_iter()
            .find(|x| x.id == id)
            .ok_or_else(|| ChangeError::Missing(format!("no delegation {id:?}")))
    }
}
