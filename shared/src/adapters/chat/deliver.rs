//! The background deliverer: posts the kept deliveries to their hooks.
//!
//! Each pass reads the queue; a delivery that is due is posted (a few
//! attempts with backoff, as [`Poster`] does: connection errors, 5xx and
//! 429 are retried, after the `Retry-After` asked for). Delivered, it is
//! removed. Failed, it is kept with its attempts and last error and tried
//! again after a wait that doubles with each failed pass
//! ([`Backoff`]), or after the `Retry-After` asked for if longer; the
//! hook's later deliveries wait behind it, so each hook gets its
//! notifications in order. Refused (a 4xx other than 429), it is kept and
//! not posted again until someone retries it. Hooks are served at once,
//! each in its own task, so a slow one holds up only itself.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use super::Hook;
use super::queue::{DeliveryQueue, HookDelivery, QueueError};
use crate::adapters::https::{PostError, Poster, Retries, Timeouts};
use crate::error_chain as reason;

/// The wait before a failed delivery is tried again: `first` after the
/// first failed pass, doubling with each next, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Default of [`Backoff::first`].
pub const DEFAULT_FIRST_WAIT: Duration = Duration::from_secs(30);
/// Default of [`Backoff::max`].
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3600);

impl Default for Backoff {
    fn default() -> Self {
        Self { first: DEFAULT_FIRST_WAIT, max: DEFAULT_MAX_WAIT }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failed pass (1 for the first).
    pub fn after(&self, failures: u32) -> Duration {
        let doubled = self.first.saturating_mul(1 << failures.saturating_sub(1).min(20));
        doubled.min(self.max.max(self.first))
    }
}

/// The attempts of one pass: a few quick ones; the queue waits longer.
pub fn default_retries() -> Retries {
    Retries {
        attempts: 3,
        min_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(30),
    }
}

/// The longest a pass waits before reading the queue again when nothing
/// woke it (it also sees deliveries made due by `changehub notifications --retry`).
const RESCAN: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Deliverer {
    hooks: Arc<BTreeMap<String, Hook>>,
    queue: DeliveryQueue,
    poster: Poster,
    backoff: Backoff,
    wake: Arc<Notify>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    /// Failed, kept and to be tried again.
    pub failed: usize,
    /// Refused by their hook, kept until retried by hand.
    pub refused: usize,
    /// When the next kept delivery is due, if one is waiting.
    pub next_at: Option<DateTime<Utc>>,
}

impl Deliverer {
    pub fn new(hooks: &[Hook], queue: DeliveryQueue, timeouts: Timeouts, retries: Retries, backoff: Backoff) -> Self {
        Self {
            hooks: Arc::new(hooks.iter().map(|h| (h.id().to_owned(), h.clone())).collect()),
            queue,
            poster: Poster::new(timeouts, retries),
            backoff,
            wake: Arc::default(),
        }
    }

    /// What a [`super::HookNotifier`] pokes when it queues a delivery.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Delivers until `stop` resolves, then makes a last pass. The first
    /// pass posts every kept delivery (but refused ones) whatever its
    /// `next_at`: a restart is a good time to try again.
    pub async fn run(self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        self.report_kept().await;
        let mut force = true;
        loop {
            let pass = self.pass(force).await;
            force = false;
            let wait = pass.next_at.map_or(RESCAN, |at| (at - Utc::now()).to_std().unwrap_or_default().min(RESCAN));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = &mut stop => {
                    self.pass(false).await;
                    return;
                }
            }
        }
    }

    /// Says at start what is kept from before: waiting, refused, or for hooks no longer configured.
    async fn report_kept(&self) {
        let kept = match self.queue.list().await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the kept webhook deliveries");
                return;
            }
        };
        let refused = kept.deliveries.iter().filter(|d| d.refused).count();
        let orphaned = kept.deliveries.iter().filter(|d| !self.hooks.contains_key(&d.hook)).count();
        if !kept.deliveries.is_empty() {
            tracing::warn!(
                kept = kept.deliveries.len(), refused, for_hooks_not_configured = orphaned,
                queue = %self.queue.dir().display(),
                "undelivered webhook notifications kept from before; `changehub notifications --undelivered` lists them"
            );
        }
        for (path, why) in &kept.unreadable {
            tracing::error!(file = %path.display(), error = %why, "a file in the webhook queue is not a delivery; left alone");
        }
    }

    /// One pass: every due delivery of every configured hook is posted,
    /// hooks at once, each hook's in the order queued.
    pub async fn pass(&self, force: bool) -> Pass {
        let kept = match self.queue.list().await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue; trying again later");
                return Pass { next_at: Some(Utc::now() + RESCAN), ..Pass::default() };
            }
        };
        let now = Utc::now();
        let mut by_hook: BTreeMap<String, Vec<HookDelivery>> = BTreeMap::new();
        for d in kept.deliveries.into_iter().filter(|d| !d.refused && self.hooks.contains_key(&d.hook)) {
            by_hook.entry(d.hook.clone()).or_default().push(d);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (hook, deliveries) in by_hook {
            let this = self.clone();
            tasks.spawn(async move { this.deliver_in_order(&hook, deliveries, force, now).await });
        }
        let mut pass = Pass::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(hook) => {
                    pass.delivered += hook.delivered;
                    pass.failed += hook.failed;
                    pass.refused += hook.refused;
                    pass.next_at = [pass.next_at, hook.next_at].into_iter().flatten().min();
                }
                Err(e) => tracing::error!(error = %e, "a webhook delivery task failed"),
            }
        }
        pass
    }

    /// Posts `deliveries` (one hook's, in order) that are due; stops at the
    /// first that fails for a reason a later try may fix (the rest wait behind it).
    async fn deliver_in_order(
        &self,
        hook: &str,
        deliveries: Vec<HookDelivery>,
        force: bool,
        now: DateTime<Utc>,
    ) -> Pass {
        let mut pass = Pass::default();
        let Some(hook) = self.hooks.get(hook) else { return pass };
        for d in deliveries {
            if !force && d.next_at > now {
                pass.next_at = Some(d.next_at);
                break;
            }
            // Read again: `changehub notifications --delete` may have removed it since the listing.
            let d = match self.queue.get(&d.id).await {
                Ok(Some(d)) if !d.refused => d,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(delivery = %d.id, error = %e, "cannot read a kept webhook delivery");
                    continue;
                }
            };
            match self.deliver(hook, d).await {
                Ok(Delivered::Yes) => pass.delivered += 1,
                Ok(Delivered::Refused) => pass.refused += 1,
                Ok(Delivered::Later(at)) => {
                    pass.failed += 1;
                    pass.next_at = Some(at);
                    break;
                }
                Err(e) => {
                    tracing::error!(hook = %hook.id(), error = %e, "cannot update the webhook queue");
                    pass.next_at = Some(Utc::now() + RESCAN);
                    break;
                }
            }
        }
        pass
    }

    /// Posts `d` and records the outcome in the queue.
    async fn deliver(&self, hook: &Hook, mut d: HookDelivery) -> Result<Delivered, QueueError> {
        let body = hook.kind.payload(&d.notification);
        let outcome = self.poster.post(hook.id(), hook.url(), &Default::default(), &body).await;
        let now = Utc::now();
        d.last_attempt_at = Some(now);
        let e = match outcome {
            Ok(()) => {
                self.queue.remove(&d.id).await?;
                tracing::info!(hook = %hook.id(), delivery = %d.id, attempts = d.attempts + 1, "notification delivered to webhook");
                return Ok(Delivered::Yes);
            }
            Err(e) => e,
        };
        d.attempts += e.attempts();
        d.failures += 1;
        d.last_error = Some(reason(&e));
        if !e.is_retryable() {
            d.refused = true;
            self.queue.put(&d).await?;
            tracing::error!(
                hook = %hook.id(), delivery = %d.id, error = %reason(&e),
                "webhook refused the notification; kept until retried (`changehub notifications --retry`) or deleted"
            );
            return Ok(Delivered::Refused);
        }
        let asked = match &e {
            PostError::Unavailable { retry_after: Some(asked), .. } => *asked,
            _ => Duration::ZERO,
        };
        let wait = self.backoff.after(d.failures).max(asked);
        d.next_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
        self.queue.put(&d).await?;
        tracing::warn!(
            hook = %hook.id(), delivery = %d.id, attempts = d.attempts, error = %reason(&e),
            next_at = %d.next_at, "webhook delivery failed; kept and tried again later"
        );
        Ok(Delivered::Later(d.next_at))
    }
}

enum Delivered {
    Yes,
    Refused,
    Later(DateTime<Utc>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_with_each_failed_pass_up_to_the_max() {
        let b = Backoff { first: Duration::from_secs(30), max: Duration::from_secs(3600) };
        let waits: Vec<u64> = (1..=9).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(3600));
        assert_eq!(b.after(0), Duration::from_secs(30));
    }
}
