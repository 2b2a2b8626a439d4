//! Change-record use cases: create, read, list, transition, audit.
//! Generic over the ports they need; each costs O(1) store calls.

use chrono::{DateTime, Duration, Utc};
use tracing::instrument;

use crate::domain::audit::{self, AuditAction};
use crate::domain::{
    AuditEntry, Change, ChangeId, ChangeState, FieldError, IllegalTransition, NewChange, ServiceName, TenantId,
};
use crate::ports::{ChangeReader, ChangeWriter, Clock, MAX_PAGE, Page, ServiceWindowQuery, StoreError};

/// Who is acting, and for which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub user: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("change {0} not found")]
    NotFound(ChangeId),
    #[error("change {id}: version {expected} is no longer current{}; read the change again and retry", actual.map(|a| format!(" (it is at version {a})")).unwrap_or_default())]
    VersionConflict { id: ChangeId, expected: u64, actual: Option<u64> },
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e)
    }
}

/// `POST /changes/{id}/transitions`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: ChangeState,
    /// The version the caller last read: the transition applies only to it.
    pub version: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

pub const MAX_REASON_CHARS: usize = 2_000;

/// `GET /changes?service=&from=&to=`; absent bounds default to a week back and a month ahead.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub service: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const DEFAULT_LOOKBACK: Duration = Duration::days(7);
pub const DEFAULT_LOOKAHEAD: Duration = Duration::days(31);
pub const DEFAULT_PAGE: usize = 50;

pub struct Changes<S, C> {
    pub store: S,
    pub clock: C,
}

impl<S, C> Changes<S, C>
where
    S: ChangeReader + ChangeWriter,
    C: Clock,
{
    pub fn new(store: S, clock: C) -> Self {
        Self { store, clock }
    }

    #[instrument(skip(self, input), fields(tenant = %caller.tenant))]
    pub async fn create(&self, caller: &Caller, input: NewChange) -> Result<Change, ChangeError> {
        let valid = input.validate()?;
        let draft = valid.into_draft(ChangeId::new(), caller.tenant.clone(), caller.user.clone(), self.clock.now());
        let (change, entry) = audit::record(None, draft, &caller.user, AuditAction::Created, None);
        self.store.insert_change(&change, &entry).await?;
        tracing::info!(change_id = %change.id, "change created");
        Ok(change)
    }

    pub async fn get(&self, caller: &Caller, id: &ChangeId) -> Result<Change, ChangeError> {
        self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))
    }

    pub async fn list(&self, caller: &Caller, req: ListRequest) -> Result<Page<Change>, ChangeError> {
        let service = req
            .service
            .ok_or_else(|| FieldError::new("service", "service is required: list the changes of one service"))?;
        let service = ServiceName::parse(&service)?;
        let now = self.clock.now();
        let from = req.from.unwrap_or(now - DEFAULT_LOOKBACK);
        let to = req.to.unwrap_or(now + DEFAULT_LOOKAHEAD);
        for (field, t) in [("from", from), ("to", to)] {
            if !crate::domain::new_change::in_supported_range(t) {
                return Err(FieldError::new(field, "time must be between the years 2000 and 9998").into());
            }
        }
        if to < from {
            return Err(FieldError::new("to", "to must not be before from").into());
        }
        let limit = req.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_PAGE}")).into());
        }
        if let Some(c) = &req.cursor
            && !crate::adapters::keys::cursor_is_valid(c)
        {
            return Err(FieldError::new("cursor", "cursor is not one this API returned").into());
        }
        let query = ServiceWindowQuery { tenant: caller.tenant.clone(), service, from, to, limit, after: req.cursor };
        Ok(self.store.changes_for_service(&query).await?)
    }

    #[instrument(skip(self, req), fields(tenant = %caller.tenant, change_id = %id, to = %req.to))]
    pub async fn transition(
        &self,
        caller: &Caller,
        id: &ChangeId,
        req: TransitionRequest,
    ) -> Result<Change, ChangeError> {
        if req.reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
            return Err(
                FieldError::new("reason", format!("reason must be at most {MAX_REASON_CHARS} characters")).into()
            );
        }
        let current = self.get(caller, id).await?;
        if current.version != req.version {
            return Err(ChangeError::VersionConflict { id: *id, expected: req.version, actual: Some(current.version) });
        }
        let next = current.transition(req.to, self.clock.now())?;
        let (next, entry) = audit::record(Some(&current), next, &caller.user, AuditAction::Transitioned, req.reason);
        match self.store.update_change(&next, &entry).await {
            Ok(()) => {
                tracing::info!(from = %current.state, "change transitioned");
                Ok(next)
            }
            Err(StoreError::VersionConflict { expected }) => {
                Err(ChangeError::VersionConflict { id: *id, expected, actual: None })
            }
            Err(StoreError::NotFound) => Err(ChangeError::NotFound(*id)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn audit(&self, caller: &Caller, id: &ChangeId) -> Result<Vec<AuditEntry>, ChangeError> {
        let entries = self.store.audit_trail(&caller.tenant, id).await?;
        if entries.is_empty() {
            return Err(ChangeError::NotFound(*id));
        }
        Ok(entries)
    }
}
