//! Correlating an incident with the changes that may have caused it: the
//! reading around the pure rule of [`crate::domain::correlation`].
//!
//! For an incident on S at t, the hub reads the changes of the incident's
//! scope (S and the services it depends on, [`Scope::of`]) whose recorded
//! implementation started at or before t and ended at or after `t − window`
//! or not before t ([`ImplementationReader`]): a fixed number of index
//! queries per service in scope and one batch read per 100 changes found,
//! whatever the history. Only event times are compared (the incident's
//! start, the changes' recorded transitions), never the store's clock or
//! the time of reading, so an incident replayed a month later gets the same
//! answer.

use crate::domain::TenantId;
use crate::domain::catalog::Catalog;
use crate::domain::correlation::{ChangeFacts, Correlation, IncidentFacts, Scope, correlate};
use crate::ports::{ImplementationQuery, ImplementationReader, StoreError};

pub use crate::ports::ReadCost;

/// Correlates incidents with the changes a store holds.
pub struct Correlator<S> {
    pub store: S,
}

impl<S: ImplementationReader> Correlator<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The changes related to `incident` in `tenant`, ranked, and what
    /// reading them cost. An incident known to be outside production reads nothing.
    pub async fn correlate(
        &self,
        tenant: &TenantId,
        catalog: &Catalog,
        incident: &IncidentFacts,
    ) -> Result<(Correlation, ReadCost), StoreError> {
        let outside_production = incident.environment.as_deref().is_some_and(|e| !catalog.correlation.is_production(e));
        if outside_production {
            return Ok((correlate(catalog, incident, &[]), ReadCost::default()));
        }
        let scope = Scope::of(catalog, &incident.service);
        let query = ImplementationQuery {
            tenant: tenant.clone(),
            services: scope.services.iter().map(|link| link.service.clone()).collect(),
            since: scope.since(incident.started_at),
            at: incident.started_at,
        };
        let found = self.store.implemented(&query).await?;
        let candidates: Vec<ChangeFacts> = found.changes.iter().filter_map(ChangeFacts::of).collect();
        Ok((correlate(catalog, incident, &candidates), found.cost))
    }
}
