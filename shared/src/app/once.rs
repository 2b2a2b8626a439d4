//! Exactly-once effects, the pattern every consumer follows: lease the
//! event's keys, do the work, mark the keys done. A duplicate (the keys are
//! done) does nothing; a concurrent copy (the keys are leased) is told to
//! come back; work that fails gives its lease back, so a retry does it again;
//! work whose process dies keeps its lease until it runs out.

use std::future::Future;

use super::ingest::ClaimTimes;
use crate::ports::{Claim, Clock, Dedupe, StoreError};

/// What [`once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The keys were free: the work was done, with this result.
    Done(T),
    /// The keys are done: the work was done before, so nothing was.
    Duplicate,
    /// The keys are leased by work in progress elsewhere: retry later.
    InProgress,
}

#[derive(Debug, thiserror::Error)]
pub enum OnceError<E> {
    /// Claiming the keys failed: nothing was done.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work failed; its lease was given back.
    #[error(transparent)]
    Work(E),
}

/// Runs `work` once for `keys`: see the module. A failure to mark the keys
/// done after the work succeeded is logged, not returned: the work is done,
/// and a redelivery after the lease only repeats effects that consumers
/// drop by event id.
pub async fn once<D, C, T, E, F>(
    dedupe: &D,
    clock: &C,
    times: ClaimTimes,
    keys: &[String],
    work: F,
) -> Result<Once<T>, OnceError<E>>
where
    D: Dedupe,
    C: Clock,
    F: Future<Output = Result<T, E>>,
{
    // This attempt's lease: only it may give the keys back.
    let owner = uuid::Uuid::now_v7().to_string();
    match dedupe.claim(keys, &owner, clock.now(), times.lease).await? {
        Claim::New => {}
        Claim::Duplicate => return Ok(Once::Duplicate),
        Claim::InProgress => return Ok(Once::InProgress),
    }
    let done = match work.await {
        Ok(done) => done,
        Err(e) => {
            if let Err(release) = dedupe.release(keys, &owner).await {
                tracing::error!(?keys, error = %release, "could not release a lease after failed work; it expires on its own");
            }
            return Err(OnceError::Work(e));
        }
    };
    if let Err(e) = dedupe.complete(keys, clock.now(), times.ttl).await {
        tracing::warn!(?keys, error = %e, "done, but the keys could not be marked done");
    }
    Ok(Once::Done(done))
}
