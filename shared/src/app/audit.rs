//! Audit verification (`changehub audit verify`): each change's trail read
//! back through the store port and checked whole: hashes, links, no gap, the
//! record's head, and, with the hub's audit key, every entry's seal.

use crate::domain::audit::{AuditKey, ChainError, verify_record, verify_seals};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{ChangeReader, StoreError};

/// What was found for one change.
#[derive(Debug)]
pub struct ChainReport {
    pub tenant: TenantId,
    pub change_id: ChangeId,
    /// Audit entries read.
    pub entries: usize,
    /// `Err` names where the chain breaks.
    pub result: Result<(), ChainError>,
}

/// Checks the trail of each `(tenant, change)`: two reads per change (the
/// record, one paged query of its trail). Seals are checked when `key` is
/// given. A listed change whose record is gone is reported as broken.
pub async fn verify_trails<S: ChangeReader>(
    store: &S,
    changes: &[(TenantId, ChangeId)],
    key: Option<&AuditKey>,
) -> Result<Vec<ChainReport>, StoreError> {
    let mut reports = Vec::with_capacity(changes.len());
    for (tenant, id) in changes {
        let record = store.get_change(tenant, id).await?;
        let trail = store.audit_trail(tenant, id).await?;
        let result = match &record {
            None => Err(ChainError::RecordMissing { entries: trail.len() }),
            Some(record) => {
                verify_record(record, &trail).and_then(|()| key.map_or(Ok(()), |k| verify_seals(&trail, k)))
            }
        };
        reports.push(ChainReport { tenant: tenant.clone(), change_id: *id, entries: trail.len(), result });
    }
    Ok(reports)
}
