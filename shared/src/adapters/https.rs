//! JSON sent over HTTPS with timeouts and retries: the one client and
//! retry rule behind the write-back (PagerDuty, GitHub), the chat webhooks
//! (Slack, Microsoft Teams) and the merge gate's GitHub and GitLab calls
//! ([`super::scm`]).
//!
//! Every request carries `User-Agent: changehub/<version>`. A 5xx, a 429
//! or no answer (connection error, timeout) is retried with exponential
//! backoff and jitter, after the `Retry-After` the answer asks for when it
//! asks for one (up to [`Retries::max_retry_after`]); any other 4xx is not
//! retried.

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a request may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open the connection.
    pub connect: Duration,
    /// For the whole request, answer included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(3), request: Duration::from_secs(10) }
    }
}

/// How often and how patiently a post is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; each next one doubles, up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for; an answer asking for longer ends the retries.
    pub max_retry_after: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Posts JSON, retrying as its [`Retries`] say. Clones share one client.
#[derive(Clone)]
pub struct Poster {
    /// Built at the first post and shared by every clone: building it reads
    /// and parses the system's trust store (every certificate of the bundle,
    /// milliseconds), which a cold Lambda would otherwise pay at init for a
    /// post most invocations never make.
    client: Arc<OnceLock<reqwest::Client>>,
    timeouts: Timeouts,
    retries: Retries,
}

/// Why a post failed, after the retries it was worth.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// A 4xx other than 429: the request, the token or the URL is wrong; retrying does not help.
    /// `message` is the answer's `message` (GitHub's and GitLab's error
    /// field), at most [`MAX_MESSAGE_CHARS`]; never part of the display.
    #[error("refused with HTTP status {status}")]
    Refused { status: u16, message: Option<String> },
    /// 5xx or 429 on every attempt; `retry_after` is what the last answer asked for.
    #[error("answered HTTP status {status} to every attempt ({attempts})")]
    Unavailable { status: u16, attempts: u32, retry_after: Option<Duration> },
    /// No answer (connection refused, timeout) on the last attempt.
    #[error("could not be reached ({attempts} attempts)")]
    Unreachable {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
}

impl PostError {
    /// Whether a later post may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PostError::Refused { .. })
    }

    /// The attempts made (1 for a refusal, which is not retried).
    pub fn attempts(&self) -> u32 {
        match self {
            PostError::Refused { .. } => 1,
            PostError::Unavailable { attempts, .. } | PostError::Unreachable { attempts, .. } => *attempts,
        }
    }
}

impl Poster {
    /// A poster with `timeouts`, retrying as `retries` say (at least one attempt).
    /// Its HTTPS client is built at the first post; a failure to build it (no
    /// usable trust store) fails that post, unretried, as unreachable.
    pub fn new(timeouts: Timeouts, retries: Retries) -> Self {
        Self { client: Arc::default(), timeouts, retries: Retries { attempts: retries.attempts.max(1), ..retries } }
    }

    /// Whether the client was built (by a first post of this poster or a clone).
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }

    /// The HTTPS client, built at the first call.
    fn client(&self) -> Result<&reqwest::Client, reqwest::Error> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(self.timeouts.connect)
            .timeout(self.timeouts.request)
            .user_agent(concat!("changehub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // Two first posts at once may both build one; the first stored is kept.
        Ok(self.client.get_or_init(|| built))
    }

    /// One attempt; the answer's body on a success.
    async fn attempt(&self, request: &Request<'_>) -> Result<Vec<u8>, Attempt> {
        let mut builder = self
            .client()
            .map_err(Attempt::Transport)?
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone());
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let answer = builder.send().await.map_err(Attempt::Transport)?;
        let status = answer.status();
        if status.is_success() {
            return Ok(answer.bytes().await.map_err(Attempt::Transport)?.to_vec());
        }
        let retry_after = answer.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
        let message = match status.is_client_error() {
            true => answer.bytes().await.ok().and_then(|body| refusal_message(&body)),
            false => None,
        };
        Err(Attempt::Status { status, retry_after, message })
    }

    /// Posts `body` to `url` with `headers`, retrying what may succeed later.
    /// `target` names the receiver in the logs (never the URL, which may hold a secret).
    pub async fn post(
        &self,
        target: &str,
        url: &Url,
        headers: &HeaderMap,
        body: &serde_json::Value,
    ) -> Result<(), PostError> {
        let request = Request { method: Method::POST, url, headers, body: Some(body) };
        self.send(target, &request).await.map(drop)
    }

    /// Sends `request`, retrying what may succeed later, and answers the
    /// body of the successful answer. `target` names the receiver in the logs.
    pub async fn send(&self, target: &str, request: &Request<'_>) -> Result<Vec<u8>, PostError> {
        let Retries { attempts, min_delay, max_delay, max_retry_after } = self.retries;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(min_delay)
            .with_max_delay(max_delay)
            .with_max_times(attempts.saturating_sub(1) as usize)
            .with_jitter();
        let mut retried = 0;
        let outcome = (|| self.attempt(request))
            .retry(backoff)
            .when(Attempt::is_retryable)
            .adjust(|e, next| match e {
                // Wait as asked, within the attempts left; past the longest wait, stop.
                Attempt::Status { retry_after: Some(asked), .. } => {
                    next.and_then(|_| (*asked <= max_retry_after).then_some(*asked))
                }
                _ => next,
            })
            .notify(|e, wait| {
                retried += 1;
                let status = match e {
                    Attempt::Status { status, .. } => Some(status.as_u16()),
                    Attempt::Transport(_) => None,
                };
                tracing::warn!(%target, status, wait_ms = wait.as_millis() as u64, "request failed; retrying");
            })
            .await;
        let attempts = retried + 1;
        match outcome {
            Ok(body) => Ok(body),
            Err(Attempt::Status { status, message, .. })
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(PostError::Refused { status: status.as_u16(), message })
            }
            Err(Attempt::Status { status, retry_after, .. }) => {
                Err(PostError::Unavailable { status: status.as_u16(), attempts, retry_after })
            }
            Err(Attempt::Transport(e)) => Err(PostError::Unreachable { attempts, source: e.without_url() }),
        }
    }
}

/// One request [`Poster::send`] makes, with its retries.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub headers: &'a HeaderMap,
    /// A JSON body, if any.
    pub body: Option<&'a serde_json::Value>,
}

/// `Retry-After` as seconds, or as an HTTP date from now.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// The longest refusal message kept.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// A refusal's `message` (a JSON string field, as GitHub and GitLab answer
/// errors), cut to [`MAX_MESSAGE_CHARS`].
fn refusal_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        message: String,
    }
    let refusal: Refusal = serde_json::from_slice(body).ok()?;
    Some(refusal.message.chars().take(MAX_MESSAGE_CHARS).collect())
}

/// Why one attempt failed.
#[derive(Debug)]
enum Attempt {
    Status { status: StatusCode, retry_after: Option<Duration>, message: Option<String> },
    Transport(reqwest::Error),
}

impl Attempt {
    fn is_retryable(&self) -> bool {
        match self {
            Attempt::Status { status, .. } => status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS,
            Attempt::Transport(e) => !e.is_builder(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn a_refusal_keeps_its_message_cut_short() {
        let gitlab = br#"{"message":"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")"}"#;
        let message = refusal_message(gitlab).expect("a message");
        assert!(message.starts_with("Cannot transition status via :enqueue from :pending"), "{message}");
        let long = serde_json::json!({"message": "x".repeat(1000)}).to_string();
        assert_eq!(refusal_message(long.as_bytes()).map(|m| m.chars().count()), Some(MAX_MESSAGE_CHARS));
        assert_eq!(refusal_message(br#"{"message":{"base":["taken"]}}"#), None);
        assert_eq!(refusal_message(b"<html>"), None);
    }
}
