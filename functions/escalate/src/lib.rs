//! The escalate Lambda's shape: the schedule's input in (its context
//! attributes, for the log), one tick's tally out. The use case is
//! [`Escalator`].

use changehub::app::escalation::{EscalationError, Escalator};
use changehub::ports::{CatalogReader, ChangeReader, ChangeWriter, Clock, DueIndex, TenantDocs};

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
}

/// Runs one tick. A store failure is an error, so the invocation is retried
/// and, in the end, sent to the failed-invocations queue; the steps taken
/// before it stay taken (each was its own write), and the retry takes the rest.
pub async fn handle<S, K, C>(escalator: &Escalator<S, K, C>, event: &Scheduled) -> Result<Summary, EscalationError>
where
    S: DueIndex + ChangeReader + ChangeWriter + TenantDocs,
    K: CatalogReader,
    C: Clock,
{
    use changehub::domain::escalation::NudgeKind;
    let tick = escalator.tick().await?;
    let count = |kind| tick.taken.iter().filter(|t| t.kind == kind).count();
    let summary = Summary {
        read: tick.read,
        reminders: count(NudgeKind::Reminder),
        escalations: count(NudgeKind::Escalation),
        breaches: count(NudgeKind::Breach),
        starting_soon: tick.starting_soon.len(),
        already_taken: tick.already_taken,
        deferred: tick.deferred,
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
        "escalation tick"
    );
    Ok(summary)
}
