//! The local notifier: one JSON object per line in a file, and a log line.

use chrono::Utc;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::ports::{Notification, Notifier, NotifyError};

#[derive(Clone)]
pub struct FileNotifier {
    path: Arc<PathBuf>,
    lock: Arc<Mutex<()>>,
}

impl FileNotifier {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: Arc::new(path.into()), lock: Arc::new(Mutex::new(())) }
    }
}

impl Notifier for FileNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let mut line = serde_json::to_vec(&serde_json::json!({
            "at": Utc::now(),
            "subject": n.subject,
            "attributes": n.attributes,
            "body": n.body,
        }))
        .map_err(|e| NotifyError::Backend(e.into()))?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&*self.path)
            .await
            .map_err(|e| NotifyError::Backend(e.into()))?;
        f.write_all(&line).await.map_err(|e| NotifyError::Backend(e.into()))?;
        f.flush().await.map_err(|e| NotifyError::Backend(e.into()))?;
        tracing::info!(subject = %n.subject, attributes = ?n.attributes, file = %self.path.display(), "notification");
        Ok(())
    }
}
