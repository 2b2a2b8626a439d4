//! Reading changes: one, a listing of them (a service's window, the whole
//! tenant filtered, or what waits for the caller's decision), an audit
//! trail, the caller's roles.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;

use super::{ChangeError, ChangeStore, Changes, page};
use crate::domain::access::{Access, Caller};
use crate::domain::approval::Verdict;
use crate::domain::catalog::{CatalogView, Role};
use crate::domain::waiting::Awaiting;
use crate::domain::{AuditEntry, Change, ChangeId, ChangeState, ChangeType, FieldError, ServiceName};
use crate::ports::{
    ChangeFilter, ChangeQuery, Clock, Cursor, EVALUATED_PER_PAGE, Listing, Page, ServiceWindowQuery, WaitingQuery,
};

/// `GET /changes`; absent bounds default to a week back and a month ahead.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub service: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub state: Option<ChangeState>,
    pub change_type: Option<ChangeType>,
    /// A user id, or [`ME`] for the caller.
    pub requester: Option<String>,
    /// [`ME`]: only changes waiting for the caller's decision.
    pub approver: Option<String>,
}

pub const DEFAULT_LOOKBACK: Duration = Duration::days(7);
pub const DEFAULT_LOOKAHEAD: Duration = Duration::days(31);
pub const DEFAULT_PAGE: usize = 50;
/// The caller, in `requester` and `approver`.
pub const ME: &str = "me";
/// Most of the caller's groups that "waiting for my decision" reads (one
/// query each): those the catalog names as approvers.
pub const MAX_APPROVER_GROUPS: usize = 20;

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    pub async fn get(&self, caller: &Caller, id: &ChangeId) -> Result<Change, ChangeError> {
        self.reader(caller, "reading changes").await?;
        self.store.get_change(&caller.tenant, id).await?.ok_or(ChangeError::NotFound(*id))
    }

    /// A page of changes: with `approver=me` what waits for the caller's
    /// decision (earliest due first); otherwise those whose planned window
    /// overlaps `[from, to]`, by planned start: one service's from its index
    /// when nothing else filters, else the tenant's listing index, filtered.
    /// Every page costs a bounded number of store calls, whatever the history.
    pub async fn list(&self, caller: &Caller, req: ListRequest) -> Result<Page<Change>, ChangeError> {
        let (access, view) = self.access(caller).await?;
        access.require(&Role::PEOPLE, "listing changes")?;
        let requester = match req.requester.as_deref().map(str::trim) {
            Some(ME) => Some(caller.user.clone()),
            Some("") => return Err(FieldError::new("requester", "requester must be a user id or \"me\"").into()),
            other => other.map(str::to_owned),
        };
        let service = req.service.as_deref().map(ServiceName::parse).transpose()?;
        let filter = ChangeFilter { state: req.state, change_type: req.change_type, requester, service };
        let (from, to) = self.window(req.from, req.to)?;
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        match req.approver.as_deref() {
            Some(ME) => return self.waiting_for_me(&access, &view, filter, (req.from, req.to), limit, after).await,
            Some(_) => return Err(FieldError::new("approver", "approver must be \"me\"").into()),
            None => {}
        }
        let tenant = caller.tenant.clone();
        Ok(match filter {
            ChangeFilter { service: Some(service), state: None, change_type: None, requester: None } => {
                self.store.changes_for_service(&ServiceWindowQuery { tenant, service, from, to, limit, after }).await?
            }
            filter => {
                let query = ChangeQuery { tenant, from, to, filter, limit, evaluate: EVALUATED_PER_PAGE, after };
                self.store.list_changes(&query).await?
            }
        })
    }

    /// `from` and `to`, defaulting to a week back and a month ahead of now.
    fn window(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ChangeError> {
        let now = self.clock.now();
        let (from, to) = (from.unwrap_or(now - DEFAULT_LOOKBACK), to.unwrap_or(now + DEFAULT_LOOKAHEAD));
        for (field, t) in [("from", from), ("to", to)] {
            if !crate::domain::new_change::in_supported_range(t) {
                return Err(FieldError::new(field, "time must be between the years 2000 and 9998").into());
            }
        }
        if to < from {
            return Err(FieldError::new("to", "to must not be before from").into());
        }
        Ok((from, to))
    }

    /// Changes the caller may decide now: read from the waiting index of
    /// their approving groups, their name and (if they may give one) the
    /// peer reviews; then each checked as a decision would be (dual control:
    /// not their own, not a level after one they approved), filtered, and
    /// kept in `[from, to]` when either is given. A page may come back short.
    async fn waiting_for_me(
        &self,
        access: &Access<'_>,
        view: &CatalogView,
        filter: ChangeFilter,
        (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        limit: usize,
        after: Option<Cursor>,
    ) -> Result<Page<Change>, ChangeError> {
        let caller = access.caller;
        let approving = approving_groups(view);
        let groups: Vec<&String> = caller.groups.iter().filter(|g| approving.contains(g.as_str())).collect();
        if groups.len() > MAX_APPROVER_GROUPS {
            return Err(FieldError::new(
                "approver",
                format!(
                    "you are in {} groups that approve changes; waiting for my decision reads at most {MAX_APPROVER_GROUPS}: filter by service instead",
                    groups.len()
                ),
            )
            .into());
        }
        let mut who: Vec<Awaiting> = groups.into_iter().cloned().map(Awaiting::Group).collect();
        who.push(Awaiting::User(caller.user.clone()));
        if access.has_any(&[Role::Requester, Role::Approver, Role::Cab, Role::Admin]) {
            who.push(Awaiting::Peer);
        }
        let query = WaitingQuery { tenant: caller.tenant.clone(), who, limit, after };
        let mut page = self.store.waiting_for(&query).await?;
        let now = self.clock.now();
        page.items.retain(|c| {
            filter.admits(&Listing::of(c))
                && from.is_none_or(|f| c.planned_end >= f)
                && to.is_none_or(|t| c.planned_start <= t)
                && may_decide(c, caller, &access.roles, now)
        });
        Ok(page)
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

/// Every group the catalog lets decide something: its services' approval
/// levels, the emergency approvers and the cab.
fn approving_groups(view: &CatalogView) -> BTreeSet<&str> {
    let catalog = &view.catalog;
    let levels = catalog.services.iter().flat_map(|s| s.approval.iter().flat_map(|l| l.groups.iter()));
    levels.chain(catalog.emergency_approvers()).chain(catalog.roles.groups(Role::Cab)).map(String::as_str).collect()
}

/// Whether `caller` may approve (or peer review) `change`'s current level
/// now: the decision's own rules, tried on a copy of the plan.
fn may_decide(change: &Change, caller: &Caller, roles: &BTreeSet<Role>, now: DateTime<Utc>) -> bool {
    let Some(plan) = change.approval.as_ref().filter(|_| change.state == ChangeState::Submitted) else {
        return false;
    };
    [Verdict::Approve, Verdict::PeerReview]
        .into_iter()
        .any(|verdict| plan.clone().decide(caller, roles, &change.requester, verdict, None, now).is_ok())
}
