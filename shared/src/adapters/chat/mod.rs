//! Chat webhooks for `changehub serve`: each notification is posted to the
//! Slack incoming webhooks and Microsoft Teams workflows configured, in
//! the payload each expects ([`slack`], [`teams`]).
//!
//! Delivery never blocks the one notifying and never drops silently: the
//! [`HookNotifier`] appends the notification to the notifications file,
//! then keeps one [`queue::HookDelivery`] per hook that wants it in the
//! [`queue::DeliveryQueue`] (a directory beside that file); the
//! [`deliver::Deliverer`] posts them in the background, removes each
//! delivered one, and keeps each failed one with its attempts and last
//! error, tried again at growing intervals (across restarts) or, when the
//! hook refused it (a 4xx other than 429), until someone retries or
//! deletes it (`changehub notifications`). Posting is at least once: a
//! post whose answer is lost is posted again.

pub mod deliver;
pub mod queue;
pub mod slack;
pub mod teams;

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::ports::{Notification, Notifier, NotifyError};
use queue::{DeliveryQueue, HookDelivery};

/// The chat tool a hook posts to: what payload it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Slack,
    Teams,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Slack => "slack",
            ChatKind::Teams => "teams",
        }
    }

    /// The JSON body this tool's webhook takes for `n`.
    pub fn payload(self, n: &Notification) -> serde_json::Value {
        match self {
            ChatKind::Slack => slack::payload(n),
            ChatKind::Teams => teams::payload(n),
        }
    }
}

/// One webhook: where to post, in which payload, and which notifications.
///
/// Written `KIND=URL[;ATTRIBUTE=VALUE[,VALUE]...]...`, e.g.
/// `slack=https://hooks.slack.com/services/T0/B0/x;audience=cab,owners;tenant=acme`:
/// a notification goes to the hook when, for each filter, its attribute
/// holds one of the values (no filter: every notification).
#[derive(Clone, PartialEq, Eq)]
pub struct Hook {
    pub kind: ChatKind,
    url: reqwest::Url,
    filters: BTreeMap<String, BTreeSet<String>>,
    id: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookSpecError {
    #[error("expected KIND=URL with KIND slack or teams (e.g. slack=https://hooks.slack.com/services/...)")]
    Kind,
    #[error("the URL is not an absolute http(s) URL")]
    Url,
    #[error("filter `{0}`: expected ATTRIBUTE=VALUE[,VALUE...], e.g. audience=cab,owners")]
    Filter(String),
    #[error("filter `{0}` is given twice; list its values once, separated by commas")]
    Repeated(String),
}

impl Hook {
    pub fn parse(spec: &str) -> Result<Self, HookSpecError> {
        let mut parts = spec.trim().split(';');
        let (kind, url) = parts.next().and_then(|p| p.split_once('=')).ok_or(HookSpecError::Kind)?;
        let kind = match kind.trim() {
            "slack" => ChatKind::Slack,
            "teams" => ChatKind::Teams,
            _ => return Err(HookSpecError::Kind),
        };
        let url = reqwest::Url::parse(url.trim()).map_err(|_| HookSpecError::Url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(HookSpecError::Url);
        }
        let mut filters = BTreeMap::new();
        for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || HookSpecError::Filter(part.to_owned());
            let (name, values) = part.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            let values: BTreeSet<String> =
                values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
            let named = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !named || values.is_empty() {
                return Err(bad());
            }
            if filters.insert(name.to_owned(), values).is_some() {
                return Err(HookSpecError::Repeated(name.to_owned()));
            }
        }
        // The URL is a secret: the hook is named by its kind and a digest of it.
        let digest = hex::encode(Sha256::digest(url.as_str().as_bytes()));
        let id = format!("{}-{}", kind.as_str(), &digest[..8]);
        Ok(Self { kind, url, filters, id })
    }

    /// `slack-1a2b3c4d`: the kind and a digest of the URL, never the URL
    /// itself (a webhook URL is its own credential).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Whether `n` goes to this hook.
    pub fn wants(&self, n: &Notification) -> bool {
        self.filters.iter().all(|(name, values)| n.attributes.get(name).is_some_and(|v| values.contains(v)))
    }
}

/// The hook's id and filters (never its URL).
impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        for (name, values) in &self.filters {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            write!(f, ";{name}={}", values.join(","))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hook({self})")
    }
}

/// Notifies through `inner` (the notifications file), then queues a
/// delivery for each hook that wants the notification and wakes the
/// deliverer: the caller never waits on a webhook.
#[derive(Clone)]
pub struct HookNotifier<N> {
    inner: N,
    hooks: Arc<[Hook]>,
    queue: DeliveryQueue,
    wake: Arc<Notify>,
}

impl<N> HookNotifier<N> {
    /// `wake` is the deliverer's ([`deliver::Deliverer::waker`]).
    pub fn new(inner: N, hooks: Arc<[Hook]>, queue: DeliveryQueue, wake: Arc<Notify>) -> Self {
        Self { inner, hooks, queue, wake }
    }
}

impl<N: Notifier> Notifier for HookNotifier<N> {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.inner.notify(n).await?;
        let now = chrono::Utc::now();
        let mut queued = false;
        for hook in self.hooks.iter().filter(|h| h.wants(n)) {
            let delivery = HookDelivery::new(hook, n.clone(), now);
            self.queue.put(&delivery).await.map_err(|e| NotifyError::Backend(e.into()))?;
            queued = true;
        }
        if queued {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// What heads the message: its headline, else the subject.
fn headline(n: &Notification) -> &str {
    [n.message.headline.trim(), n.subject.trim()].into_iter().find(|h| !h.is_empty()).unwrap_or("changehub")
}

/// `text` cut to at most `max` characters, the last one `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(attributes: &[(&str, &str)]) -> Notification {
        Notification {
            subject: "s".into(),
            body: serde_json::json!({}),
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            message: Default::default(),
        }
    }

    #[test]
    fn a_hook_is_a_kind_a_url_and_optional_attribute_filters() {
        let hook = Hook::parse("slack=https://hooks.slack.com/services/T0/B0/x;audience=cab, owners ;tenant=acme")
            .expect("hook");
        assert_eq!(hook.kind, ChatKind::Slack);
        assert_eq!(hook.url().as_str(), "https://hooks.slack.com/services/T0/B0/x");
        assert!(hook.id().starts_with("slack-") && hook.id().len() == 14, "{}", hook.id());
        assert_eq!(hook.to_string(), format!("{};audience=cab,owners;tenant=acme", hook.id()));
        assert!(!format!("{hook:?}").contains("hooks.slack.com"), "the URL is never printed");
        assert!(hook.wants(&notification(&[("audience", "cab"), ("tenant", "acme"), ("type", "sla_breached")])));
        assert!(hook.wants(&notification(&[("audience", "owners"), ("tenant", "acme")])));
        assert!(!hook.wants(&notification(&[("audience", "requester"), ("tenant", "acme")])));
        assert!(!hook.wants(&notification(&[("audience", "cab")])), "a filtered attribute must be present");

        let teams = Hook::parse(" teams=https://x.example/workflows/1?sig=a&sp=%2Ftriggers ").expect("teams");
        assert_eq!(teams.kind, ChatKind::Teams);
        assert!(teams.wants(&notification(&[])), "no filter: every notification");
        assert_ne!(teams.id()[6..], hook.id()[6..], "ids differ by URL");
    }

    #[test]
    fn a_bad_hook_says_what_is_wrong() {
        assert_eq!(Hook::parse("https://hooks.slack.com/x"), Err(HookSpecError::Kind));
        assert_eq!(Hook::parse("discord=https://x.example"), Err(HookSpecError::Kind));
        assert_eq!(Hook::parse("slack=hooks.slack.com/x"), Err(HookSpecError::Url));
        assert_eq!(Hook::parse("slack=ftp://x.example/"), Err(HookSpecError::Url));
        assert_eq!(Hook::parse("slack=https://x.example;audience"), Err(HookSpecError::Filter("audience".into())));
        assert_eq!(Hook::parse("slack=https://x.example;audience="), Err(HookSpecError::Filter("audience=".into())));
        assert_eq!(
            Hook::parse("slack=https://x.example;tenant=a;tenant=b"),
            Err(HookSpecError::Repeated("tenant".into()))
        );
    }

    #[test]
    fn clip_cuts_characters_not_bytes_and_says_so() {
        assert_eq!(clip("héllo", 5), "héllo");
        assert_eq!(clip("héllo wörld", 5), "héll…");
    }
}
