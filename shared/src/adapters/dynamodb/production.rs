//! The DynamoDB store's record of what runs in production: one item per
//! service and environment.

use super::trails::conditional_put;
use super::{DOC, DynamoStore, doc_of, key, n, s};
use crate::adapters::keys;
use crate::domain::deployment::production::InProduction;
use crate::domain::{ServiceName, TenantId};
use crate::ports::{InProductionStore, StoreError};

impl InProductionStore for DynamoStore {
    /// One consistent GetItem.
    async fn in_production(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        environment: &str,
    ) -> Result<Option<InProduction>, StoreError> {
        self.read_item(keys::in_production_pk(tenant, service), &keys::in_production_sk(environment)).await
    }

    /// One PutItem, conditional on the version before (absent for a first
    /// version); `VersionConflict` whenever the condition fails.
    async fn put_in_production(&self, record: &InProduction) -> Result<(), StoreError> {
        let sk = keys::in_production_sk(&record.environment);
        let mut item = key(keys::in_production_pk(&record.tenant, &record.service), sk);
        item.insert("entity".into(), s("in_production"));
        item.insert("version".into(), n(record.version));
        item.insert(DOC.into(), doc_of(record)?);
        let expected = record.version.saturating_sub(1);
        let write = conditional_put(&self.table, item, "version", expected)?;
        self.put_conditionally(write, expected, || async { Ok(true) }).await
    }
}
