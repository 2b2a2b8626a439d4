//! Sending an event's routed notifications: one per recipient
//! ([`crate::domain::routing::recipients`]), each rendered for its reader
//! and sent once under its own key, so that a retry after one recipient
//! failed sends only the ones still missing. The outbox (change mutations)
//! and the teller (change-related incidents) send through it; so may any
//! other event about services ([`for_services`]).

use std::collections::BTreeMap;

use super::ingest::ClaimTimes;
use super::once::{Once, OnceError, once};
use crate::domain::catalog::Catalog;
use crate::domain::ids::ServiceName;
use crate::domain::routing::render::{Occurrence, render};
use crate::domain::routing::{Recipient, Subject, recipients};
use crate::ports::{Clock, Dedupe, Notification, Notifier, NotifyError, StoreError};

/// Attribute names, as SNS filter policies match them (at most 10 per message).
pub const TYPE: &str = "type";
pub const AUDIENCE: &str = "audience";
pub const NOTIFY: &str = "notify";
pub const SERVICE: &str = "service";
pub const SEVERITY: &str = "severity";

/// One notification to send, with what tells its delivery apart (`owners:payments-team`).
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub key: String,
    pub notification: Notification,
}

/// The notifications of `occurrence` for each of `recipients`: `attributes`
/// (what every copy carries: `tenant`, `kind`, ...) plus `type` (the event
/// type), `audience`, `notify` (none for the feed), `service` (the
/// recipient's) and `severity`; the body is `body` plus, for an addressed
/// copy, `notify: {audience, to}`.
pub fn notifications(
    occurrence: &Occurrence,
    recipients: &[Recipient],
    attributes: &BTreeMap<String, String>,
    severity: &str,
    body: &serde_json::Value,
) -> Vec<Routed> {
    recipients
        .iter()
        .map(|r| {
            let message = render(occurrence, r);
            let mut attributes = attributes.clone();
            attributes.insert(TYPE.to_owned(), occurrence.event.clone());
            attributes.insert(AUDIENCE.to_owned(), r.audience.as_str().to_owned());
            attributes.insert(SEVERITY.to_owned(), severity.to_owned());
            if let Some(service) = r.service.as_ref().or(occurrence.services.first()) {
                attributes.insert(SERVICE.to_owned(), service.to_string());
            }
            let mut body = body.clone();
            if let Some(to) = &r.notify {
                attributes.insert(NOTIFY.to_owned(), to.clone());
                body["notify"] = serde_json::json!({"audience": r.audience, "to": to});
            }
            let notification = Notification { subject: message.headline.clone(), body, attributes, message };
            Routed { key: r.key(), notification }
        })
        .collect()
}

/// The notifications of an event about `services` that is not a change
/// mutation (an unauthorized change found, a freeze starting): routed by
/// `catalog` as `event` (`unauthorized_change`, `freeze_starting`), with
/// `attributes` (`tenant`, `kind`, ...) and `severity` on every copy.
pub fn for_services(
    catalog: &Catalog,
    occurrence: &Occurrence,
    services: Vec<ServiceName>,
    attributes: &BTreeMap<String, String>,
    severity: &str,
    body: &serde_json::Value,
) -> Vec<Routed> {
    let subject = Subject::about(occurrence.event.clone(), services);
    notifications(occurrence, &recipients(catalog, &subject), attributes, severity, body)
}

/// Why some routed notifications were not sent (the others were, once).
#[derive(Debug, thiserror::Error)]
pub enum RoutedError {
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// Claiming or marking a delivery failed: it was not sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("notification {0} is being sent by another attempt; retry")]
    InProgress(String),
}

/// How many of [`send_each`]'s notifications went out now, and how many had gone before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub sent: usize,
    pub duplicates: usize,
}

/// Sends each notification once, under `{base}:{key}`. Every one is tried
/// whatever another did; the first failure is returned once all were.
pub async fn send_each<D: Dedupe, C: Clock, N: Notifier>(
    dedupe: &D,
    clock: &C,
    claims: ClaimTimes,
    notifier: &N,
    base: &str,
    routed: &[Routed],
) -> Result<Sent, RoutedError> {
    let mut sent = Sent::default();
    let mut first = None;
    for r in routed {
        let key = format!("{base}:{}", r.key);
        // Boxed: an SDK's request future is large, and this one nests in the event's own `once`.
        let work = Box::pin(notifier.notify(&r.notification));
        let failure = match once(dedupe, clock, claims, std::slice::from_ref(&key), work).await {
            Ok(Once::Done(())) => {
                sent.sent += 1;
                continue;
            }
            Ok(Once::Duplicate) => {
                sent.duplicates += 1;
                continue;
            }
            Ok(Once::InProgress) => RoutedError::InProgress(key.clone()),
            Err(OnceError::Store(e)) => e.into(),
            Err(OnceError::Work(e)) => e.into(),
        };
        tracing::warn!(%key, error = %failure, "a routed notification was not sent; to retry");
        first.get_or_insert(failure);
    }
    first.map_or(Ok(sent), Err)
}
