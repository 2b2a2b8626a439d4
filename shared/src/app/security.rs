//! Security events: every refused write (403) is recorded with the caller,
//! the action, its target and the reason they were given, and auditors and
//! admins read them back.

use chrono::{DateTime, Duration, Utc};

use crate::app::changes::{ChangeStore, page};
use crate::app::{Caller, ChangeError, Changes};
use crate::domain::FieldError;
use crate::domain::catalog::Role;
use crate::ports::{Clock, Page, Refusal, SECURITY_EVENT_TTL, SecurityEvent, SecurityQuery};

/// Longest reason kept: the message the caller was given, cut to this many characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// `GET /audit/security`: absent bounds cover everything still kept.
#[derive(Debug, Clone, Default)]
pub struct SecurityRequest {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Records that `caller` was refused `action` (`METHOD /route`) on
    /// `target` (the request's path) for `reason`: one write, which a repeat
    /// by the same caller on the same action within the minute adds to.
    pub async fn record_refusal(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        reason: &str,
    ) -> Result<(), ChangeError> {
        let refusal = Refusal {
            tenant: caller.tenant.clone(),
            user: caller.user.clone(),
            action: action.to_owned(),
            target: target.chars().take(MAX_REASON_CHARS).collect(),
            reason: reason.chars().take(MAX_REASON_CHARS).collect(),
            at: self.clock.now(),
        };
        Ok(self.store.record_refusal(&refusal, SECURITY_EVENT_TTL).await?)
    }

    /// The tenant's security events, newest first; auditors and admins only.
    pub async fn security_events(
        &self,
        caller: &Caller,
        req: SecurityRequest,
    ) -> Result<Page<SecurityEvent>, ChangeError> {
        let (access, _) = self.access(caller).await?;
        access.require(&[Role::Auditor, Role::Admin], "reading security events")?;
        let now = self.clock.now();
        let kept_since = now - Duration::from_std(SECURITY_EVENT_TTL).unwrap_or(Duration::days(90));
        let (since, until) = (req.since.unwrap_or(kept_since).max(kept_since), req.until.unwrap_or(now));
        if until < since {
            return Err(
                FieldError::new("until", "until must not be before since (nor before the oldest event kept)").into()
            );
        }
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        Ok(self
            .store
            .security_events(&SecurityQuery { tenant: caller.tenant.clone(), since, until, limit, after })
            .await?)
    }
}
