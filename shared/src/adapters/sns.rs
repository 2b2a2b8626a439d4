//! The SNS notifier: the body as the message, filterable message attributes.

pub use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::ports::{Notification, Notifier, NotifyError};

/// SNS subjects must be under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// The SNS client, built at its first use ([`super::aws::Lazy`]): an
/// escalation tick or a drift event with nothing to tell never builds it.
pub type LazyClient = super::aws::Lazy<Client>;

impl LazyClient {
    /// A client built from `aws` at its first use.
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        Self::from_config(aws, Client::new)
    }
}

#[derive(Clone)]
pub struct SnsNotifier {
    client: LazyClient,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: impl Into<LazyClient>, topic_arn: impl Into<String>) -> Self {
        Self { client: client.into(), topic_arn: topic_arn.into() }
    }
}

/// A subject SNS accepts: printable ASCII only (others become '?'), no line
/// breaks, starting with a visible character, under 100 characters. A long
/// one is cut before a short closing `(…)`, whom the notification is to, so
/// that stays.
pub fn sns_subject(subject: &str) -> String {
    let clean: String = subject
        .trim_start()
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_whitespace() => ' ',
            _ => '?',
        })
        .collect();
    let clean = if clean.is_empty() { "changehub notification".to_owned() } else { clean };
    if clean.len() <= MAX_SUBJECT_CHARS {
        return clean;
    }
    // ASCII by now, so any byte offset is a character boundary.
    let kept = clean
        .rfind(" (")
        .filter(|&at| clean.ends_with(')') && clean.len() - at <= MAX_SUBJECT_CHARS / 2)
        .map_or("", |at| &clean[at..]);
    format!("{}...{kept}", &clean[..MAX_SUBJECT_CHARS - 3 - kept.len()])
}

/// The SNS message: the body, with the text for people under `message`
/// (e-mail and chat subscribers show it; filter policies match attributes).
pub fn sns_message(n: &Notification) -> serde_json::Value {
    let mut body = n.body.clone();
    if let (Some(object), Ok(message)) = (body.as_object_mut(), serde_json::to_value(&n.message)) {
        object.insert("message".to_owned(), message);
    }
    body
}

impl Notifier for SnsNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let message = serde_json::to_string(&sns_message(n)).map_err(|e| NotifyError::Backend(e.into()))?;
        let mut req =
            self.client.publish().topic_arn(&self.topic_arn).subject(sns_subject(&n.subject)).message(message);
        for (name, value) in n.attributes.iter().filter(|(_, v)| !v.is_empty()) {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| NotifyError::Backend(e.into()))?;
            req = req.message_attributes(name, attr);
        }
        req.send().await.map_err(|e| NotifyError::Backend(e.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_made_acceptable_to_sns() {
        assert_eq!(sns_subject("  [approved] Upgrade\nDB"), "[approved] Upgrade DB");
        assert_eq!(sns_subject("Déploiement\tprod"), "D?ploiement prod");
        assert_eq!(sns_subject(""), "changehub notification");
        let long = sns_subject(&"x".repeat(300));
        assert_eq!(long.len(), MAX_SUBJECT_CHARS);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn a_long_subject_keeps_whom_it_is_to() {
        let to = sns_subject(&format!("Approval overdue: {} (to payments-leads)", "y".repeat(120)));
        assert_eq!(to.len(), MAX_SUBJECT_CHARS);
        assert!(to.starts_with("Approval overdue: yyy") && to.ends_with("y... (to payments-leads)"), "{to}");
        // A parenthesis that is not at the end, or too long to keep, is cut like the rest.
        let inner = sns_subject(&format!("Change (big) {}", "z".repeat(120)));
        assert!(inner.ends_with("z..."), "{inner}");
        let wide = sns_subject(&format!("{} ({})", "a".repeat(40), "b".repeat(80)));
        assert!(wide.ends_with("b...") && wide.len() == MAX_SUBJECT_CHARS, "{wide}");
    }
}
