//! The local notifier: one JSON object per line in a file, and a log line.
//! The same kind of file keeps the local consumers' dead letters.

use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::ports::{Notification, Notifier, NotifyError};

/// A file of JSON objects, one per line, appended to whole (one writer at a
/// time per value of this type and its clones).
#[derive(Clone)]
pub struct JsonLines {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl JsonLines {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: Arc::new(path.into()), lock: Arc::new(Mutex::new(())) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `value` as one line, creating the file if need be.
    pub async fn append(&self, value: &serde_json::Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(&*self.path).await?;
        f.write_all(&line).await?;
        f.flush().await
    }
}

#[derive(Clone)]
pub struct FileNotifier {
    file: JsonLines,
}

impl FileNotifier {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { file: JsonLines::new(path) }
    }
}

impl Notifier for FileNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let line = serde_json::json!({
            "at": Utc::now(),
            "subject": n.subject,
            "attributes": n.attributes,
            "body": n.body,
            "message": n.message,
        });
        self.file.append(&line).await.map_err(|e| NotifyError::Backend(e.into()))?;
        tracing::info!(subject = %n.subject, attributes = ?n.attributes, file = %self.file.path().display(), "notification");
        Ok(())
    }
}
