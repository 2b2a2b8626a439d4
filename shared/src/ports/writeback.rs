//! The write-back port: a note or a comment posted to a tenant's own tools
//! (PagerDuty, GitHub), and the tokens it is posted with.

use std::future::Future;

use super::secrets::SecretsError;
use super::store::BoxError;
use crate::domain::TenantId;
use crate::domain::notice::GithubThread;
use crate::domain::writeback::Target;

/// What to post, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    /// `POST {api_url}/incidents/{incident}/notes`, as the PagerDuty user `from`.
    PagerdutyNote { api_url: String, incident: String, from: String, content: String },
    /// `POST {api_url}/repos/{repository}/issues/{n}/comments` on a pull
    /// request, or `.../commits/{sha}/comments` on a commit.
    GithubComment { api_url: String, repository: String, thread: GithubThread, body: String },
}

impl Post {
    pub fn target(&self) -> Target {
        match self {
            Post::PagerdutyNote { .. } => Target::Pagerduty,
            Post::GithubComment { .. } => Target::Github,
        }
    }
}

/// Why a post failed. No variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum WriteBackError {
    #[error("no {target} write-back token is configured for tenant {tenant}")]
    NoToken { target: Target, tenant: TenantId },
    #[error("the {target} write-back token could not be read")]
    Credentials {
        target: Target,
        #[source]
        source: SecretsError,
    },
    /// The request cannot be made as configured (an API URL that takes no path, a header value that is not one).
    #[error("the {target} write-back request cannot be made")]
    Invalid {
        target: Target,
        #[source]
        source: BoxError,
    },
    /// A 4xx other than 429: the request, the token or the settings are wrong; retrying does not help.
    #[error("{target} refused the write-back with status {status}")]
    Refused { target: Target, status: u16 },
    /// 5xx or 429 on every attempt.
    #[error("{target} answered status {status} to every attempt ({attempts})")]
    Unavailable { target: Target, status: u16, attempts: u32 },
    /// No answer (connection refused, timeout) on the last attempt.
    #[error("{target} could not be reached ({attempts} attempts)")]
    Unreachable {
        target: Target,
        attempts: u32,
        #[source]
        source: BoxError,
    },
}

impl WriteBackError {
    /// Whether a later attempt may succeed (the consumer retries, then dead-letters).
    pub fn is_retryable(&self) -> bool {
        match self {
            WriteBackError::NoToken { .. } | WriteBackError::Invalid { .. } | WriteBackError::Refused { .. } => false,
            WriteBackError::Credentials { source, .. } => matches!(source, SecretsError::Backend(_)),
            WriteBackError::Unavailable { .. } | WriteBackError::Unreachable { .. } => true,
        }
    }

    /// The HTTP status answered, if any (for logs).
    pub fn status(&self) -> Option<u16> {
        match self {
            WriteBackError::Refused { status, .. } | WriteBackError::Unavailable { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub trait WriteBack: Send + Sync {
    /// Posts once (retrying inside on 5xx, 429 and connection errors).
    fn post(&self, tenant: &TenantId, post: &Post) -> impl Future<Output = Result<(), WriteBackError>> + Send;
}

/// The API tokens write-backs are posted with, per tenant and target.
pub trait WriteBackCredentials: Send + Sync {
    /// `tenant`'s token for `target`, `None` when none is configured.
    fn token(
        &self,
        tenant: &TenantId,
        target: Target,
    ) -> impl Future<Output = Result<Option<String>, SecretsError>> + Send;
}

/// No credentials when `None`: every write-back is refused as not configured.
impl<T: WriteBackCredentials> WriteBackCredentials for Option<T> {
    async fn token(&self, tenant: &TenantId, target: Target) -> Result<Option<String>, SecretsError> {
        match self {
            Some(credentials) => credentials.token(tenant, target).await,
            None => Ok(None),
        }
    }
}
