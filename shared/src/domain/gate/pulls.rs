//! The merge gate's reverse index: the open pull (merge) requests that
//! reference a change, kept with the change's id so that when the change is
//! decided each of their statuses is set again with one read, never a scan.
//! Bounded: at most [`MAX_LINKED`] requests per change (the oldest leave
//! first); a merged or closed request leaves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::domain::ids::{ChangeId, ServiceName};

/// The most requests kept per change.
pub const MAX_LINKED: usize = 50;

/// Where a request lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forge {
    Github,
    Gitlab,
}

impl Forge {
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
        }
    }
}

impl std::fmt::Display for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One open request, as its status is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub forge: Forge,
    /// `owner/name` (GitHub) or `group/project` (GitLab).
    pub repository: String,
    /// The pull request number (GitLab: the merge request's iid).
    pub number: u64,
    pub head_sha: String,
    /// The GitHub App installation its calls use, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
}

impl PullRequestRef {
    /// Whether `other` is the same request (whatever its head).
    pub fn same_request(&self, other: &PullRequestRef) -> bool {
        self.forge == other.forge && self.repository == other.repository && self.number == other.number
    }
}

/// A request linked to a change: what deciding it again needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullLink {
    pub pull: PullRequestRef,
    /// The repository's service.
    pub service: ServiceName,
    /// Every change the request references (the decision weighs them all).
    pub change_ids: Vec<ChangeId>,
    pub linked_at: DateTime<Utc>,
}

/// The requests linked to one change, versioned (optimistic locking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullLinks {
    pub tenant: TenantId,
    pub change: ChangeId,
    /// 1 for the first write, then one more per write.
    pub version: u64,
    pub pulls: Vec<PullLink>,
}

impl PullLinks {
    pub fn new(tenant: TenantId, change: ChangeId) -> Self {
        Self { tenant, change, version: 0, pulls: Vec::new() }
    }

    /// Adds `link` (replacing the same request's older entry), keeping the
    /// newest [`MAX_LINKED`]. Whether anything changed.
    pub fn link(&mut self, link: PullLink) -> bool {
        if let Some(kept) = self.pulls.iter_mut().find(|p| p.pull.same_request(&link.pull)) {
            let changed = kept.pull != link.pull || kept.change_ids != link.change_ids || kept.service != link.service;
            if changed {
                *kept = link;
            }
            return changed;
        }
        self.pulls.push(link);
        if self.pulls.len() > MAX_LINKED {
            self.pulls.sort_by_key(|p| std::cmp::Reverse(p.linked_at));
            self.pulls.truncate(MAX_LINKED);
        }
        true
    }

    /// Removes `pull` (a merged or closed request). Whether it was there.
    pub fn unlink(&mut self, pull: &PullRequestRef) -> bool {
        let before = self.pulls.len();
        self.pulls.retain(|p| !p.pull.same_request(pull));
        self.pulls.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn link(number: u64, sha: &str, minute: u32) -> PullLink {
        PullLink {
            pull: PullRequestRef {
                forge: Forge::Github,
                repository: "acme/pay".into(),
                number,
                head_sha: sha.into(),
                installation: Some(7),
            },
            service: ServiceName::parse("payments").expect("service"),
            change_ids: vec![],
            linked_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).single().expect("time"),
        }
    }

    #[test]
    fn a_request_is_linked_once_its_newest_head_kept_and_unlinked_when_closed() {
        let mut links = PullLinks::new(TenantId::parse("acme").expect("tenant"), ChangeId::new());
        assert!(links.link(link(1, "aaa", 0)));
        assert!(!links.link(link(1, "aaa", 1)), "the same head again changes nothing");
        assert!(links.link(link(1, "bbb", 2)));
        assert_eq!(links.pulls.len(), 1);
        assert_eq!(links.pulls[0].pull.head_sha, "bbb");
        assert!(links.unlink(&link(1, "ccc", 3).pull));
        assert!(!links.unlink(&link(1, "ccc", 3).pull));
        assert!(links.pulls.is_empty());
    }

    #[test]
    fn the_newest_requests_are_kept_past_the_bound() {
        let mut links = PullLinks::new(TenantId::parse("acme").expect("tenant"), ChangeId::new());
        for n in 0..(MAX_LINKED as u64 + 5) {
            links.link(link(n, "aaa", (n % 60) as u32));
        }
        assert_eq!(links.pulls.len(), MAX_LINKED);
    }
}
