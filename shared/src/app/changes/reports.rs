//! Reports: emergency changes awaiting their post-implementation review.

use chrono::{DateTime, Duration, Utc};

use super::{ChangeError, ChangeStore, Changes, page};
use crate::domain::Change;
use crate::domain::access::Caller;
use crate::ports::{Clock, DuePartition, Page};

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// Emergency changes whose post-implementation review is not done yet, earliest due first.
    pub async fn pending_reviews(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<String>,
    ) -> Result<Page<Change>, ChangeError> {
        self.reader(caller, "reading reports").await?;
        let (limit, after) = page(limit, cursor.as_deref())?;
        let far = DateTime::<Utc>::MAX_UTC.min(self.clock.now() + Duration::days(365 * 100));
        let partition = DuePartition::Reviews { tenant: caller.tenant.clone() };
        Ok(self.store.due(&partition, far, limit, after).await?)
    }
}
