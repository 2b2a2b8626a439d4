//! The merge gate: which commit status a pull (GitHub) or merge (GitLab)
//! request gets, `changehub/change` on its head sha. Pure: the app layer
//! reads the service's policy, the changes the request references and the
//! files it changes, and this decides.
//!
//! A service is gated when its catalog entry has a `merge_gate:` section
//! (off when absent):
//!
//! ```yaml
//! merge_gate:
//!   branches: [main, "release/*"]     # base branches gated (globs; default [main])
//!   exempt_paths: ["docs/**", "*.md"] # a request changing only these passes
//!   exempt_labels: [docs]             # a request with one of these labels passes
//!   standard_changes: true            # a standard change may cover a merge (default true)
//!   gitlab:
//!     status_check_id: 42             # answer this external status check (GitLab Ultimate)
//! ```
//!
//! The status is `success` when a referenced change (id in the title, body,
//! branch or a label, as ingest extracts it) is approved, scheduled or
//! implementing and covers the repository's service; `failure` when every
//! referenced change was rejected or cancelled; `pending` otherwise (no
//! change yet, a change still waiting for approval, a change of another
//! service), with a link to the change or to where one is opened. Unlike the
//! deployment gate, a merge does not wait for the change's window, freezes
//! or incidents: those hold the deployment, not the review.

use serde::{Deserialize, Serialize};

use super::GateCode;
use crate::domain::change::{Change, ChangeState, ChangeType};
use crate::domain::ids::{ChangeId, ServiceName};
use crate::domain::validation::Problems;

/// The commit status name (GitHub's `context`, GitLab's `name`).
pub const STATUS_CONTEXT: &str = "changehub/change";
/// The longest description GitHub keeps on a commit status.
pub const MAX_DESCRIPTION_CHARS: usize = 140;
/// The most patterns of each list in a policy.
pub const MAX_PATTERNS: usize = 20;
/// The most change ids of one request weighed (the first ones).
pub const MAX_REFERENCED: usize = 5;

/// A service's `merge_gate:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeGatePolicy {
    /// The base branches gated, as globs (`release/*`).
    #[serde(default = "default_branches")]
    pub branches: Vec<String>,
    /// A request that changes only files matching these globs passes: `**`
    /// spans directories, `*` and `?` do not; a pattern without `/` matches
    /// a file name in any directory (`*.md`).
    #[serde(default)]
    pub exempt_paths: Vec<String>,
    /// A request with one of these labels passes.
    #[serde(default)]
    pub exempt_labels: Vec<String>,
    /// Whether a standard (pre-approved) change may cover a merge.
    #[serde(default = "yes")]
    pub standard_changes: bool,
    /// How merge requests on GitLab get the answer (a commit status when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitlabMergeGate>,
}

/// A service's `merge_gate.gitlab:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabMergeGate {
    /// The project's external status check (Settings → Merge requests →
    /// Status checks; `GET /projects/:id/external_status_checks` lists their
    /// ids) the hub answers `passed`/`pending`/`failed` on each merge
    /// request, instead of the commit status `changehub/change`. GitLab
    /// Ultimate only.
    pub status_check_id: u64,
}

fn default_branches() -> Vec<String> {
    vec!["main".to_owned()]
}

fn yes() -> bool {
    true
}

impl Default for MergeGatePolicy {
    fn default() -> Self {
        Self {
            branches: default_branches(),
            exempt_paths: Vec::new(),
            exempt_labels: Vec::new(),
            standard_changes: true,
            gitlab: None,
        }
    }
}

impl MergeGatePolicy {
    /// Adds the problems of the policy, under `at` (`services[0].merge_gate`).
    pub(in crate::domain) fn check(&self, p: &mut Problems, at: &str) {
        for (field, list) in
            [("branches", &self.branches), ("exempt_paths", &self.exempt_paths), ("exempt_labels", &self.exempt_labels)]
        {
            if list.len() > MAX_PATTERNS {
                p.add(format!("{at}.{field}"), format!("at most {MAX_PATTERNS} entries; got {}", list.len()));
            }
            for (i, entry) in list.iter().enumerate() {
                if entry.trim().is_empty() || entry.trim() != entry || entry.chars().any(char::is_control) {
                    p.add(
                        format!("{at}.{field}[{i}]"),
                        format!("a name or glob without surrounding spaces or control characters; got {entry:?}"),
                    );
                }
            }
        }
        if self.branches.is_empty() {
            p.add(format!("{at}.branches"), "name at least one gated base branch, such as main");
        }
        if self.gitlab.is_some_and(|g| g.status_check_id == 0) {
            p.add(format!("{at}.gitlab.status_check_id"), "the external status check's id, a positive integer");
        }
    }

    /// Whether a request into `base` is gated.
    pub fn gates(&self, base: &str) -> bool {
        self.branches.iter().any(|b| glob(b, base))
    }

    /// Why a request with `labels` changing `files` (`None`: not known)
    /// passes without a change, if it does.
    pub fn exemption(&self, labels: &[String], files: Option<&[String]>) -> Option<String> {
        if let Some(label) = labels.iter().find(|l| self.exempt_labels.iter().any(|e| e.eq_ignore_ascii_case(l))) {
            return Some(format!("exempt: labelled {label}"));
        }
        let files = files.filter(|f| !f.is_empty() && !self.exempt_paths.is_empty())?;
        files
            .iter()
            .all(|f| self.exempt_paths.iter().any(|p| path_matches(p, f)))
            .then(|| format!("exempt: changes only {}", self.exempt_paths.join(", ")))
    }
}

/// Whether `path` matches the exempt-path glob `pattern` (see [`MergeGatePolicy::exempt_paths`]).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.contains('/') { glob(pattern, path) } else { glob(pattern, path.rsplit('/').next().unwrap_or(path)) }
}

/// `*` and `?` within a path segment, `**` across segments.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => {
                let rest = rest.strip_prefix(b"/").filter(|_| !rest.is_empty()).unwrap_or(rest);
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            [b'*', rest @ ..] => {
                let segment = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=segment).any(|i| go(rest, &t[i..]))
            }
            [b'?', rest @ ..] => t.first().is_some_and(|&c| c != b'/') && go(rest, &t[1..]),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// A commit status's state, as GitHub names it (GitLab's `failed` is `failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    Success,
    Pending,
    Failure,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Success => "success",
            CommitState::Pending => "pending",
            CommitState::Failure => "failure",
        }
    }
}

/// The status a request gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeDecision {
    pub state: CommitState,
    /// Why, as a code ([`GateCode`]: `allowed`, `no_change`, `not_approved`, ...).
    pub code: GateCode,
    /// For the developer, at most [`MAX_DESCRIPTION_CHARS`].
    pub description: String,
    /// The change it rests on, when one is referenced.
    pub change: Option<ChangeId>,
}

impl MergeDecision {
    fn new(state: CommitState, code: GateCode, description: String, change: Option<ChangeId>) -> Self {
        Self { state, code, description: short(description), change }
    }

    /// A request the policy exempts: success, without a change.
    pub fn exempt(why: String) -> Self {
        Self::new(CommitState::Success, GateCode::Recorded, why, None)
    }

    /// Where the status links to: the change's page, or the hub's (where a change is opened).
    pub fn target_url(&self, public_url: Option<&str>) -> Option<String> {
        let hub = public_url?.trim_end_matches('/');
        Some(match self.change {
            Some(id) => format!("{hub}/changes/{id}"),
            None => format!("{hub}/changes"),
        })
    }
}

fn short(text: String) -> String {
    if text.chars().count() <= MAX_DESCRIPTION_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Decides the status of a request into `service` that references
/// `referenced` (the first [`MAX_REFERENCED`]), of which `found` were read.
/// The best answer wins: success, then pending, then failure.
pub fn decide(
    service: &ServiceName,
    policy: &MergeGatePolicy,
    referenced: &[ChangeId],
    found: &[Change],
) -> MergeDecision {
    let answers = referenced.iter().take(MAX_REFERENCED).map(|id| match found.iter().find(|c| c.id == *id) {
        Some(change) => one(service, policy, change),
        None => MergeDecision::new(
            CommitState::Pending,
            GateCode::ChangeNotFound,
            format!("Change {id} was not found; reference an existing change of {service}"),
            Some(*id),
        ),
    });
    let rank = |d: &MergeDecision| match d.state {
        CommitState::Success => 0,
        CommitState::Pending => 1,
        CommitState::Failure => 2,
    };
    answers.min_by_key(rank).unwrap_or_else(|| {
        MergeDecision::new(
            CommitState::Pending,
            GateCode::NoChange,
            format!(
                "No change referenced: open a change for {service} and put its id in the title, body, branch or a label"
            ),
            None,
        )
    })
}

/// The status one referenced change gives.
fn one(service: &ServiceName, policy: &MergeGatePolicy, change: &Change) -> MergeDecision {
    let id = change.id;
    let pending = |code, why: String| MergeDecision::new(CommitState::Pending, code, why, Some(id));
    if !change.services.contains(service) {
        return pending(
            GateCode::WrongService,
            format!("Change {id} does not cover {service}; add it or reference a change that does"),
        );
    }
    if change.change_type == ChangeType::Standard && !policy.standard_changes {
        return pending(
            GateCode::NotApproved,
            format!("Change {id} is a standard change; merges to {service} need a normal change"),
        );
    }
    if change.was_rejected() {
        return MergeDecision::new(
            CommitState::Failure,
            GateCode::ChangeRejected,
            format!("Change {id} was {}", change.rejected_text()),
            Some(id),
        );
    }
    match change.state {
        ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing => MergeDecision::new(
            CommitState::Success,
            GateCode::Allowed,
            format!("Change {id} is {}: {}", change.state, change.title),
            Some(id),
        ),
        ChangeState::Draft => pending(GateCode::NotApproved, format!("Change {id} is a draft: submit it for approval")),
        ChangeState::Submitted => pending(GateCode::NotApproved, format!("Change {id} waits for approval")),
        ChangeState::Rejected | ChangeState::Cancelled => MergeDecision::new(
            CommitState::Failure,
            GateCode::ChangeRejected,
            format!("Change {id} was {}; open a new change", change.state),
            Some(id),
        ),
        ChangeState::Verifying
        | ChangeState::Completed
        | ChangeState::Failed
        | ChangeState::RolledBack
        | ChangeState::Closed => {
            pending(GateCode::ChangeEnded, format!("Change {id} is {}; open a new change", change.state))
        }
    }
}

/// Whether a change event can turn a linked request's status: the change
/// was decided, scheduled, started, or ended.
pub fn turns_status(detail_type: &str) -> bool {
    TURNING_EVENTS.contains(&detail_type)
}

/// The change events ([`crate::domain::HubEvent::change_mutated`]) after
/// which the linked requests' statuses are set again.
pub const TURNING_EVENTS: [&str; 13] = [
    "Change Submitted",
    "Change Edited",
    "Change Reworked",
    "Change Approved",
    "Change Rejected",
    "Change Cancelled",
    "Change Scheduled",
    "Change Implementing",
    "Change Verifying",
    "Change Completed",
    "Change Failed",
    "Change Rolled Back",
    "Change Closed",
];

#[cfg(test)]
mod tests;
