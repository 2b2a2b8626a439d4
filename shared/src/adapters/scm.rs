//! The merge gate's GitHub and GitLab client ([`Forges`]): commit statuses
//! and a request's changed files over their REST APIs, through the one
//! retrying HTTPS client ([`super::https`]).
//!
//! | forge | request | authorization |
//! |---|---|---|
//! | GitHub | `POST {api}/repos/{owner}/{repo}/statuses/{sha}` `{"state","description","target_url","context":"changehub/change"}` | `Bearer <installation token or token>` |
//! | GitHub | `GET {api}/repos/{owner}/{repo}/pulls/{n}/files?per_page=100` | as above |
//! | GitHub App | `POST {api}/app/installations/{id}/access_tokens` | `Bearer <JWT>` (RS256, signed with the App's key, 9 minutes) |
//! | GitHub App | `GET {api}/repos/{owner}/{repo}/installation` (a webhook without `installation`) | `Bearer <JWT>` |
//! | GitLab | `POST {url}/api/v4/projects/{group%2Fproject}/statuses/{sha}` `{"state","description","target_url","name":"changehub/change"}` | `PRIVATE-TOKEN: <token>` |
//! | GitLab | `POST {url}/api/v4/projects/{group%2Fproject}/merge_requests/{iid}/status_check_responses` `{"sha","external_status_check_id","status":"passed"\|"pending"\|"failed"}` (a service with `merge_gate.gitlab.status_check_id`; GitLab Ultimate) | as above |
//! | GitLab | `GET {url}/api/v4/projects/{group%2Fproject}/merge_requests/{iid}/diffs?per_page=100` | as above |
//!
//! GitLab refuses a commit status that is already in the state asked
//! (`400 {"message":"Cannot transition status via :enqueue from :pending
//! ..."}`, for `pending` twice on one sha): that status is set, so the
//! answer counts as a success, not retried.
//!
//! An installation token is kept, per App and installation, until
//! [`REFRESH_BEFORE`] its expiry; concurrent calls that find it expired
//! wait for one exchange. A commit status (not a check run, which only an
//! App may create) is all branch protection needs: a required status check
//! named `changehub/change`.
//!
//! Tokens, keys and JWTs are sent as sensitive headers; nothing logged or
//! returned holds one.

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::https::{PostError, Poster, Request};
pub use super::https::{Retries, Timeouts};
use crate::config::{ConfigError, optional};
use crate::domain::TenantId;
use crate::domain::deployment::rollback::Dispatch;
use crate::domain::gate::merge::{CommitState, STATUS_CONTEXT};
use crate::domain::gate::pulls::{Forge, PullRequestRef};
use crate::ports::{BoxError, CommitStatus, ForgeCredentials, Forges, GithubCredential, ScmError, SecretsError};

/// The GitHub REST API version the requests are written for.
pub const GITHUB_API_VERSION: &str = "2022-11-28";
/// GitLab.com; a self-managed GitLab is its own root URL.
pub const GITLAB_URL: &str = "https://gitlab.com";
/// How long before its expiry an installation token is exchanged again.
pub const REFRESH_BEFORE: chrono::Duration = chrono::Duration::minutes(5);
/// How long an App JWT is valid (GitHub allows at most 10 minutes).
const JWT_LIFETIME: chrono::Duration = chrono::Duration::minutes(9);
/// Files read per request; a request changing more is not known to be exempt.
pub const FILES_PER_PAGE: usize = 100;

/// The API base URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub github_api: Url,
    /// `https://gitlab.com`, or a self-managed GitLab's root URL.
    pub gitlab: Url,
}

impl Endpoints {
    /// `CHANGEHUB_GITHUB_API_URL` and `CHANGEHUB_GITLAB_URL`, defaulting to the public services.
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = |name: &'static str, default: &str| {
            let value = optional(name).unwrap_or_else(|| default.to_owned());
            base_url(&value).map_err(|message| ConfigError::Invalid { name, message })
        };
        Ok(Self {
            github_api: url("CHANGEHUB_GITHUB_API_URL", crate::domain::writeback::GITHUB_API)?,
            gitlab: url("CHANGEHUB_GITLAB_URL", GITLAB_URL)?,
        })
    }
}

/// An http(s) URL that takes a path, without a query or fragment.
pub fn base_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim_end_matches('/')).map_err(|e| format!("not a URL ({e})"))?;
    let web = matches!(url.scheme(), "https" | "http") && !url.cannot_be_a_base();
    if !web || url.query().is_some() || url.fragment().is_some() {
        return Err("an http(s) URL without a query or fragment, such as https://api.github.com".into());
    }
    Ok(url)
}

/// One installation token and when GitHub said it expires.
struct Issued {
    token: String,
    expires_at: DateTime<Utc>,
}

/// A slot per (API, App, installation): the token in it, exchanged under its lock.
type Slot = Arc<tokio::sync::Mutex<Option<Issued>>>;

/// GitHub and GitLab with the credentials of `C`. Clones share the HTTPS
/// client and the installation tokens.
#[derive(Clone)]
pub struct ForgeClient<C> {
    poster: Poster,
    endpoints: Arc<Endpoints>,
    credentials: C,
    tokens: Arc<std::sync::Mutex<HashMap<(String, u64), Slot>>>,
}

/// The answer to an installation token exchange.
#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct InstallationId {
    id: u64,
}

#[derive(Deserialize)]
struct GithubFile {
    filename: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

#[derive(Deserialize)]
struct GitlabDiff {
    new_path: String,
    old_path: String,
}

#[derive(serde::Serialize)]
struct JwtClaims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

impl<C: ForgeCredentials> ForgeClient<C> {
    pub fn new(credentials: C, endpoints: Endpoints, timeouts: Timeouts, retries: Retries) -> Self {
        Self {
            poster: Poster::new(timeouts, retries),
            endpoints: Arc::new(endpoints),
            credentials,
            tokens: Arc::default(),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Sends one request to `forge`, retrying as [`super::https`] says.
    async fn send(&self, forge: Forge, what: &'static str, request: Request<'_>) -> Result<Vec<u8>, ScmError> {
        self.poster.send(forge.as_str(), &request).await.map_err(|e| match e {
            PostError::Refused { status, message } => ScmError::Refused { forge, what, status, message },
            PostError::Unavailable { status, attempts, .. } => ScmError::Unavailable { forge, what, status, attempts },
            PostError::Unreachable { attempts, source } => {
                ScmError::Unreachable { forge, what, attempts, source: source.into() }
            }
        })
    }

    /// Calls GitHub's `url` as `tenant` for `repository` (through
    /// `installation` when the hub is a GitHub App): the statuses, the
    /// files, and the deployment protection rule callbacks
    /// (`deployment_callback_url`) all go through here.
    pub async fn github(
        &self,
        tenant: &TenantId,
        target: (&str, Option<u64>),
        what: &'static str,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, ScmError> {
        let token = self.github_token(tenant, target).await?;
        let headers = github_headers(&token).map_err(|source| ScmError::Invalid { forge: Forge::Github, source })?;
        self.send(Forge::Github, what, Request { method, url, headers: &headers, body }).await
    }

    /// The token GitHub calls for `(repository, installation)` are made with.
    async fn github_token(
        &self,
        tenant: &TenantId,
        (repository, installation): (&str, Option<u64>),
    ) -> Result<String, ScmError> {
        let forge = Forge::Github;
        let credential = configured(forge, tenant, self.credentials.github(tenant).await)?;
        let (app_id, key) = match credential {
            GithubCredential::Token(token) => return Ok(token),
            GithubCredential::App { app_id, private_key } => (app_id, private_key),
        };
        let installation = match installation {
            Some(id) => id,
            None => self.installation_of(&app_id, &key, repository).await?,
        };
        let slot = {
            let mut tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            tokens.entry((app_id.clone(), installation)).or_default().clone()
        };
        // One exchange at a time per installation: the others wait and take its token.
        let mut slot = slot.lock().await;
        if let Some(issued) = slot.as_ref().filter(|i| Utc::now() < i.expires_at - REFRESH_BEFORE) {
            return Ok(issued.token.clone());
        }
        let jwt = app_jwt(&app_id, &key).map_err(|source| ScmError::Invalid { forge, source })?;
        let url = self.github_url(&["app", "installations", &installation.to_string(), "access_tokens"])?;
        let headers = github_headers(&jwt).map_err(|source| ScmError::Invalid { forge, source })?;
        let what = "the installation token exchange";
        let body =
            self.send(forge, what, Request { method: Method::POST, url: &url, headers: &headers, body: None }).await?;
        let issued: AccessToken =
            serde_json::from_slice(&body).map_err(|e| ScmError::Unreadable { forge, what, source: e.into() })?;
        tracing::info!(app_id = %app_id, installation, expires_at = %issued.expires_at, "GitHub installation token issued");
        let token = issued.token.clone();
        *slot = Some(Issued { token: issued.token, expires_at: issued.expires_at });
        Ok(token)
    }

    /// The App's installation on `repository`, for a webhook that did not name it.
    async fn installation_of(&self, app_id: &str, key: &str, repository: &str) -> Result<u64, ScmError> {
        let forge = Forge::Github;
        let jwt = app_jwt(app_id, key).map_err(|source| ScmError::Invalid { forge, source })?;
        let (owner, name) = split_repository(repository)?;
        let url = self.github_url(&["repos", owner, name, "installation"])?;
        let headers = github_headers(&jwt).map_err(|source| ScmError::Invalid { forge, source })?;
        let what = "the installation lookup";
        let body =
            self.send(forge, what, Request { method: Method::GET, url: &url, headers: &headers, body: None }).await?;
        let found: InstallationId =
            serde_json::from_slice(&body).map_err(|e| ScmError::Unreadable { forge, what, source: e.into() })?;
        Ok(found.id)
    }

    fn github_url(&self, segments: &[&str]) -> Result<Url, ScmError> {
        under(&self.endpoints.github_api, &[], segments)
            .map_err(|source| ScmError::Invalid { forge: Forge::Github, source })
    }

    fn gitlab_url(&self, segments: &[&str]) -> Result<Url, ScmError> {
        under(&self.endpoints.gitlab, &["api", "v4"], segments)
            .map_err(|source| ScmError::Invalid { forge: Forge::Gitlab, source })
    }

    /// Calls GitLab's `url` with `tenant`'s token.
    async fn gitlab(
        &self,
        tenant: &TenantId,
        what: &'static str,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, ScmError> {
        let forge = Forge::Gitlab;
        let token = configured(forge, tenant, self.credentials.gitlab(tenant).await)?;
        let mut headers = HeaderMap::new();
        headers.insert("private-token", secret(&token).map_err(|source| ScmError::Invalid { forge, source })?);
        self.send(forge, what, Request { method, url, headers: &headers, body }).await
    }
}

/// The credential `tenant` has for `forge`, or why there is none.
fn configured<T>(forge: Forge, tenant: &TenantId, read: Result<Option<T>, SecretsError>) -> Result<T, ScmError> {
    read.map_err(|source| ScmError::Credentials { forge, source })?
        .ok_or_else(|| ScmError::NoCredentials { forge, tenant: tenant.clone() })
}

/// `base` with `prefix` and `segments` appended, each segment encoded
/// (`group/project` becomes `group%2Fproject`).
fn under(base: &Url, prefix: &[&str], segments: &[&str]) -> Result<Url, BoxError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| "the API URL cannot take a path")?
        .pop_if_empty()
        .extend(prefix)
        .extend(segments);
    Ok(url)
}

fn split_repository(repository: &str) -> Result<(&str, &str), ScmError> {
    repository
        .split_once('/')
        .ok_or_else(|| ScmError::Invalid { forge: Forge::Github, source: "the repository is not owner/name".into() })
}

/// A header value that is never printed (reqwest's and http's `Debug` hide it).
fn secret(value: &str) -> Result<HeaderValue, BoxError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| "the token is not a valid header value")?;
    v.set_sensitive(true);
    Ok(v)
}

fn github_headers(token: &str) -> Result<HeaderMap, BoxError> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, secret(&format!("Bearer {token}"))?);
    headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
    headers.insert("x-github-api-version", HeaderValue::from_static(GITHUB_API_VERSION));
    Ok(headers)
}

/// Whether GitLab's refusal `message` says the commit status is already in
/// `state` ("Cannot transition status via :enqueue from :pending ...").
fn already_in(message: &str, state: &str) -> bool {
    let Some(rest) = message.strip_prefix("Cannot transition status via :") else { return false };
    let from = rest.split_once(" from :").map(|(_, from)| from).unwrap_or_default();
    from.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next() == Some(state)
}

/// The App's JWT: RS256, issued a minute ago (GitHub's clock may lag), valid [`JWT_LIFETIME`].
pub fn app_jwt(app_id: &str, private_key_pem: &str) -> Result<String, BoxError> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let der = pkcs1_der(private_key_pem)?;
    let now = Utc::now();
    let claims = JwtClaims {
        iat: (now - chrono::Duration::seconds(60)).timestamp(),
        exp: (now + JWT_LIFETIME).timestamp(),
        iss: app_id,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_der(&der))
        .map_err(|e| format!("the GitHub App key cannot sign: {}", e.kind_name()).into())
}

/// The DER of a PEM `RSA PRIVATE KEY` (PKCS#1, as GitHub issues App keys).
/// Errors never quote the key.
fn pkcs1_der(pem: &str) -> Result<Vec<u8>, BoxError> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN RSA PRIVATE KEY-----";
    const END: &str = "-----END RSA PRIVATE KEY-----";
    if pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("the GitHub App key is PKCS#8 (BEGIN PRIVATE KEY): use the .pem GitHub issued, or convert it with `openssl pkey -in key.pem -traditional`".into());
    }
    let body = pem
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(body, _)| body)
        .ok_or("the GitHub App key is not a PEM RSA PRIVATE KEY")?;
    let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| "the GitHub App key's PEM body is not base64".into())
}

/// A small extension naming jsonwebtoken's error kinds without their details.
trait KindName {
    fn kind_name(&self) -> &'static str;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> &'static str {
        match self.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                "the key is not an RSA private key"
            }
            _ => "signing failed",
        }
    }
}

impl<C: ForgeCredentials> Forges for ForgeClient<C> {
    async fn set_status(
        &self,
        tenant: &TenantId,
        pull: &PullRequestRef,
        status: &CommitStatus,
    ) -> Result<(), ScmError> {
        let what = "the commit status";
        match pull.forge {
            Forge::Github => {
                let (owner, name) = split_repository(&pull.repository)?;
                let url = self.github_url(&["repos", owner, name, "statuses", &pull.head_sha])?;
                let mut body = serde_json::json!({
                    "state": status.state.as_str(),
                    "description": status.description,
                    "context": STATUS_CONTEXT,
                });
                if let Some(link) = &status.target_url {
                    body["target_url"] = link.as_str().into();
                }
                let target = (pull.repository.as_str(), pull.installation);
                self.github(tenant, target, what, Method::POST, &url, Some(&body)).await.map(drop)
            }
            Forge::Gitlab => match status.gitlab_status_check {
                Some(check) => {
                    let iid = pull.number.to_string();
                    let segments = ["projects", &pull.repository, "merge_requests", &iid, "status_check_responses"];
                    let url = self.gitlab_url(&segments)?;
                    let answer = match status.state {
                        CommitState::Success => "passed",
                        CommitState::Pending => "pending",
                        CommitState::Failure => "failed",
                    };
                    let body = serde_json::json!({
                        "sha": pull.head_sha,
                        "external_status_check_id": check,
                        "status": answer,
                    });
                    let what = "the external status check";
                    self.gitlab(tenant, what, Method::POST, &url, Some(&body)).await.map(drop)
                }
                None => {
                    let url = self.gitlab_url(&["projects", &pull.repository, "statuses", &pull.head_sha])?;
                    let state = match status.state {
                        CommitState::Success => "success",
                        CommitState::Pending => "pending",
                        CommitState::Failure => "failed",
                    };
                    let mut body = serde_json::json!({
                        "state": state,
                        "description": status.description,
                        "name": STATUS_CONTEXT,
                    });
                    if let Some(link) = &status.target_url {
                        body["target_url"] = link.as_str().into();
                    }
                    match self.gitlab(tenant, what, Method::POST, &url, Some(&body)).await {
                        Err(ScmError::Refused { status: 400, message: Some(m), .. }) if already_in(&m, state) => {
                            tracing::debug!(repository = %pull.repository, number = pull.number, state, "GitLab commit status already in that state");
                            Ok(())
                        }
                        done => done.map(drop),
                    }
                }
            },
        }
    }

    /// GitHub: `POST /repos/{owner}/{name}/actions/workflows/{workflow}/dispatches`
    /// with `{ref, inputs}` (204). GitLab: `POST /projects/{id}/pipeline`
    /// with `{ref, variables: [{key, value}]}` (201).
    async fn dispatch(&self, tenant: &TenantId, dispatch: &Dispatch) -> Result<(), ScmError> {
        let what = "the rollback dispatch";
        match (dispatch.forge, dispatch.workflow.as_deref()) {
            (Forge::Github, Some(workflow)) => {
                let (owner, name) = split_repository(&dispatch.target)?;
                let url = self.github_url(&["repos", owner, name, "actions", "workflows", workflow, "dispatches"])?;
                let body = serde_json::json!({"ref": dispatch.git_ref, "inputs": dispatch.values});
                let target = (dispatch.target.as_str(), None);
                self.github(tenant, target, what, Method::POST, &url, Some(&body)).await.map(drop)
            }
            (Forge::Github, None) => {
                Err(ScmError::Invalid { forge: Forge::Github, source: "no workflow named".into() })
            }
            (Forge::Gitlab, _) => {
                let url = self.gitlab_url(&["projects", &dispatch.target, "pipeline"])?;
                let variables: Vec<serde_json::Value> = dispatch
                    .values
                    .iter()
                    .map(|(key, value)| serde_json::json!({"key": key, "value": value, "variable_type": "env_var"}))
                    .collect();
                let body = serde_json::json!({"ref": dispatch.git_ref, "variables": variables});
                self.gitlab(tenant, what, Method::POST, &url, Some(&body)).await.map(drop)
            }
        }
    }

    async fn changed_files(&self, tenant: &TenantId, pull: &PullRequestRef) -> Result<Option<Vec<String>>, ScmError> {
        let what = "the changed files";
        let number = pull.number.to_string();
        let per_page = FILES_PER_PAGE.to_string();
        let files: Vec<String> = match pull.forge {
            Forge::Github => {
                let (owner, name) = split_repository(&pull.repository)?;
                let mut url = self.github_url(&["repos", owner, name, "pulls", &number, "files"])?;
                url.query_pairs_mut().append_pair("per_page", &per_page);
                let target = (pull.repository.as_str(), pull.installation);
                let body = self.github(tenant, target, what, Method::GET, &url, None).await?;
                let listed: Vec<GithubFile> = serde_json::from_slice(&body).map_err(|e| ScmError::Unreadable {
                    forge: pull.forge,
                    what,
                    source: e.into(),
                })?;
                if listed.len() >= FILES_PER_PAGE {
                    return Ok(None);
                }
                listed.into_iter().flat_map(|f| std::iter::once(f.filename).chain(f.previous_filename)).collect()
            }
            Forge::Gitlab => {
                let mut url = self.gitlab_url(&["projects", &pull.repository, "merge_requests", &number, "diffs"])?;
                url.query_pairs_mut().append_pair("per_page", &per_page);
                let body = self.gitlab(tenant, what, Method::GET, &url, None).await?;
                let listed: Vec<GitlabDiff> = serde_json::from_slice(&body).map_err(|e| ScmError::Unreadable {
                    forge: pull.forge,
                    what,
                    source: e.into(),
                })?;
                if listed.len() >= FILES_PER_PAGE {
                    return Ok(None);
                }
                listed.into_iter().flat_map(|d| [d.new_path, d.old_path]).collect()
            }
        };
        let mut files = files;
        files.sort();
        files.dedup();
        Ok(Some(files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_take_github_enterprise_and_self_managed_gitlab() {
        let ghes = base_url("https://ghe.example.com/api/v3/").expect("ghes");
        let url = under(&ghes, &[], &["repos", "acme", "pay", "statuses", "abc"]).expect("url");
        assert_eq!(url.as_str(), "https://ghe.example.com/api/v3/repos/acme/pay/statuses/abc");
        let gitlab = base_url("https://gitlab.acme.example").expect("gitlab");
        let url = under(&gitlab, &["api", "v4"], &["projects", "platform/checkout", "statuses", "abc"]).expect("url");
        assert_eq!(url.as_str(), "https://gitlab.acme.example/api/v4/projects/platform%2Fcheckout/statuses/abc");
        assert!(base_url("ftp://example.com").is_err());
        assert!(base_url("https://example.com/?token=1").is_err());
    }

    #[test]
    fn gitlab_refusing_the_state_a_status_already_has_is_recognised() {
        let pending = r#"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via "enqueue")"#;
        assert!(already_in(pending, "pending"));
        assert!(!already_in(pending, "success"));
        assert!(already_in("Cannot transition status via :run from :running", "running"));
        assert!(!already_in("Cannot transition status via :run from :runningx", "running"));
        assert!(!already_in("403 Forbidden", "pending"));
    }

    #[test]
    fn a_key_that_is_not_a_pkcs1_pem_is_refused_without_quoting_it() {
        let pkcs8 = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let e = app_jwt("1", pkcs8).expect_err("pkcs8").to_string();
        assert!(e.contains("PKCS#8") && !e.contains("c2VjcmV0"), "{e}");
        let garbage = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n";
        let e = app_jwt("1", garbage).expect_err("not a key").to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
        assert!(app_jwt("1", "secret").is_err());
    }
}
