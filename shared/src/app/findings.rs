//! Findings people read and drive: `GET /findings`, `GET /findings/{id}`,
//! and the audited moves `acknowledge`, `link` (to a retroactive emergency
//! change) and `dismiss` (a false positive, with its reason); and what the
//! drift consumer saw a change do (`GET /changes/{id}/evidence`).

use super::changes::{ChangeError, ChangeStore, Changes, check_text, page};
use crate::domain::access::Caller;
use crate::domain::catalog::Role;
use crate::domain::finding::change_evidence::ChangeEvidence;
use crate::domain::finding::{Finding, FindingId, FindingKind, FindingStatus, FindingTransitionError};
use crate::domain::{ChangeId, ChangeType, FieldError, ServiceName};
use crate::ports::{Clock, FindingQuery, FindingStore, Page, StoreError};

/// `GET /findings?service=&status=&kind=`.
#[derive(Debug, Clone, Default)]
pub struct FindingListRequest {
    pub service: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `POST /findings/{id}/acknowledge`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// The version the caller read.
    pub version: u64,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /findings/{id}/link`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub version: u64,
    /// The emergency change that covers the finding after the fact.
    pub change_id: ChangeId,
}

/// `POST /findings/{id}/dismiss`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DismissRequest {
    pub version: u64,
    pub reason: String,
}

/// What a move needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The cab or admin role, or the owners of the finding's service.
    CabOrOwners,
    /// The cab or admin role only.
    Cab,
}

impl<S: ChangeStore + FindingStore, C: Clock> Changes<S, C> {
    /// A page of the caller's tenant's findings, newest first. Any role that reads changes reads them.
    pub async fn findings(&self, caller: &Caller, req: FindingListRequest) -> Result<Page<Finding>, ChangeError> {
        self.reader(caller, "reading findings").await?;
        let service = req.service.as_deref().map(ServiceName::parse).transpose()?;
        let status = req.status.as_deref().map(FindingStatus::parse).transpose()?;
        let kind = req.kind.as_deref().map(FindingKind::parse).transpose()?;
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        let query =
            FindingQuery { service, status, kind, limit, after, ..FindingQuery::new(caller.tenant.clone(), limit) };
        Ok(self.store.list_findings(&query).await?)
    }

    /// A page of the configuration changes a change authorized, by their
    /// own times: what actually changed during it. Any role that reads changes reads it.
    pub async fn change_evidence(
        &self,
        caller: &Caller,
        id: &ChangeId,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<ChangeEvidence>, ChangeError> {
        self.reader(caller, "reading a change's evidence").await?;
        let (limit, after) = page(limit, cursor)?;
        if self.store.get_change(&caller.tenant, id).await?.is_none() {
            return Err(ChangeError::NotFound(*id));
        }
        Ok(self.store.change_evidence(&caller.tenant, id, limit, after).await?)
    }

    pub async fn finding(&self, caller: &Caller, id: &FindingId) -> Result<Finding, ChangeError> {
        self.reader(caller, "reading findings").await?;
        self.stored_finding(caller, id).await
    }

    /// Open → acknowledged: the cab or admin role, or the service's owners.
    pub async fn acknowledge_finding(
        &self,
        caller: &Caller,
        id: &FindingId,
        req: &AcknowledgeRequest,
    ) -> Result<Finding, ChangeError> {
        check_text("note", req.note.as_ref(), false)?;
        let (at, by) = (self.clock.now(), caller.user.clone());
        let note = req.note.clone();
        self.move_finding(caller, id, req.version, Who::CabOrOwners, "acknowledging a finding", |f| {
            f.acknowledge(&by, at, note)
        })
        .await
    }

    /// Resolved by a retroactive emergency change on the finding's service:
    /// the cab or admin role, or the service's owners.
    pub async fn link_finding(
        &self,
        caller: &Caller,
        id: &FindingId,
        req: &LinkRequest,
    ) -> Result<Finding, ChangeError> {
        let Some(change) = self.store.get_change(&caller.tenant, &req.change_id).await? else {
            return Err(
                FieldError::new("change_id", format!("change {} not found in this tenant", req.change_id)).into()
            );
        };
        if change.change_type != ChangeType::Emergency {
            return Err(FieldError::new(
                "change_id",
                format!(
                    "change {} is a {} change; a finding is resolved by an emergency change",
                    change.id,
                    change.change_type.as_str()
                ),
            )
            .into());
        }
        let (at, by, change_id) = (self.clock.now(), caller.user.clone(), change.id);
        let services = change.services.clone();
        self.move_finding(caller, id, req.version, Who::CabOrOwners, "linking a finding to a change", |f| {
            if let Some(service) = f.service.as_ref().filter(|s| !services.contains(s)) {
                return Err(Refusal::Field(format!("change {change_id} does not cover service {service}")));
            }
            f.link(change_id, &by, at).map_err(Refusal::Illegal)
        })
        .await
    }

    /// A false positive, with its reason: the cab or admin role only.
    pub async fn dismiss_finding(
        &self,
        caller: &Caller,
        id: &FindingId,
        req: &DismissRequest,
    ) -> Result<Finding, ChangeError> {
        check_text("reason", Some(&req.reason), true)?;
        let (at, by, reason) = (self.clock.now(), caller.user.clone(), req.reason.trim().to_owned());
        self.move_finding(caller, id, req.version, Who::Cab, "dismissing a finding", |f| f.dismiss(reason, &by, at))
            .await
    }

    async fn stored_finding(&self, caller: &Caller, id: &FindingId) -> Result<Finding, ChangeError> {
        self.store
            .get_finding(&caller.tenant, id)
            .await?
            .ok_or_else(|| ChangeError::Missing(format!("finding {id} not found")))
    }

    /// Applies `step` to the finding at `version`, if the caller may, and stores it at the next version.
    async fn move_finding<E: Into<Refusal>>(
        &self,
        caller: &Caller,
        id: &FindingId,
        version: u64,
        who: Who,
        what: &str,
        step: impl FnOnce(&mut Finding) -> Result<(), E>,
    ) -> Result<Finding, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&Role::PEOPLE, what)?;
        let current = self.stored_finding(caller, id).await?;
        let owners = current.service.as_ref().and_then(|s| view.catalog.service(s)).map(|s| s.owner_group.as_str());
        let owner = who == Who::CabOrOwners && owners.is_some_and(|g| caller.in_group(g));
        if !access.has_any(&[Role::Cab, Role::Admin]) && !owner {
            let alternative = match (who, &current.service) {
                (Who::CabOrOwners, Some(service)) => format!("{what} (or membership of the owners of {service})"),
                _ => what.to_owned(),
            };
            access.require(&[Role::Cab, Role::Admin], &alternative)?;
        }
        if current.version != version {
            return Err(version_conflict(&current, version));
        }
        let mut next = current.clone();
        step(&mut next).map_err(|e| e.into().into_error())?;
        next.version += 1;
        match self.store.put_finding(&next).await {
            Ok(()) => Ok(next),
            Err(StoreError::VersionConflict { .. }) => Err(version_conflict(&current, version)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Why a move was refused by the finding itself.
enum Refusal {
    Illegal(FindingTransitionError),
    Field(String),
}

impl From<FindingTransitionError> for Refusal {
    fn from(e: FindingTransitionError) -> Self {
        Refusal::Illegal(e)
    }
}

impl Refusal {
    fn into_error(self) -> ChangeError {
        match self {
            Refusal::Illegal(e) => ChangeError::Refused { code: "finding_closed", field: None, message: e.to_string() },
            Refusal::Field(message) => FieldError::new("change_id", message).into(),
        }
    }
}

fn version_conflict(finding: &Finding, expected: u64) -> ChangeError {
    ChangeError::Refused {
        code: "version_conflict",
        field: Some("version"),
        message: format!(
            "finding {}: version {expected} is no longer current (it is at version {}); read it again and retry",
            finding.id, finding.version
        ),
    }
}
