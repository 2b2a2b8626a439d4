//! Reading changes: one, a service's window of them, an audit trail, the caller's roles.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;

use super::{ChangeError, ChangeStore, Changes, page};
use crate::domain::access::Caller;
use crate::domain::catalog::Role;
use crate::domain::{AuditEntry, Change, ChangeId, FieldError, ServiceName};
use crate::ports::{Clock, Page, ServiceWindowQuery};

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

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    pub async fn get(&self, caller: &Caller, id: &ChangeId) -> Result<Change, ChangeError> {
        self.reader(caller, "reading changes").await?;
        self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))
    }

    pub async fn list(&self, caller: &Caller, req: ListRequest) -> Result<Page<Change>, ChangeError> {
        self.reader(caller, "listing changes").await?;
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
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        let query = ServiceWindowQuery { tenant: caller.tenant.clone(), service, from, to, limit, after };
        Ok(self.store.changes_for_service(&query).await?)
    }

    /// Roles the caller holds, for `GET /me`.
    pub async fn roles(&self, caller: &Caller) -> Result<BTreeSet<Role>, ChangeError> {
        Ok(self.access(caller).await?.0.roles)
    }

    pub async fn audit(&self, caller: &Caller, id: &ChangeId) -> Result<Vec<AuditEntry>, ChangeError> {
        self.reader(caller, "reading audit trails").await?;
        let entries = self.store.audit_trail(&caller.tenant, id).await?;
        if entries.is_empty() {
            return Err(ChangeError::NotFound(*id));
        }
        Ok(entries)
    }
}
