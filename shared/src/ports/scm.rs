//! The merge gate's ports: GitHub and GitLab (commit statuses on a head
//! sha, the files a request changes), the credentials they are called
//! with, and the reverse index of the requests linked to a change.

use std::fmt;
use std::future::Future;

use super::secrets::SecretsError;
use super::store::{BoxError, StoreError};
use crate::domain::deployment::rollback::Dispatch;
use crate::domain::gate::merge::CommitState;
use crate::domain::gate::pulls::{Forge, PullLinks, PullRequestRef};
use crate::domain::{ChangeId, TenantId};

/// A commit status to set on a request's head sha, named
/// [`crate::domain::gate::merge::STATUS_CONTEXT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub state: CommitState,
    pub description: String,
    /// The change's page, or where a change is opened.
    pub target_url: Option<String>,
    /// GitLab: answer this external status check of the merge request
    /// (its id) instead of setting a commit status.
    pub gitlab_status_check: Option<u64>,
}

/// Why a call to GitHub or GitLab failed. No variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum ScmError {
    #[error("no {forge} credentials are configured for tenant {tenant}")]
    NoCredentials { forge: Forge, tenant: TenantId },
    #[error("the {forge} credentials could not be read")]
    Credentials {
        forge: Forge,
        #[source]
        source: SecretsError,
    },
    /// The request cannot be made as configured (a key that is not one, a base URL that takes no path).
    #[error("the {forge} request cannot be made")]
    Invalid {
        forge: Forge,
        #[source]
        source: BoxError,
    },
    /// A 4xx other than 429: the request, the token or the permissions are
    /// wrong. `message` is the forge's own (`{"message": ...}`), if it gave one.
    #[error("{forge} refused {what} with status {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused { forge: Forge, what: &'static str, status: u16, message: Option<String> },
    /// 5xx or 429 on every attempt.
    #[error("{forge} answered status {status} to every attempt ({attempts}) at {what}")]
    Unavailable { forge: Forge, what: &'static str, status: u16, attempts: u32 },
    /// No answer (connection refused, timeout) on the last attempt.
    #[error("{forge} could not be reached ({attempts} attempts) at {what}")]
    Unreachable {
        forge: Forge,
        what: &'static str,
        attempts: u32,
        #[source]
        source: BoxError,
    },
    /// A successful answer that is not what the API documents.
    #[error("{forge} answered {what} with a body that cannot be read")]
    Unreadable {
        forge: Forge,
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

impl ScmError {
    /// Whether a later call may succeed (the consumer retries, then dead-letters).
    pub fn is_retryable(&self) -> bool {
        match self {
            ScmError::Credentials { source, .. } => matches!(source, SecretsError::Backend(_)),
            ScmError::Unavailable { .. } | ScmError::Unreachable { .. } => true,
            ScmError::NoCredentials { .. }
            | ScmError::Invalid { .. }
            | ScmError::Refused { .. }
            | ScmError::Unreadable { .. } => false,
        }
    }
}

/// GitHub and GitLab, as the merge gate calls them.
pub trait Forges: Send + Sync {
    /// Sets `status` on `pull`'s head sha (retrying inside on 5xx, 429 and connection errors).
    fn set_status(
        &self,
        tenant: &TenantId,
        pull: &PullRequestRef,
        status: &CommitStatus,
    ) -> impl Future<Output = Result<(), ScmError>> + Send;

    /// The paths `pull` changes (renamed files under both names); `None`
    /// when there are more than one page of them (they are then not known).
    fn changed_files(
        &self,
        tenant: &TenantId,
        pull: &PullRequestRef,
    ) -> impl Future<Output = Result<Option<Vec<String>>, ScmError>> + Send;

    /// Runs a rollback: a GitHub `workflow_dispatch` or a GitLab pipeline
    /// (retrying inside on 5xx, 429 and connection errors).
    fn dispatch(&self, tenant: &TenantId, dispatch: &Dispatch) -> impl Future<Output = Result<(), ScmError>> + Send;
}

/// How the hub authenticates to GitHub.
#[derive(Clone, PartialEq, Eq)]
pub enum GithubCredential {
    /// A personal access or fine-grained token, sent as is.
    Token(String),
    /// A GitHub App: its id and PEM private key (PKCS#1, `BEGIN RSA PRIVATE
    /// KEY`, as GitHub issues it) sign the JWT exchanged for installation tokens.
    App { app_id: String, private_key: String },
}

/// Never prints the token or the key.
impl fmt::Debug for GithubCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GithubCredential::Token(_) => f.write_str("Token(..)"),
            GithubCredential::App { app_id, .. } => write!(f, "App {{ app_id: {app_id:?}, private_key: .. }}"),
        }
    }
}

/// The credentials the forges are called with, per tenant.
pub trait ForgeCredentials: Send + Sync {
    /// `tenant`'s GitHub credential (an App wins over a token), `None` when none is configured.
    fn github(&self, tenant: &TenantId) -> impl Future<Output = Result<Option<GithubCredential>, SecretsError>> + Send;

    /// `tenant`'s GitLab token, `None` when none is configured.
    fn gitlab(&self, tenant: &TenantId) -> impl Future<Output = Result<Option<String>, SecretsError>> + Send;
}

/// The reverse index: the open requests linked to each change, one small
/// item per change, read and written whole.
pub trait PullLinkStore: Send + Sync {
    fn get_pull_links(
        &self,
        tenant: &TenantId,
        change: &ChangeId,
    ) -> impl Future<Output = Result<Option<PullLinks>, StoreError>> + Send;

    /// Stores `links` if the stored ones are at the version before
    /// (`links.version - 1`; none stored when it is 1), else `VersionConflict`.
    fn put_pull_links(&self, links: &PullLinks) -> impl Future<Output = Result<(), StoreError>> + Send;
}
