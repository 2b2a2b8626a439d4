//! `/suppressions`: bulk-change maintenance windows during which
//! unauthorized configuration changes are recorded as `suppressed` findings
//! and nobody is paged. One tenant document, written like the freezes and
//! delegations documents: each declaration and lift is on the governance
//! trail (who, when, why); the drift consumer reads it with one GetItem per
//! unauthorized observation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::ChangeError;
use crate::app::governance::{Governance, GovernanceWrite, append_capped, read_doc, update_doc};
use crate::domain::FieldError;
use crate::domain::TenantId;
use crate::domain::access::Caller;
use crate::domain::audit::AuditAction;
use crate::domain::catalog::Role;
use crate::domain::finding::observation::Observation;
use crate::domain::finding::suppression::{MAX_SUPPRESSIONS, Suppression};
use crate::ports::{CatalogReader, Clock, DocKind, IncidentStore, StoreError, TenantDocs};

/// The tenant's windows (current and to come) and the latest declarations and lifts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suppressions {
    pub windows: Vec<Suppression>,
    /// Oldest first, the latest [`crate::app::governance::MAX_INCIDENT_LOG`].
    #[serde(default)]
    pub log: Vec<SuppressionLogEntry>,
}

/// One declaration or lift: by whom, when, why (a lift's reason) and the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionLogEntry {
    pub action: SuppressionAction,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub window: Suppression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionAction {
    Declared,
    Lifted,
}

/// `DELETE /suppressions/{id}?reason=`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiftSuppression {
    pub reason: String,
}

/// The window that covers `o`, if one does (the first declared).
pub async fn covering<D: TenantDocs>(
    docs: &D,
    tenant: &TenantId,
    o: &Observation,
) -> Result<Option<Suppression>, StoreError> {
    let (doc, _): (Suppressions, u64) = read_doc(docs, tenant, DocKind::Suppressions).await?;
    Ok(doc.windows.into_iter().find(|w| w.covers(o)))
}

impl<D: TenantDocs + IncidentStore, K: CatalogReader, C: Clock> Governance<'_, D, K, C> {
    /// The windows and their log; any role that reads changes.
    pub async fn suppressions(&self, caller: &Caller) -> Result<Suppressions, ChangeError> {
        self.require(caller, &Role::PEOPLE, "reading suppression windows").await?;
        Ok(read_doc(self.docs, &caller.tenant, DocKind::Suppressions).await?.0)
    }

    /// Declares a window (or replaces the one with its id): the cab or an
    /// admin; its services must be the catalog's. Windows ended more than
    /// 30 days ago are dropped.
    pub async fn declare_suppression(&self, caller: &Caller, window: Suppression) -> Result<Suppression, ChangeError> {
        self.require(caller, &[Role::Admin, Role::Cab], "declaring a suppression window").await?;
        window.validate()?;
        let view = self.catalog.catalog(&caller.tenant).await?;
        if let Some((i, s)) = window.services.iter().enumerate().find(|(_, s)| view.catalog.service(s).is_none()) {
            return Err(FieldError::new(format!("services[{i}]"), format!("no service {s} in the catalog")).into());
        }
        update_doc(self.docs, caller, DocKind::Suppressions, self.clock, |d: &mut Suppressions, at| {
            d.windows.retain(|w| w.is_kept(at));
            let before = d.windows.iter().find(|w| w.id == window.id).cloned();
            d.windows.retain(|w| w.id != window.id);
            if d.windows.len() >= MAX_SUPPRESSIONS {
                let full = format!("at most {MAX_SUPPRESSIONS} current suppression windows per tenant");
                return Err(FieldError::new("id", full).into());
            }
            d.windows.push(window.clone());
            let entry = SuppressionLogEntry {
                action: SuppressionAction::Declared,
                by: caller.user.clone(),
                at,
                reason: None,
                window: window.clone(),
            };
            append_capped(&mut d.log, entry);
            let field = format!("suppressions.{}", window.id);
            let trail = GovernanceWrite::item(AuditAction::SuppressionDeclared, field, before.as_ref(), Some(&window));
            Ok(Some(GovernanceWrite { reason: Some(window.reason.clone()), ..trail }))
        })
        .await?;
        tracing::info!(tenant = %caller.tenant, suppression = %window.id, user = %caller.user, "suppression window declared");
        Ok(window)
    }

    /// Lifts a window, saying why: the cab or an admin.
    pub async fn lift_suppression(&self, caller: &Caller, id: &str, lift: LiftSuppression) -> Result<(), ChangeError> {
        self.require(caller, &[Role::Admin, Role::Cab], "lifting a suppression window").await?;
        let reason = lift.reason.trim().to_owned();
        crate::app::changes::check_text("reason", Some(&reason), true)?;
        update_doc(self.docs, caller, DocKind::Suppressions, self.clock, |d: &mut Suppressions, at| {
            let Some(window) = d.windows.iter().find(|w| w.id == id).cloned() else {
                return Err(ChangeError::Missing(format!("no suppression window {id:?}")));
            };
            d.windows.retain(|w| w.id != id);
            let (by, why) = (caller.user.clone(), Some(reason.clone()));
            let entry = SuppressionLogEntry {
                action: SuppressionAction::Lifted,
                by,
                at,
                reason: why.clone(),
                window: window.clone(),
            };
            append_capped(&mut d.log, entry);
            let field = format!("suppressions.{id}");
            let trail = GovernanceWrite::item(AuditAction::SuppressionLifted, field, Some(&window), None::<&()>);
            Ok(Some(GovernanceWrite { reason: why, ..trail }))
        })
        .await?;
        tracing::info!(tenant = %caller.tenant, suppression = %id, user = %caller.user, "suppression window lifted");
        Ok(())
    }
}
