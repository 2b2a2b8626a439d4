//! The change record and its lifecycle.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::ids::{ChangeId, ServiceName, TenantId};

/// The longest planned window a change may have. Queries for "changes touching
/// a service in a time range" rely on this bound to stay proportional to the
/// range asked for, not to the service's whole history.
pub const MAX_PLANNED_WINDOW: Duration = Duration::days(31);
/// Most services one change may name.
pub const MAX_SERVICES: usize = 20;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// Low-risk, pre-approved by template.
    Standard,
    /// Goes through the approval chain.
    Normal,
    /// May proceed at once; reviewed afterwards.
    Emergency,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Standard => "standard",
            ChangeType::Normal => "normal",
            ChangeType::Emergency => "emergency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Scheduled,
    Implementing,
    Completed,
    Failed,
    RolledBack,
    Closed,
    Cancelled,
}

impl ChangeState {
    pub const ALL: [ChangeState; 11] = [
        ChangeState::Draft,
        ChangeState::Submitted,
        ChangeState::Approved,
        ChangeState::Rejected,
        ChangeState::Scheduled,
        ChangeState::Implementing,
        ChangeState::Completed,
        ChangeState::Failed,
        ChangeState::RolledBack,
        ChangeState::Closed,
        ChangeState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "draft",
            ChangeState::Submitted => "submitted",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
            ChangeState::Scheduled => "scheduled",
            ChangeState::Implementing => "implementing",
            ChangeState::Completed => "completed",
            ChangeState::Failed => "failed",
            ChangeState::RolledBack => "rolled_back",
            ChangeState::Closed => "closed",
            ChangeState::Cancelled => "cancelled",
        }
    }

    /// Open states are those before implementation starts; a change in one
    /// of them may still be cancelled. Once implementation has started the
    /// outcome must be recorded (completed, failed or rolled back) instead.
    pub fn is_open(self) -> bool {
        matches!(self, ChangeState::Draft | ChangeState::Submitted | ChangeState::Approved | ChangeState::Scheduled)
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }

    /// The states this one may move to, in lifecycle order.
    pub fn allowed_next(self) -> &'static [ChangeState] {
        use ChangeState::*;
        match self {
            Draft => &[Submitted, Cancelled],
            Submitted => &[Approved, Rejected, Cancelled],
            Approved => &[Scheduled, Cancelled],
            Rejected => &[Closed],
            Scheduled => &[Implementing, Cancelled],
            Implementing => &[Completed, Failed, RolledBack],
            Completed => &[Closed],
            Failed => &[RolledBack, Closed],
            RolledBack => &[Closed],
            Closed | Cancelled => &[],
        }
    }

    pub fn can_move_to(self, to: ChangeState) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a change from {from} to {to}; allowed from {from}: {}", allowed_list(.allowed))]
pub struct IllegalTransition {
    pub from: ChangeState,
    pub to: ChangeState,
    pub allowed: Vec<ChangeState>,
}

fn allowed_list(allowed: &[ChangeState]) -> String {
    if allowed.is_empty() {
        "none (terminal state)".to_owned()
    } else {
        allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A change record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: ChangeId,
    pub tenant: TenantId,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    pub services: Vec<ServiceName>,
    pub environment: String,
    pub planned_start: DateTime<Utc>,
    pub planned_end: DateTime<Utc>,
    pub requester: String,
    pub state: ChangeState,
    /// Starts at 1 and grows by one with every mutation; every update is
    /// conditional on it. It is also the sequence number of the latest audit entry.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Hash of the latest audit entry: the next entry chains onto it.
    pub audit_head: String,
}

impl Change {
    /// Moves the change to `to`, or says why it may not.
    pub fn transition(&self, to: ChangeState, at: DateTime<Utc>) -> Result<Change, IllegalTransition> {
        if !self.state.can_move_to(to) {
            return Err(IllegalTransition { from: self.state, to, allowed: self.state.allowed_next().to_vec() });
        }
        let mut next = self.clone();
        next.state = to;
        next.version += 1;
        next.updated_at = at;
        Ok(next)
    }
}
