//! The notifier port: messages for people (and their chat and paging tools).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

use super::store::BoxError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// A short one-line summary (SNS subjects are at most 100 characters; longer ones are cut).
    pub subject: String,
    /// The message body, a JSON object.
    pub body: serde_json::Value,
    /// Filterable attributes, e.g. `kind`, `tenant`, `service`, `severity`.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier backend failed")]
    Backend(#[source] BoxError),
}

pub trait Notifier: Send + Sync {
    fn notify(&self, n: &Notification) -> impl Future<Output = Result<(), NotifyError>> + Send;
}
