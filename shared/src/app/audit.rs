//! Audit verification (`changehub audit verify`): each change's trail, and
//! each tenant's governance trail, read back through the store ports and
//! checked whole: hashes, links, no gap, the head (the record's, or the
//! trail's own), and, with the hub's audit key, every entry's seal.

use crate::domain::audit::{AuditKey, ChainError, verify_record, verify_seals, verify_trail};
use crate::domain::{ChangeId, TenantId};
use crate::ports::{ChangeReader, MAX_PAGE, StoreError, TenantDocs};

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

impl ChainReport {
    /// The trail checked: the change's id, or `governance`.
    pub fn trail(&self) -> String {
        if self.change_id == ChangeId::GOVERNANCE_TRAIL { "governance".to_owned() } else { self.change_id.to_string() }
    }
}

/// Checks `tenant`'s governance trail, read a page at a time, against its
/// head; none when the tenant has neither. Entries without a head are
/// reported broken (the head was removed).
pub async fn verify_governance<S: TenantDocs>(
    store: &S,
    tenant: &TenantId,
    key: Option<&AuditKey>,
) -> Result<Option<ChainReport>, StoreError> {
    let head = store.trail_head(tenant).await?;
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = store.trail(tenant, MAX_PAGE, after).await?;
        entries.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let result = match (&head, entries.last()) {
        (None, None) => return Ok(None),
        (Some(head), _) => verify_trail(head, &entries),
        (None, Some(last)) => Err(ChainError::HeadMismatch { last: last.seq }),
    };
    let result = result.and_then(|()| key.map_or(Ok(()), |k| verify_seals(&entries, k)));
    Ok(Some(ChainReport {
        tenant: tenant.clone(),
        change_id: ChangeId::GOVERNANCE_TRAIL,
        entries: entries.len(),
        result,
    }))
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
