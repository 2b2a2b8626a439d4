//! The escalate Lambda's shape: the schedule's input in (its context
//! attributes, for the log), one tick's tally out. The use cases are
//! [`Escalator`] (approvals and "starting soon") and [`FreezeTicker`]
//! ("freeze starting").

use changehub::app::escalation::{EscalationError, Escalator};
use changehub::app::freeze_starting::{FreezeTickError, FreezeTicker};
use changehub::app::protection::{ProtectionTickError, ProtectionTicker};
use changehub::ports::{
    CatalogReader, ChangeReader, ChangeWriter, Clock, Dedupe, DueIndex, EventBus, FreezesDue, Notifier,
    ProtectionStore, TenantDocs,
};

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Escalation(#[from] EscalationError),
    #[error(transparent)]
    Freezes(#[from] FreezeTickError),
    #[error(transparent)]
    Protections(#[from] ProtectionTickError),
}

/// What the schedule sends (its `Input`, with EventBridge Scheduler's
/// context attributes filled in). Every field is optional: a tick needs none.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Scheduled {
    #[serde(default)]
    pub schedule_arn: Option<String>,
    /// When the schedule meant to run; the tick decides by the changes' own times.
    #[serde(default)]
    pub scheduled_time: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub attempt: Option<String>,
}

/// One tick, as the invocation answers it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Due approvals and reminders read from the index.
    pub read: usize,
    pub reminders: usize,
    pub escalations: usize,
    pub breaches: usize,
    /// "Starting soon" reminders of scheduled changes sent.
    pub starting_soon: usize,
    /// Changes another tick took first, or decided meanwhile.
    pub already_taken: usize,
    /// Changes left to the next tick after repeated conflicts.
    pub deferred: usize,
    /// Freezes documents due for a "freeze starting" notice, read from the index.
    pub freezes_read: usize,
    /// "Freeze starting" notices sent.
    pub freeze_starting: usize,
    /// Notices skipped because their freeze had started (a late tick).
    pub freeze_late: usize,
    /// Deployment protection rule requests whose time came (a recheck, a
    /// time-out, a redelivery), handed to the scm function on the hub bus.
    pub gate_requests_due: usize,
}

/// Runs one tick: approvals and reminders, then freezes. A store failure
/// is an error, so the invocation is retried and, in the end, sent to the
/// failed-invocations queue; the steps taken before it stay taken (each was
/// its own write), and the retry takes the rest.
pub async fn handle<S, K, C, B, N>(
    escalator: &Escalator<S, K, C>,
    freezes: &FreezeTicker<S, K, C, B, N>,
    protections: &ProtectionTicker<S, B, C>,
    event: &Scheduled,
) -> Result<Summary, TickError>
where
    S: DueIndex + ChangeReader + ChangeWriter + TenantDocs + FreezesDue + Dedupe + ProtectionStore,
    K: CatalogReader,
    C: Clock,
    B: EventBus,
    N: Notifier,
{
    use changehub::domain::escalation::NudgeKind;
    let tick = escalator.tick().await?;
    let frozen = freezes.tick().await?;
    let gates = protections.tick().await?;
    let count = |kind| tick.taken.iter().filter(|t| t.kind == kind).count();
    let summary = Summary {
        read: tick.read,
        reminders: count(NudgeKind::Reminder),
        escalations: count(NudgeKind::Escalation),
        breaches: count(NudgeKind::Breach),
        starting_soon: tick.starting_soon.len(),
        already_taken: tick.already_taken + frozen.already_taken,
        deferred: tick.deferred + frozen.deferred,
        freezes_read: frozen.read,
        freeze_starting: frozen.sent(),
        freeze_late: frozen.late(),
        gate_requests_due: gates.due.len(),
    };
    tracing::info!(
        scheduled_time = event.scheduled_time.as_deref().unwrap_or_default(),
        read = summary.read,
        reminders = summary.reminders,
        escalations = summary.escalations,
        breaches = summary.breaches,
        starting_soon = summary.starting_soon,
        already_taken = summary.already_taken,
        deferred = summary.deferred,
        freezes_read = summary.freezes_read,
        freeze_starting = summary.freeze_starting,
        freeze_late = summary.freeze_late,
        gate_requests_due = summary.gate_requests_due,
        "escalation tick"
    );
    Ok(summary)
}
