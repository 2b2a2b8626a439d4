//! The write-back adapter: PagerDuty notes and GitHub comments over their
//! REST APIs, with timeouts and retries.
//!
//! | target | request | headers |
//! |---|---|---|
//! | PagerDuty | `POST {api}/incidents/{id}/notes` `{"note":{"content":...}}` | `Authorization: Token token=…`, `From: <email>`, `Accept: application/vnd.pagerduty+json;version=2` |
//! | GitHub, pull request | `POST {api}/repos/{owner}/{repo}/issues/{number}/comments` `{"body":...}` | `Authorization: Bearer …`, `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` |
//! | GitHub, commit | `POST {api}/repos/{owner}/{repo}/commits/{sha}/comments` `{"body":...}` | as above |
//!
//! Every request carries `User-Agent: changehub/<version>`. A 5xx, a 429
//! or no answer (connection error, timeout) is retried with exponential
//! backoff and jitter, after the `Retry-After` the answer asks for when it
//! asks for one (up to [`Retries::max_retry_after`]); any other 4xx is not
//! retried. The token is read per post from the credentials (which cache
//! it) and sent as a sensitive header; nothing logged or returned holds it.

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::domain::TenantId;
use crate::domain::notice::GithubThread;
use crate::ports::{BoxError, Post, WriteBack, WriteBackCredentials, WriteBackError};

/// The GitHub REST API version the requests are written for.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

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

/// Posts write-backs with the tokens of `C`.
#[derive(Clone)]
pub struct HttpWriteBack<C> {
    /// Built at the first post and shared by every clone: building it reads
    /// and parses the system's trust store (every certificate of the bundle,
    /// milliseconds), which a cold Lambda would otherwise pay at init for a
    /// write-back most invocations never make.
    client: Arc<OnceLock<reqwest::Client>>,
    timeouts: Timeouts,
    credentials: C,
    retries: Retries,
}

impl<C: WriteBackCredentials> HttpWriteBack<C> {
    /// A client with `timeouts`, retrying as `retries` says. Its HTTPS
    /// client is built at the first post; a failure to build it (no usable
    /// trust store) fails that post, unretried, as unreachable.
    pub fn new(credentials: C, timeouts: Timeouts, retries: Retries) -> Result<Self, BoxError> {
        Ok(Self {
            client: Arc::default(),
            timeouts,
            credentials,
            retries: Retries { attempts: retries.attempts.max(1), ..retries },
        })
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

    /// The request's URL, headers (the token's included) and JSON body.
    fn request(&self, post: &Post, token: &str) -> Result<(Url, HeaderMap, serde_json::Value), BoxError> {
        let mut headers = HeaderMap::new();
        let number;
        let (base, segments, body): (_, Vec<&str>, _) = match post {
            Post::PagerdutyNote { api_url, incident, from, content } => {
                headers.insert(AUTHORIZATION, secret(&format!("Token token={token}"))?);
                headers.insert("from", HeaderValue::from_str(from)?);
                headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.pagerduty+json;version=2"));
                (api_url, vec!["incidents", incident, "notes"], serde_json::json!({"note": {"content": content}}))
            }
            Post::GithubComment { api_url, repository, thread, body } => {
                headers.insert(AUTHORIZATION, secret(&format!("Bearer {token}"))?);
                headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
                headers.insert("x-github-api-version", HeaderValue::from_static(GITHUB_API_VERSION));
                let (owner, name) = repository.split_once('/').ok_or("the repository is not owner/name")?;
                let thread = match thread {
                    GithubThread::PullRequest(n) => {
                        number = n.to_string();
                        ["issues", number.as_str()]
                    }
                    GithubThread::Commit(sha) => ["commits", sha.as_str()],
                };
                let segments = [["repos", owner, name].as_slice(), &thread, &["comments"]].concat();
                (api_url, segments, serde_json::json!({"body": body}))
            }
        };
        let mut url = Url::parse(base)?;
        url.path_segments_mut().map_err(|()| "the API URL cannot take a path")?.pop_if_empty().extend(segments);
        Ok((url, headers, body))
    }

    /// One attempt.
    async fn attempt(&self, url: &Url, headers: &HeaderMap, body: &serde_json::Value) -> Result<(), Attempt> {
        let answer = self
            .client()
            .map_err(Attempt::Transport)?
            .post(url.clone())
            .headers(headers.clone())
            .json(body)
            .send()
            .await
            .map_err(Attempt::Transport)?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = answer.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
        Err(Attempt::Status { status, retry_after })
    }
}

/// A header value that is never printed (reqwest's and http's `Debug` hide it).
fn secret(value: &str) -> Result<HeaderValue, BoxError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| "the token is not a valid header value")?;
    v.set_sensitive(true);
    Ok(v)
}

/// `Retry-After` as seconds, or as an HTTP date from now.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// Why one attempt failed.
#[derive(Debug)]
enum Attempt {
    Status { status: StatusCode, retry_after: Option<Duration> },
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

impl<C: WriteBackCredentials> WriteBack for HttpWriteBack<C> {
    async fn post(&self, tenant: &TenantId, post: &Post) -> Result<(), WriteBackError> {
        let target = post.target();
        let token = self
            .credentials
            .token(tenant, target)
            .await
            .map_err(|source| WriteBackError::Credentials { target, source })?
            .ok_or_else(|| WriteBackError::NoToken { target, tenant: tenant.clone() })?;
        let (url, headers, body) =
            self.request(post, &token).map_err(|source| WriteBackError::Invalid { target, source })?;
        let Retries { attempts, min_delay, max_delay, max_retry_after } = self.retries;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(min_delay)
            .with_max_delay(max_delay)
            .with_max_times(attempts.saturating_sub(1) as usize)
            .with_jitter();
        let mut retried = 0;
        let outcome = (|| self.attempt(&url, &headers, &body))
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
                tracing::warn!(%target, status, wait_ms = wait.as_millis() as u64, "write-back failed; retrying");
            })
            .await;
        let attempts = retried + 1;
        match outcome {
            Ok(()) => Ok(()),
            Err(Attempt::Status { status, .. })
                if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(WriteBackError::Refused { target, status: status.as_u16() })
            }
            Err(Attempt::Status { status, .. }) => {
                Err(WriteBackError::Unavailable { target, status: status.as_u16(), attempts })
            }
            Err(Attempt::Transport(e)) => {
                Err(WriteBackError::Unreachable { target, attempts, source: e.without_url().into() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::writeback::Target;
    use crate::ports::SecretsError;

    #[derive(Clone)]
    struct Token;

    impl WriteBackCredentials for Token {
        async fn token(&self, _: &TenantId, _: Target) -> Result<Option<String>, SecretsError> {
            Ok(Some("t0ken".into()))
        }
    }

    fn client() -> HttpWriteBack<Token> {
        HttpWriteBack::new(Token, Timeouts::default(), Retries::default()).expect("client")
    }

    fn url(post: Post) -> String {
        client().request(&post, "t0ken").expect("request").0.to_string()
    }

    #[test]
    fn paths_are_built_under_the_api_url_with_each_segment_encoded() {
        let note = |api: &str, incident: &str| Post::PagerdutyNote {
            api_url: api.into(),
            incident: incident.into(),
            from: "bot@example.com".into(),
            content: "x".into(),
        };
        assert_eq!(
            url(note("https://api.pagerduty.com", "PT4KHLK")),
            "https://api.pagerduty.com/incidents/PT4KHLK/notes"
        );
        assert_eq!(url(note("http://127.0.0.1:9/pd", "a/b?c")), "http://127.0.0.1:9/pd/incidents/a%2Fb%3Fc/notes");
        let comment = |thread| Post::GithubComment {
            api_url: "https://ghe.example.com/api/v3".into(),
            repository: "acme/pay".into(),
            thread,
            body: "x".into(),
        };
        assert_eq!(
            url(comment(GithubThread::PullRequest(42))),
            "https://ghe.example.com/api/v3/repos/acme/pay/issues/42/comments"
        );
        assert_eq!(
            url(comment(GithubThread::Commit("abc123".into()))),
            "https://ghe.example.com/api/v3/repos/acme/pay/commits/abc123/comments"
        );
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_made_is_refused_without_a_retry() {
        let post = Post::PagerdutyNote {
            api_url: "mailto:ops@example.com".into(),
            incident: "P1".into(),
            from: "bot@example.com".into(),
            content: "x".into(),
        };
        let e = client().post(&TenantId::parse("acme").expect("tenant"), &post).await.expect_err("invalid");
        assert!(matches!(e, WriteBackError::Invalid { target: Target::Pagerduty, .. }), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn the_https_client_is_built_at_the_first_post_and_shared_by_clones() {
        let writeback = HttpWriteBack::new(Token, Timeouts::default(), Retries { attempts: 1, ..Retries::default() })
            .expect("write-back");
        assert!(writeback.client.get().is_none(), "built at construction");
        // A port nothing listens on: the post is attempted and fails to connect.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let post = Post::PagerdutyNote {
            api_url: format!("http://{closed}"),
            incident: "P1".into(),
            from: "bot@example.com".into(),
            content: "x".into(),
        };
        let clone = writeback.clone();
        let e = clone.post(&TenantId::parse("acme").expect("tenant"), &post).await.expect_err("nothing listens");
        assert!(matches!(e, WriteBackError::Unreachable { attempts: 1, .. }), "{e:?}");
        assert!(writeback.client.get().is_some(), "the clone's first post built the shared client");
    }

    #[test]
    fn the_token_header_is_sensitive_and_never_printed() {
        let post = Post::GithubComment {
            api_url: "https://api.github.com".into(),
            repository: "acme/pay".into(),
            thread: GithubThread::PullRequest(1),
            body: "x".into(),
        };
        let (_, headers, _) = client().request(&post, "t0ken").expect("request");
        let auth = headers.get(AUTHORIZATION).expect("authorization");
        assert!(auth.is_sensitive());
        assert!(!format!("{headers:?}").contains("t0ken"));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }
}
