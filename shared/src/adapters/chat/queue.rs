//! The kept deliveries: one JSON file per (notification, hook) in a
//! directory beside the notifications file, written whole (a temporary
//! file renamed over) and removed once delivered. The same kind of
//! directory keeps `serve`'s dead letters ([`crate::dead_letters`]): a
//! queue keeps any [`Queued`] document.
//!
//! A directory rather than a table of the embedded store: `changehub
//! notifications` reads and edits it while `serve` runs (which holds the
//! database's lock), a delivery is changed by rewriting one small file,
//! and what is kept can be read with `cat`.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

use super::{ChatKind, Hook};
use crate::ports::Notification;

/// The directory's name, beside the notifications file.
pub const QUEUE_DIR: &str = "undelivered";

/// A notification to post to one hook, and how its posts went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookDelivery {
    /// `<UUIDv7, 32 hex digits>.<hook id>`: unique, in the order queued, and short enough to
    /// be printed whole in `changehub notifications`' table.
    pub id: String,
    /// The hook's id ([`Hook::id`]; never its URL).
    pub hook: String,
    pub kind: ChatKind,
    pub queued_at: DateTime<Utc>,
    /// HTTP attempts made so far.
    pub attempts: u32,
    /// Passes that ended in a failure (each of a few attempts): the wait before the next grows with them.
    #[serde(default)]
    pub failures: u32,
    /// Not posted before this time.
    pub next_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The hook refused it (a 4xx other than 429): kept, and not posted
    /// again until someone retries it (`changehub notifications --retry`).
    #[serde(default)]
    pub refused: bool,
    pub notification: Notification,
}

impl HookDelivery {
    /// A delivery of `notification` to `hook`, due at `now`.
    pub fn new(hook: &Hook, notification: Notification, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("{}.{}", uuid::Uuid::now_v7().simple(), hook.id()),
            hook: hook.id().to_owned(),
            kind: hook.kind,
            queued_at: now,
            attempts: 0,
            failures: 0,
            next_at: now,
            last_attempt_at: None,
            last_error: None,
            refused: false,
            notification,
        }
    }

    /// Due again at `now`, refused or not (what `--retry` does).
    pub fn retry_now(&mut self, now: DateTime<Utc>) {
        self.refused = false;
        self.next_at = now;
    }
}

/// What a [`DeliveryQueue`] keeps: a document named by an id that sorts in
/// the order queued (ASCII letters, digits, `-` and `.`).
pub trait Queued: Serialize + DeserializeOwned {
    fn id(&self) -> &str;
}

impl Queued for HookDelivery {
    fn id(&self) -> &str {
        &self.id
    }
}

/// What the directory holds.
#[derive(Debug)]
pub struct Kept<T = HookDelivery> {
    /// In the order queued.
    pub deliveries: Vec<T>,
    /// Files that are not a delivery, and why (left alone).
    pub unreadable: Vec<(PathBuf, String)>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self { deliveries: Vec::new(), unreadable: Vec::new() }
    }
}

/// What the queue holds, in short: what `GET /health` on `serve` reports,
/// so an operator sees a hook that fails.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Deliveries kept: not posted yet, failed, or refused.
    pub undelivered: usize,
    /// Of those, refused by their hook: kept until retried by hand.
    pub refused: usize,
    /// When the oldest kept delivery was queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_queued_at: Option<DateTime<Utc>>,
    /// Its hook's id and last error, once it was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_hook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_last_error: Option<String>,
}

impl Kept {
    pub fn backlog(&self) -> Backlog {
        let oldest = self.deliveries.first();
        Backlog {
            undelivered: self.deliveries.len(),
            refused: self.deliveries.iter().filter(|d| d.refused).count(),
            oldest_queued_at: oldest.map(|d| d.queued_at),
            oldest_hook: oldest.map(|d| d.hook.clone()),
            oldest_last_error: oldest.and_then(|d| d.last_error.clone()),
        }
    }
}

/// A directory of `T`s, one JSON file each.
#[derive(Debug)]
pub struct DeliveryQueue<T = HookDelivery> {
    dir: Arc<PathBuf>,
    kept: PhantomData<fn() -> T>,
}

impl<T> Clone for DeliveryQueue<T> {
    fn clone(&self) -> Self {
        Self { dir: self.dir.clone(), kept: PhantomData }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("`{0}` is not a delivery id (as `changehub notifications --undelivered` lists them)")]
    BadId(String),
    #[error("the delivery queue {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DeliveryQueue<HookDelivery> {
    /// The queue of the hub whose notifications file is `notifications`.
    pub fn beside(notifications: &Path) -> Self {
        Self::new(notifications.with_file_name(QUEUE_DIR))
    }
}

impl<T: Queued> DeliveryQueue<T> {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Arc::new(dir.into()), kept: PhantomData }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> Result<PathBuf, QueueError> {
        let fine = !id.is_empty()
            && !id.starts_with('.')
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        match fine {
            true => Ok(self.dir.join(format!("{id}.json"))),
            false => Err(QueueError::BadId(id.to_owned())),
        }
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> QueueError {
        let path = path.to_owned();
        move |source| QueueError::Io { path, source }
    }

    /// Writes `d` whole, replacing what was kept under its id, durably.
    pub async fn put(&self, d: &T) -> Result<(), QueueError> {
        let path = self.path(d.id())?;
        tokio::fs::create_dir_all(&*self.dir).await.map_err(self.io(&self.dir))?;
        let temporary = self.dir.join(format!(".{}.tmp", d.id()));
        let bytes = serde_json::to_vec_pretty(d).map_err(|e| (self.io(&path))(e.into()))?;
        let mut f = tokio::fs::File::create(&temporary).await.map_err(self.io(&temporary))?;
        f.write_all(&bytes).await.map_err(self.io(&temporary))?;
        f.sync_all().await.map_err(self.io(&temporary))?;
        tokio::fs::rename(&temporary, &path).await.map_err(self.io(&path))
    }

    /// The delivery kept under `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<T>, QueueError> {
        let path = self.path(id)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| (self.io(&path))(e.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err((self.io(&path))(e)),
        }
    }

    /// Removes the delivery kept under `id`; whether there was one.
    pub async fn remove(&self, id: &str) -> Result<bool, QueueError> {
        let path = self.path(id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err((self.io(&path))(e)),
        }
    }

    /// Every delivery kept, in the order queued (none when the directory is missing).
    pub async fn list(&self) -> Result<Kept<T>, QueueError> {
        let mut kept = Kept::default();
        let mut entries = match tokio::fs::read_dir(&*self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kept),
            Err(e) => return Err((self.io(&self.dir))(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(self.io(&self.dir))? {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let read = tokio::fs::read(&path).await.map_err(|e| e.to_string());
            match read.and_then(|bytes| serde_json::from_slice::<T>(&bytes).map_err(|e| e.to_string())) {
                Ok(d) => kept.deliveries.push(d),
                // Delivered (removed) between the listing and the read.
                Err(_) if !path.exists() => {}
                Err(why) => kept.unreadable.push((path, why)),
            }
        }
        kept.deliveries.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> Notification {
        Notification {
            subject: "s".into(),
            body: serde_json::json!({"a": 1}),
            attributes: [("type".to_owned(), "change_approved".to_owned())].into(),
            message: crate::ports::Message::headline("Approved"),
        }
    }

    #[tokio::test]
    async fn deliveries_are_kept_whole_in_order_and_removed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = DeliveryQueue::beside(&dir.path().join("notifications.jsonl"));
        assert_eq!(queue.dir(), dir.path().join("undelivered"));
        assert!(queue.list().await.expect("list").deliveries.is_empty(), "no directory yet: nothing kept");

        let hook = Hook::parse("slack=https://hooks.slack.example/x").expect("hook");
        let now = Utc::now();
        let first = HookDelivery::new(&hook, notification(), now);
        let mut second = HookDelivery::new(&hook, notification(), now);
        queue.put(&second).await.expect("put");
        queue.put(&first).await.expect("put");
        second.attempts = 3;
        second.refused = true;
        second.last_error = Some("refused with HTTP status 400".into());
        queue.put(&second).await.expect("rewrite");
        std::fs::write(queue.dir().join("stray.json"), "not json").expect("stray");

        let kept = queue.list().await.expect("list");
        assert_eq!(kept.deliveries, vec![first.clone(), second.clone()]);
        assert_eq!(kept.unreadable.len(), 1, "{kept:?}");
        assert_eq!(queue.get(&second.id).await.expect("get"), Some(second.clone()));

        let backlog = kept.backlog();
        assert_eq!((backlog.undelivered, backlog.refused), (2, 1));
        assert_eq!((backlog.oldest_queued_at, backlog.oldest_hook.as_deref()), (Some(now), Some(hook.id())));
        assert_eq!(backlog.oldest_last_error, None, "the oldest was not tried yet");
        assert_eq!(Kept::<HookDelivery>::default().backlog(), Backlog::default());

        assert!(queue.remove(&first.id).await.expect("remove"));
        assert!(!queue.remove(&first.id).await.expect("removed once"));
        assert_eq!(queue.get(&first.id).await.expect("get"), None);
        assert!(matches!(queue.get("../hub.db").await, Err(QueueError::BadId(_))));
    }
}
