//! Reports: emergency changes awaiting their post-implementation review.

use chrono::{DateTime, Duration, Utc};

use super::{ChangeError, ChangeStore, Changes, DEFAULT_PAGE};
use crate::domain::access::Caller;
use crate::domain::{Change, FieldError};
use crate::ports::{Clock, Cursor, DuePartition, MAX_PAGE, Page};

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Emergency changes whose post-implementation review is not done yet, earliest due first.
    pub async fn pending_reviews(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<String>,
    ) -> Result<Page<Change>, ChangeError> {
        self.reader(caller, "reading reports").await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(FieldError::new("limit", format!("limit must be between 1 and {MAX_PAGE}")).into());
        }
        let after = cursor.as_deref().map(Cursor::parse).transpose()?;
        let far = DateTime::<Utc>::MAX_UTC.min(self.clock.now() + Duration::days(365 * 100));
        let partition = DuePartition::Reviews { tenant: caller.tenant.clone() };
        Ok(self.store.due(&partition, far, limit, after).await?)
    }
}
