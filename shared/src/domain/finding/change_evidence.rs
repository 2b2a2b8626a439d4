//! What actually changed during a change: each observation a change
//! authorized, recorded on that change as evidence (`GET
//! /changes/{id}/evidence`), once per piece of evidence, at most
//! [`MAX_CHANGE_EVIDENCE`] per change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::authorize::AuthorizedBy;
use super::observation::{Actor, Evidence, Observation, Resource};
use crate::domain::{ChangeId, ServiceName, TenantId};

/// Most pieces of evidence one change keeps; later ones are logged, not
/// stored (a change that touches more is a bulk change, and its first
/// thousand observations say what it did).
pub const MAX_CHANGE_EVIDENCE: u64 = 1000;

/// One observation a change authorized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvidence {
    pub tenant: TenantId,
    pub change_id: ChangeId,
    /// The observation's identity (the hub event's id, or a CloudTrail
    /// call's `eventID`): a piece of evidence is recorded once.
    pub event_id: String,
    pub evidence: Evidence,
    pub account: String,
    pub region: String,
    /// When it happened, by the source's own clock.
    pub at: DateTime<Utc>,
    pub service: Option<ServiceName>,
    pub resources: Vec<Resource>,
    /// What changed: the API call and its key parameters, or Config's changed properties.
    pub what: String,
    /// Who, when the evidence says (an AWS Config item does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// How the change authorized it: its planned window or its implementation.
    pub authorized_by: AuthorizedBy,
    /// When the hub recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl ChangeEvidence {
    pub fn of(o: &Observation, change_id: ChangeId, by: AuthorizedBy, now: DateTime<Utc>) -> ChangeEvidence {
        ChangeEvidence {
            tenant: o.tenant.clone(),
            change_id,
            event_id: o.event_id.clone(),
            evidence: o.evidence,
            account: o.account.clone(),
            region: o.region.clone(),
            at: o.at,
            service: o.service.clone(),
            resources: o.resources.clone(),
            what: o.what.clone(),
            actor: o.actor.clone(),
            authorized_by: by,
            recorded_at: now,
        }
    }
}

/// What recording a piece of evidence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored.
    New,
    /// The change holds this evidence already: nothing changed.
    Duplicate,
    /// The change holds [`MAX_CHANGE_EVIDENCE`] already: not stored.
    Full,
}
