//! The write-back adapter: PagerDuty notes and GitHub comments over their
//! REST APIs, with timeouts and retries.
//!
//! | target | request | headers |
//! |---|---|---|
//! | PagerDuty | `POST {api}/incidents/{id}/notes` `{"note":{"content":...}}` | `Authorization: Token token=…`, `From: <email>`, `Accept: application/vnd.pagerduty+json;version=2` |
//! | GitHub, pull request | `POST {api}/repos/{owner}/{repo}/issues/{number}/comments` `{"body":...}` | `Authorization: Bearer …`, `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` |
//! | GitHub, commit | `POST {api}/repos/{owner}/{repo}/commits/{sha}/comments` `{"body":...}` | as above |
//!
//! Every request carries `User-Agent: changehub/<version>` and is retried
//! as [`super::https`] says. The token is read per post from the credentials (which cache
//! it) and sent as a sensitive header; nothing logged or returned holds it.

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};

use crate::domain::TenantId;
use crate::domain::notice::GithubThread;
use crate::ports::{BoxError, Post, WriteBack, WriteBackCredentials, WriteBackError};

use super::https::{PostError, Poster};
pub use super::https::{Retries, Timeouts};

/// The GitHub REST API version the requests are written for.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// Posts write-backs with the tokens of `C`.
#[derive(Clone)]
pub struct HttpWriteBack<C> {
    poster: Poster,
    credentials: C,
}

impl<C: WriteBackCredentials> HttpWriteBack<C> {
    /// A client with `timeouts`, retrying as `retries` says. Its HTTPS
    /// client is built at the first post; a failure to build it (no usable
    /// trust store) fails that post, unretried, as unreachable.
    pub fn new(credentials: C, timeouts: Timeouts, retries: Retries) -> Result<Self, BoxError> {
        Ok(Self { poster: Poster::new(timeouts, retries), credentials })
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
}

/// A header value that is never printed (reqwest's and http's `Debug` hide it).
fn secret(value: &str) -> Result<HeaderValue, BoxError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| "the token is not a valid header value")?;
    v.set_sensitive(true);
    Ok(v)
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
        let outcome = self.poster.post(&target.to_string(), &url, &headers, &body).await;
        outcome.map_err(|e| match e {
            PostError::Refused { status, .. } => WriteBackError::Refused { target, status },
            PostError::Unavailable { status, attempts, .. } => WriteBackError::Unavailable { target, status, attempts },
            PostError::Unreachable { attempts, source } => {
                WriteBackError::Unreachable { target, attempts, source: source.into() }
            }
        })
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
        assert!(!writeback.poster.is_built(), "built at construction");
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
        assert!(writeback.poster.is_built(), "the clone's first post built the shared client");
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
}
