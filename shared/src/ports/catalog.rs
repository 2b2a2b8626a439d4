//! The service catalog, as ingest needs it: which service a repository, a
//! PagerDuty service, an incident.io service or an AWS resource belongs to.

use std::future::Future;

use super::store::StoreError;
use crate::domain::{ServiceName, TenantId};

/// What a mapping maps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    Repository,
    PagerdutyService,
    IncidentioService,
    AwsResource,
}

impl MappingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingKind::Repository => "repository",
            MappingKind::PagerdutyService => "pagerduty_service",
            MappingKind::IncidentioService => "incidentio_service",
            MappingKind::AwsResource => "aws_resource",
        }
    }
}

pub trait CatalogReader: Send + Sync {
    /// The service `key` maps to, if the tenant's catalog has a mapping. One read.
    fn mapped_service(
        &self,
        tenant: &TenantId,
        kind: MappingKind,
        key: &str,
    ) -> impl Future<Output = Result<Option<ServiceName>, StoreError>> + Send;
}

pub trait CatalogWriter: Send + Sync {
    fn put_mapping(
        &self,
        tenant: &TenantId,
        kind: MappingKind,
        key: &str,
        service: &ServiceName,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
