//! The DynamoDB store's merge-gate reverse index: one item per change.

use super::trails::conditional_put;
use super::{DOC, DynamoStore, doc_of, key, n, s};
use crate::adapters::keys;
use crate::domain::gate::pulls::PullLinks;
use crate::domain::{ChangeId, TenantId};
use crate::ports::{PullLinkStore, StoreError};

impl PullLinkStore for DynamoStore {
    /// One consistent GetItem.
    async fn get_pull_links(&self, tenant: &TenantId, change: &ChangeId) -> Result<Option<PullLinks>, StoreError> {
        self.read_item(keys::pull_links_pk(tenant, change), keys::PULL_LINKS_SK).await
    }

    /// One PutItem, conditional on the version before (absent for a first
    /// version); `VersionConflict` whenever the condition fails.
    async fn put_pull_links(&self, links: &PullLinks) -> Result<(), StoreError> {
        let mut item = key(keys::pull_links_pk(&links.tenant, &links.change), keys::PULL_LINKS_SK);
        item.insert("entity".into(), s("pull_links"));
        item.insert("version".into(), n(links.version));
        item.insert(DOC.into(), doc_of(links)?);
        let expected = links.version.saturating_sub(1);
        let write = conditional_put(&self.table, item, "version", expected)?;
        self.put_conditionally(write, expected, || async { Ok(true) }).await
    }
}
