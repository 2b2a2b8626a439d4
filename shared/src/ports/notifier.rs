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
    /// What a person reads, rendered for the notification's audience: what
    /// chat tools (Slack, Microsoft Teams) and e-mail show.
    #[serde(default)]
    pub message: Message,
}

/// A text for people: a headline, paragraphs, facts and links, all plain
/// text (chat payloads are built from it, escaping as each tool needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// One line; an executive reads this alone.
    pub headline: String,
    /// Further paragraphs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Key facts shown side by side, in order (`Service`: `payments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<Fact>,
    /// Where to read more, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    /// An absolute `http(s)` URL.
    pub url: String,
}

impl Message {
    /// A message of one headline.
    pub fn headline(headline: impl Into<String>) -> Self {
        Self { headline: headline.into(), ..Self::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier backend failed")]
    Backend(#[source] BoxError),
}

pub trait Notifier: Send + Sync {
    fn notify(&self, n: &Notification) -> impl Future<Output = Result<(), NotifyError>> + Send;
}
