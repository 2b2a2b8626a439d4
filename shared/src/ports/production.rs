//! What runs in each service's production environments: one record per
//! service and environment ([`InProduction`]), read and written whole.

use std::future::Future;

use super::store::StoreError;
use crate::domain::deployment::production::InProduction;
use crate::domain::{ServiceName, TenantId};

pub trait InProductionStore: Send + Sync {
    /// What runs in `service`'s `environment` (any case), as its latest
    /// successful deployment left it: one read.
    fn in_production(
        &self,
        tenant: &TenantId,
        service: &ServiceName,
        environment: &str,
    ) -> impl Future<Output = Result<Option<InProduction>, StoreError>> + Send;

    /// Stores `record` if the stored one is at the version before
    /// (`record.version - 1`; none stored when it is 1), else `VersionConflict`.
    fn put_in_production(&self, record: &InProduction) -> impl Future<Output = Result<(), StoreError>> + Send;
}
