//! The embedded store's merge-gate reverse index: one item per change.

use redb::ReadableDatabase;

use super::{EmbeddedStore, ITEMS, backend, get_item};
use crate::adapters::keys;
use crate::domain::gate::pulls::PullLinks;
use crate::domain::{ChangeId, TenantId};
use crate::ports::{PullLinkStore, StoreError};

impl PullLinkStore for EmbeddedStore {
    async fn get_pull_links(&self, tenant: &TenantId, change: &ChangeId) -> Result<Option<PullLinks>, StoreError> {
        let pk = keys::pull_links_pk(tenant, change);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            get_item(&table, &pk, keys::PULL_LINKS_SK)
        })
        .await
    }

    async fn put_pull_links(&self, links: &PullLinks) -> Result<(), StoreError> {
        let pk = keys::pull_links_pk(&links.tenant, &links.change);
        let sk = keys::PULL_LINKS_SK.to_owned();
        self.replace_versioned(pk, sk, links.clone(), links.version, |l: &PullLinks| l.version, true).await
    }
}
