//! `changehub migrate`: one pass over a tenant's changes that brings a
//! table written by an older hub up to the indexes this one reads. Today
//! one step: the plannable index (`T#{tenant}#PLANNABLE#{service}`), which
//! the drift consumer reads for the approved and scheduled changes that may
//! authorize a configuration change; a change approved before the index
//! existed is in no such index until it is written again, so drift would
//! not see it. Idempotent: run it once after an upgrade, again at will.

use crate::domain::{ChangeState, TenantId};
use crate::ports::{ChangeReader, IndexRestore, StoreError};

/// Reads of a change that keeps moving under the pass, before leaving it
/// to its own writes (each of which indexes it).
const ATTEMPTS: usize = 3;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The tenant's changes read.
    pub read: usize,
    /// Of those, the ones whose index entries were written (those a plan
    /// may still authorize: approved, scheduled or implementing).
    pub indexed: usize,
}

/// Writes the index entries of each of `tenant`'s changes that a plan may
/// still authorize, each at the version read (a change that moved meanwhile
/// is read again). One Query of the tenant's change list, one read per
/// change, one write per change indexed.
pub async fn restore_indexes<S: ChangeReader + IndexRestore>(
    store: &S,
    tenant: &TenantId,
) -> Result<Migrated, StoreError> {
    let mut done = Migrated::default();
    for id in store.change_ids(tenant).await? {
        for _ in 0..ATTEMPTS {
            let Some(change) = store.get_change(tenant, &id).await? else { break };
            if !matches!(change.state, ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing) {
                break;
            }
            if store.restore_index(&change).await? {
                done.indexed += 1;
                break;
            }
        }
        done.read += 1;
    }
    Ok(done)
}
