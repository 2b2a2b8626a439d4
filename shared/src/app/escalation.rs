//! One tick of escalation: every approval the due index says is due by now
//! (each shard, page by page) takes the latest step of its cadence that is
//! due (a reminder, an escalation, the breach) with one write conditional on
//! the change's version, one audit entry per step taken. The outbox turns
//! each entry into its hub event and its notification to the step's audience.
//! The same tick reads the starting-soon partitions and takes each scheduled
//! change's "starting soon" reminder (`domain::soon`) the same way, once,
//! and then the bake partitions: a verifying change whose bake ended with
//! no incident completes (`domain::bake`), once.
//!
//! Each step is taken once whatever runs: the step is recorded on the record
//! the write is conditional on, so of two ticks (or two functions) that read
//! the same version one writes and the other gets a version conflict,
//! re-reads, and finds the step taken. A tick that dies before its write
//! took nothing, and the next takes the step. Deciding, withdrawing or
//! cancelling moves the record off its due entry in the same write.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use tracing::instrument;

use crate::app::changes::sla::nudge_waits;
use crate::app::changes::{SYSTEM_ACTOR, outcome_bumps};
use crate::domain::audit::{self, AuditAction};
use crate::domain::catalog::Catalog;
use crate::domain::delegation::Delegation;
use crate::domain::escalation::{NudgeKind, Nudged};
use crate::domain::soon::Reminded;
use crate::domain::{AuditEntry, Change, ChangeId, ChangeState, TenantId};
use crate::ports::{
    Bump, CatalogReader, ChangeReader, ChangeUpdate, ChangeWriter, Clock, DueIndex, DuePartition, MAX_PAGE, StoreError,
    TenantDocs, WaitBump,
};

/// Writes one change is tried with in a tick before it is left to the next.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The escalation use case: the due index, the change records, the tenants'
/// delegations (whose delegates a step names), their catalogs (for their CAB) and a clock.
pub struct Escalator<S, K, C> {
    pub store: S,
    pub catalog: K,
    pub clock: C,
}

/// A step taken by a tick.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Taken {
    pub tenant: TenantId,
    pub change_id: ChangeId,
    pub kind: NudgeKind,
    pub number: u32,
    /// The step of the plan it was taken on (`level 1 (team-lead of payments)`).
    pub step: String,
    pub to: String,
    pub due_at: DateTime<Utc>,
}

/// A "starting soon" reminder taken by a tick.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StartingSoon {
    pub tenant: TenantId,
    pub change_id: ChangeId,
    pub planned_start: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// The tick came after the planned start: the change has not started.
    pub late: bool,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tick {
    /// Changes the due index returned: what the tick read.
    pub read: usize,
    /// Approval steps taken, one audit entry each.
    pub taken: Vec<Taken>,
    /// "Starting soon" reminders taken, one audit entry each.
    pub starting_soon: Vec<StartingSoon>,
    /// Verifying changes completed because their bake ended, one audit entry each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baked: Vec<ChangeId>,
    /// Changes with nothing due when written: another tick took their step,
    /// or they were decided, withdrawn or cancelled meanwhile.
    pub already_taken: usize,
    /// Changes left to the next tick after repeated version conflicts.
    pub deferred: usize,
}

impl<S, K, C> Escalator<S, K, C>
where
    S: DueIndex + ChangeReader + ChangeWriter + TenantDocs,
    K: CatalogReader,
    C: Clock,
{
    /// Takes every step and reminder due by now, each once.
    #[instrument(skip(self))]
    pub async fn tick(&self) -> Result<Tick, EscalationError> {
        let now = self.clock.now();
        let mut tick = Tick::default();
        // Each tenant's delegations in force, read once a tick.
        let mut delegations = BTreeMap::new();
        for partition in DuePartition::ticked() {
            let mut after = None;
            loop {
                let page = self.store.due(&partition, now, MAX_PAGE, after.take()).await?;
                tick.read += page.items.len();
                for change in page.items {
                    self.chase(change, now, &mut delegations, &mut tick).await?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        if !tick.taken.is_empty() || !tick.starting_soon.is_empty() {
            let (taken, starting_soon) = (tick.taken.len(), tick.starting_soon.len());
            tracing::info!(read = tick.read, taken, starting_soon, "escalation tick");
        }
        Ok(tick)
    }

    /// Takes `change`'s due steps (or its reminder) in one conditional
    /// write; on a version conflict, reads it again and takes what is still due.
    async fn chase(
        &self,
        mut change: Change,
        now: DateTime<Utc>,
        delegations: &mut BTreeMap<TenantId, Vec<Delegation>>,
        tick: &mut Tick,
    ) -> Result<(), EscalationError> {
        let view = self.catalog.catalog(&change.tenant).await?;
        let cab = cab_of(&view.catalog);
        if !delegations.contains_key(&change.tenant) {
            let active = crate::app::delegations::active(&self.store, &change.tenant, now).await?;
            delegations.insert(change.tenant.clone(), active);
        }
        let delegates = delegations.get(&change.tenant).map_or(&[][..], Vec::as_slice);
        for _ in 0..ATTEMPTS {
            let Some(write) = Nudges::of(&change, now, &cab, &view.catalog, delegates) else {
                tick.already_taken += 1;
                return Ok(());
            };
            let update = ChangeUpdate {
                before: &change,
                change: &write.change,
                entries: &write.entries,
                bumps: &write.bumps,
                volumes: &[],
                waits: &write.waits,
            };
            match self.store.update_change(update).await {
                Ok(()) => {
                    tick.taken.extend(write.nudged.into_iter().map(|n| Taken {
                        tenant: change.tenant.clone(),
                        change_id: change.id,
                        kind: n.nudge.kind,
                        number: n.nudge.number,
                        step: n.step,
                        to: n.nudge.to,
                        due_at: n.nudge.due_at,
                    }));
                    tick.starting_soon.extend(write.reminded.into_iter().map(|r| StartingSoon {
                        tenant: change.tenant.clone(),
                        change_id: change.id,
                        planned_start: r.planned_start,
                        due_at: r.due_at,
                        late: r.late(),
                    }));
                    tick.baked.extend(write.baked.then_some(change.id));
                    return Ok(());
                }
                Err(StoreError::VersionConflict { .. }) => {
                    match self.store.get_change(&change.tenant, &change.id).await? {
                        Some(current) => change = current,
                        None => return Ok(()),
                    }
                }
                Err(StoreError::NotFound) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(change_id = %change.id, "escalation kept conflicting; the next tick takes it");
        tick.deferred += 1;
        Ok(())
    }
}

/// Who a breach (or a tenant-wide freeze) goes to: the tenant's CAB groups, else its admins.
pub fn cab_of(catalog: &Catalog) -> String {
    let groups = catalog.cab_groups();
    if groups.is_empty() { "cab (the catalog names no cab or admin group)".to_owned() } else { groups.join(", ") }
}

/// The write that takes a change's due steps: the record after it, one
/// audit entry per step, the steps, the escalations and breaches they add
/// to the approval-wait counters, and the "starting soon" reminder taken.
struct Nudges {
    change: Change,
    entries: Vec<AuditEntry>,
    nudged: Vec<Nudged>,
    waits: Vec<WaitBump>,
    reminded: Vec<Reminded>,
    /// The outcome counters a bake that ended adds to.
    bumps: Vec<Bump>,
    /// Whether the change completed because its bake ended.
    baked: bool,
}

impl Nudges {
    /// The steps (or the reminder) of `change` due by `now`, if any are.
    fn of(
        change: &Change,
        now: DateTime<Utc>,
        cab: &str,
        catalog: &Catalog,
        delegations: &[Delegation],
    ) -> Option<Nudges> {
        let due = match (&change.approval, change.state) {
            (Some(plan), ChangeState::Submitted) => plan.nudges_due(now),
            _ => vec![],
        };
        let mut write = Nudges {
            change: change.clone(),
            entries: vec![],
            nudged: vec![],
            waits: vec![],
            reminded: vec![],
            bumps: vec![],
            baked: false,
        };
        for i in due {
            let mut next = write.change.revised(now);
            let seq = next.version;
            let Some(nudged) = next.approval.as_mut().and_then(|p| p.nudge(i, now, cab, seq, delegations)) else {
                continue;
            };
            let counted = match nudged.nudge.kind {
                NudgeKind::Reminder => None,
                NudgeKind::Escalation => Some(false),
                NudgeKind::Breach => Some(true),
            };
            if let (Some(breach), Some(step)) = (counted, next.approval.as_ref().and_then(|p| p.steps.get(i))) {
                write.waits.extend(nudge_waits(change, step, breach, catalog, now));
            }
            let action = match nudged.nudge.kind {
                NudgeKind::Reminder => AuditAction::ApprovalReminded,
                NudgeKind::Escalation => AuditAction::ApprovalEscalated,
                NudgeKind::Breach => AuditAction::ApprovalSlaBreached,
            };
            let (next, entry) = audit::record(Some(&write.change), next, SYSTEM_ACTOR, action, Some(nudged.reason()));
            write.change = next;
            write.entries.push(entry);
            write.nudged.push(nudged);
        }
        let mut next = write.change.revised(now);
        if let Some(reminded) = next.take_starting_soon(now, next.version) {
            let action = AuditAction::ChangeStartingSoon;
            let (next, entry) = audit::record(Some(&write.change), next, SYSTEM_ACTOR, action, Some(reminded.reason()));
            write.change = next;
            write.entries.push(entry);
            write.reminded.push(reminded);
        }
        if let Some((next, reason)) = write.change.bake_ended(now) {
            let ended = next.implementation.and_then(|i| i.ended_at()).unwrap_or(now);
            write.bumps = outcome_bumps(&write.change, ChangeState::Completed, ended);
            let (next, entry) =
                audit::record(Some(&write.change), next, SYSTEM_ACTOR, AuditAction::Transitioned, Some(reason));
            write.change = next;
            write.entries.push(entry);
            write.baked = true;
        }
        (!write.entries.is_empty()).then_some(write)
    }
}
