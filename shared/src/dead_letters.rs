//! `changehub serve`'s dead letters: the events a local consumer could not
//! apply after its retries, never dropped.
//!
//! Every one is appended, with its reason, to `dead-letters.jsonl` beside the
//! notifications file (the record). One a later try may fix (a forge that
//! answered 502, a store busy) is also kept in the directory `dead-letters/`
//! beside it, one JSON file per letter ([`DeliveryQueue`], written whole),
//! and redriven to its consumer: first [`Redrive::backoff`]'s first wait
//! after it was kept, the wait doubling with each failed redrive, at most
//! [`Redrive::attempts`] redrives; then it is kept, marked exhausted, and no
//! longer tried. A redriven letter that applies is removed. The directory
//! survives a restart, and the first pass after a start redrives every
//! waiting letter whatever its wait. `GET /health` reports the directory
//! ([`Backlog`], `dead_letters`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

use crate::adapters::chat::deliver::Backoff;
use crate::adapters::chat::queue::{DeliveryQueue, QueueError, Queued};
use crate::adapters::local_notifier::JsonLines;
use crate::config::{ConfigError, optional};
use crate::domain::HubEvent;
use crate::domain::catalog::Span;

/// The record's file name, beside the notifications file.
pub const DEAD_LETTERS_FILE: &str = "dead-letters.jsonl";
/// The redrive directory's name, beside the notifications file.
pub const REDRIVE_DIR: &str = "dead-letters";
/// Default of [`Redrive::attempts`].
pub const DEFAULT_REDRIVES: u32 = 10;
/// Default of the first wait ([`Backoff::first`]); each next one doubles, up to an hour.
pub const DEFAULT_FIRST_WAIT: Duration = Duration::from_secs(30);
/// The longest wait between redrives.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// The longest a consumer waits before looking for due letters.
const RESCAN: Duration = Duration::from_secs(5);

/// How patiently dead letters are redriven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redrive {
    pub backoff: Backoff,
    /// Redrives of one letter before it is left exhausted.
    pub attempts: u32,
}

impl Default for Redrive {
    fn default() -> Self {
        Self { backoff: Backoff { first: DEFAULT_FIRST_WAIT, max: MAX_WAIT }, attempts: DEFAULT_REDRIVES }
    }
}

impl Redrive {
    /// `CHANGEHUB_REDRIVE_MIN` (the first wait, a duration such as `30s`,
    /// at least 1s) and `CHANGEHUB_REDRIVE_ATTEMPTS` (1 to 100), else the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut redrive = Self::default();
        if let Some(value) = optional("CHANGEHUB_REDRIVE_MIN") {
            let invalid = |message: String| ConfigError::Invalid { name: "CHANGEHUB_REDRIVE_MIN", message };
            let first = Span::parse(&value).map_err(invalid)?.0;
            if first < Duration::from_secs(1) {
                return Err(invalid("at least 1s".into()));
            }
            redrive.backoff = Backoff { first, max: MAX_WAIT.max(first) };
        }
        if let Some(value) = optional("CHANGEHUB_REDRIVE_ATTEMPTS") {
            redrive.attempts = value.parse().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                ConfigError::Invalid { name: "CHANGEHUB_REDRIVE_ATTEMPTS", message: "a number from 1 to 100".into() }
            })?;
        }
        Ok(redrive)
    }

    /// How often a consumer looks for due letters.
    pub fn rescan(&self) -> Duration {
        self.backoff.first.min(RESCAN)
    }
}

/// An event a consumer could not apply, waiting to be redriven to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `<UUIDv7, 32 hex digits>.<consumer>`: unique, in the order kept.
    pub id: String,
    /// The consumer (`merge-gate`, `correlate`, `drift`, `deployments`).
    pub consumer: String,
    pub event: HubEvent,
    pub dead_at: DateTime<Utc>,
    /// Redrives that failed so far.
    pub redrives: u32,
    /// Not redriven before this time.
    pub next_at: DateTime<Utc>,
    pub last_error: String,
    /// Redriven as often as allowed in vain: kept, no longer tried.
    #[serde(default)]
    pub exhausted: bool,
}

impl Queued for DeadLetter {
    fn id(&self) -> &str {
        &self.id
    }
}

/// What the redrive directory holds, in short: `GET /health`'s `dead_letters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Letters to be redriven.
    pub waiting: usize,
    /// Letters redriven as often as allowed in vain (kept in the directory).
    pub exhausted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_dead_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_last_error: Option<String>,
}

/// Why an event was not applied: the reason, whether a retry may help, the attempts made.
pub type Failure = (String, bool, u32);

/// The record and the redrive directory of one hub. Clones share them.
#[derive(Clone)]
pub struct DeadLetters {
    record: JsonLines,
    queue: DeliveryQueue<DeadLetter>,
    redrive: Redrive,
}

impl DeadLetters {
    /// The dead letters of the hub whose notifications file is `notifications`.
    pub fn beside(notifications: &Path, redrive: Redrive) -> Self {
        Self {
            record: JsonLines::new(notifications.with_file_name(DEAD_LETTERS_FILE)),
            queue: DeliveryQueue::new(notifications.with_file_name(REDRIVE_DIR)),
            redrive,
        }
    }

    pub fn redrive(&self) -> Redrive {
        self.redrive
    }

    /// Records `event`, which `consumer` could not apply, and keeps it for
    /// redrive when a retry may help; logs it (the whole letter when it cannot be written).
    pub async fn keep(&self, consumer: &str, event: &HubEvent, (reason, retryable, attempts): Failure) {
        let now = Utc::now();
        let line = serde_json::json!({
            "at": now,
            "consumer": consumer,
            "error": reason,
            "retryable": retryable,
            "attempts": attempts,
            "event": event,
        });
        if let Err(e) = self.record.append(&line).await {
            tracing::error!(consumer, error = %reason, file = %self.record.path().display(), write_error = %e, letter = %line, "event not applied, and the dead-letter file could not be written");
        }
        let kept = match retryable {
            true => {
                let letter = DeadLetter {
                    id: format!("{}.{consumer}", uuid::Uuid::now_v7().simple()),
                    consumer: consumer.to_owned(),
                    event: event.clone(),
                    dead_at: now,
                    redrives: 0,
                    next_at: now + self.redrive.backoff.after(1),
                    last_error: reason.clone(),
                    exhausted: false,
                };
                self.queue.put(&letter).await.map(|()| Some(letter.next_at))
            }
            false => Ok(None),
        };
        match kept {
            Ok(redrive_at) => tracing::error!(
                consumer, event_id = %event.id, detail_type = %event.detail_type, error = %reason, retryable,
                file = %self.record.path().display(), ?redrive_at, "event not applied; kept as a dead letter"
            ),
            Err(e) => tracing::error!(
                consumer, event_id = %event.id, error = %reason, write_error = %e, event = %serde_json::json!(event),
                "event not applied, and it could not be kept for redrive"
            ),
        }
    }

    /// `consumer`'s letters to redrive now (every waiting one when `all`).
    pub async fn due(&self, consumer: &str, all: bool) -> Vec<DeadLetter> {
        let kept = match self.queue.list().await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(consumer, error = %e, "cannot read the dead letters; the next pass tries again");
                return Vec::new();
            }
        };
        let now = Utc::now();
        kept.deliveries
            .into_iter()
            .filter(|l| l.consumer == consumer && !l.exhausted && (all || l.next_at <= now))
            .collect()
    }

    /// Removes `letter` once applied (`Ok`), or keeps it with its error and
    /// next wait, exhausted after [`Redrive::attempts`] failed redrives.
    pub async fn redriven(&self, mut letter: DeadLetter, outcome: Result<(), String>) {
        let (id, consumer) = (letter.id.clone(), letter.consumer.clone());
        let written = match outcome {
            Ok(()) => {
                tracing::info!(consumer, letter = %id, event_id = %letter.event.id, redrives = letter.redrives + 1, "dead letter redriven and applied");
                self.queue.remove(&id).await.map(drop)
            }
            Err(reason) => {
                letter.redrives += 1;
                letter.last_error = reason;
                letter.exhausted = letter.redrives >= self.redrive.attempts;
                letter.next_at = Utc::now() + self.redrive.backoff.after(letter.redrives + 1);
                match letter.exhausted {
                    true => {
                        tracing::error!(consumer, letter = %id, event_id = %letter.event.id, redrives = letter.redrives, error = %letter.last_error, "dead letter exhausted its redrives; kept, no longer tried")
                    }
                    false => {
                        tracing::warn!(consumer, letter = %id, redrives = letter.redrives, next_at = %letter.next_at, error = %letter.last_error, "dead letter redrive failed")
                    }
                }
                self.queue.put(&letter).await
            }
        };
        if let Err(e) = written {
            tracing::error!(consumer, letter = %id, error = %e, "cannot update the dead letter");
        }
    }

    /// What the directory holds.
    pub async fn backlog(&self) -> Result<Backlog, QueueError> {
        let kept = self.queue.list().await?;
        let oldest = kept.deliveries.first();
        Ok(Backlog {
            waiting: kept.deliveries.iter().filter(|l| !l.exhausted).count(),
            exhausted: kept.deliveries.iter().filter(|l| l.exhausted).count(),
            oldest_dead_at: oldest.map(|l| l.dead_at),
            oldest_consumer: oldest.map(|l| l.consumer.clone()),
            oldest_last_error: oldest.map(|l| l.last_error.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> HubEvent {
        HubEvent {
            id: "e-1".into(),
            source: "changehub.github".into(),
            detail_type: "Pull Request Changed".into(),
            time: Utc::now(),
            resources: Vec::new(),
            detail: serde_json::json!({"tenant": "default"}),
        }
    }

    #[tokio::test]
    async fn retryable_letters_wait_with_backoff_until_applied_or_exhausted_and_others_are_only_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let redrive = Redrive { backoff: Backoff { first: Duration::from_secs(60), max: MAX_WAIT }, attempts: 2 };
        let letters = DeadLetters::beside(&dir.path().join("notifications.jsonl"), redrive);
        letters.keep("merge-gate", &event(), ("GitHub answered 502".into(), true, 3)).await;
        letters.keep("correlate", &event(), ("unreadable".into(), false, 1)).await;
        let record = std::fs::read_to_string(dir.path().join(DEAD_LETTERS_FILE)).expect("record");
        assert_eq!(record.lines().count(), 2, "both are recorded");
        assert_eq!(letters.backlog().await.expect("backlog").waiting, 1, "only the retryable one waits");

        assert!(letters.due("merge-gate", false).await.is_empty(), "not due before its first wait");
        assert!(letters.due("correlate", true).await.is_empty(), "another consumer's");
        let due = letters.due("merge-gate", true).await;
        assert_eq!(due.len(), 1);
        let waited = due[0].next_at - due[0].dead_at;
        assert_eq!(waited, chrono::Duration::seconds(60), "the first wait");

        letters.redriven(due[0].clone(), Err("GitHub answered 502 again".into())).await;
        let again = letters.due("merge-gate", true).await;
        assert_eq!((again[0].redrives, again[0].last_error.as_str()), (1, "GitHub answered 502 again"));
        assert!(again[0].next_at - Utc::now() > chrono::Duration::seconds(110), "the wait doubles");
        letters.redriven(again[0].clone(), Err("still 502".into())).await;
        assert!(letters.due("merge-gate", true).await.is_empty(), "exhausted: no longer redriven");
        let backlog = letters.backlog().await.expect("backlog");
        assert_eq!((backlog.waiting, backlog.exhausted), (0, 1));
        assert_eq!(backlog.oldest_consumer.as_deref(), Some("merge-gate"));
        assert_eq!(backlog.oldest_last_error.as_deref(), Some("still 502"));

        letters.keep("merge-gate", &event(), ("502".into(), true, 3)).await;
        let due = letters.due("merge-gate", true).await;
        letters.redriven(due[0].clone(), Ok(())).await;
        assert_eq!(letters.backlog().await.expect("backlog").waiting, 0, "applied: removed");
    }
}
