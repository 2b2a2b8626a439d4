//! The embedded store's record of what runs in production: one item per
//! service and environment.

use redb::ReadableDatabase;

use super::{EmbeddedStore, ITEMS, backend, get_item};
use crate::adapters::keys;
use crate::domain::deployment::production::InProduction;
use crate::domain::{ServiceName, TenantId};
use crate::ports::{InProductionStore, StoreError};

impl InProductionStore for EmbeddedStore {
    async fn in_production(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        environment: &str,
    ) -> Result<Option<InProduction>, StoreError> {
        let (pk, sk) = (keys::in_production_pk(tenant, service), keys::in_production_sk(environment));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(ITEMS).map_err(backend)?;
            get_item(&table, &pk, &sk)
        })
        .await
    }

    async fn put_in_production(&self, record: &InProduction) -> Result<(), StoreError> {
        let pk = keys::in_production_pk(&record.tenant, &record.service);
        let sk = keys::in_production_sk(&record.environment);
        self.replace_versioned(pk, sk, record.clone(), record.version, |r: &InProduction| r.version, true).await
    }
}
