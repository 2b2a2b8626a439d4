//! Chasing an approval that waits. Each open step of the current level
//! follows its level's cadence, counted from when the level opened (its
//! `due_at` less its SLA), never from when a tick runs: reminders to the
//! approvers at shares of the SLA, then escalations to the level's
//! `escalate_to` from the deadline on, one every period, and once those are
//! exhausted the breach, which goes to the tenant's CAB and marks the plan
//! SLA-breached. A late tick takes only the latest step due, once: missed
//! steps collapse into it rather than going out as a burst.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::approval::{ApprovalPlan, Step, StepRef};
use super::catalog::Span;
use super::delegation::Delegation;

/// Escalations a level makes, by default, before its breach.
pub const DEFAULT_MAX_ESCALATIONS: u32 = 2;
/// The most escalations a catalog may ask of a level.
pub const MAX_ESCALATIONS: u32 = 10;
/// The most reminders a level may have.
pub const MAX_REMINDERS: usize = 5;

/// A share of a level's SLA, written `50%` (1 to 99: the deadline itself is the first escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(u8);

impl Percent {
    pub fn parse(s: &str) -> Result<Percent, String> {
        let refused = || format!("{s:?} is not a share of the SLA such as 50%: write 1% to 99%");
        let n: u8 = s.trim().strip_suffix('%').and_then(|n| n.trim_end().parse().ok()).ok_or_else(refused)?;
        if (1..=99).contains(&n) { Ok(Percent(n)) } else { Err(refused()) }
    }

    /// `share` of `d`.
    fn of(self, d: Duration) -> Duration {
        d * i32::from(self.0) / 100
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Percent::parse(&raw).map_err(serde::de::Error::custom)
    }
}

pub fn default_reminders() -> Vec<Percent> {
    vec![Percent(50)]
}

pub fn default_max_escalations() -> u32 {
    DEFAULT_MAX_ESCALATIONS
}

pub fn are_default_reminders(r: &[Percent]) -> bool {
    r == default_reminders().as_slice()
}

pub fn is_default_max_escalations(n: &u32) -> bool {
    *n == DEFAULT_MAX_ESCALATIONS
}

/// How a level is chased, copied from the catalog onto each step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    /// Reminders to the approvers, as shares of the SLA, in order.
    #[serde(default = "default_reminders", skip_serializing_if = "are_default_reminders")]
    pub reminders: Vec<Percent>,
    /// The period between escalations; the SLA when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_every: Option<Span>,
    /// Escalations to `escalate_to` (the first at the deadline) before the breach.
    #[serde(default = "default_max_escalations", skip_serializing_if = "is_default_max_escalations")]
    pub max_escalations: u32,
}

impl Cadence {
    pub fn is_default(&self) -> bool {
        *self == Cadence::default()
    }
}

impl Default for Cadence {
    fn default() -> Self {
        Self { reminders: default_reminders(), escalate_every: None, max_escalations: DEFAULT_MAX_ESCALATIONS }
    }
}

/// What a step of the cadence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NudgeKind {
    /// The approvers are reminded before the deadline.
    Reminder,
    /// The level's `escalate_to` is told the level is overdue.
    Escalation,
    /// The escalations are exhausted: the CAB is told, the plan is SLA-breached.
    Breach,
}

/// One step of a cadence: what, which of its kind (from 1), and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CadenceStep {
    pub kind: NudgeKind,
    pub number: u32,
    pub at: DateTime<Utc>,
}

impl Cadence {
    /// Steps in all: the reminders, the escalations, the breach.
    fn len(&self) -> u32 {
        self.reminders.len() as u32 + self.max_escalations + 1
    }

    /// Step `i` (from 0) of a level of `sla` that opened at `opened`, if the cadence has one.
    pub fn step(&self, i: u32, opened: DateTime<Utc>, sla: Duration) -> Option<CadenceStep> {
        let every = self.escalate_every.as_ref().map_or(sla, Span::chrono);
        let reminders = self.reminders.len() as u32;
        let after = |periods: u32| sla.checked_add(&every.checked_mul(periods as i32)?);
        let (kind, number, offset) = if i < reminders {
            (NudgeKind::Reminder, i + 1, self.reminders.get(i as usize)?.of(sla))
        } else if i < reminders + self.max_escalations {
            let k = i - reminders;
            (NudgeKind::Escalation, k + 1, after(k)?)
        } else if i == reminders + self.max_escalations {
            (NudgeKind::Breach, 1, after(self.max_escalations)?)
        } else {
            return None;
        };
        Some(CadenceStep { kind, number, at: opened.checked_add_signed(offset)? })
    }

    /// The latest step from step `from` on that is due by `now`, with its
    /// index: the one to take, the missed ones before it collapsing into it.
    pub fn due(
        &self,
        from: u32,
        opened: DateTime<Utc>,
        sla: Duration,
        now: DateTime<Utc>,
    ) -> Option<(u32, CadenceStep)> {
        (from..self.len()).map_while(|i| self.step(i, opened, sla).filter(|s| s.at <= now).map(|s| (i, s))).last()
    }
}

/// Who a nudge goes to: approvers, escalate_to or cab. The words and
/// channels per audience are routing's concern.
pub use super::routing::Audience;

/// A cadence step taken: recorded on the step, and by the audit entry numbered `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nudge {
    pub kind: NudgeKind,
    pub number: u32,
    /// When it was due, by the level's own times.
    pub due_at: DateTime<Utc>,
    /// When it was taken.
    pub at: DateTime<Utc>,
    pub audience: Audience,
    /// The audience by name: groups, people, the escalation target.
    pub to: String,
    /// The delegates deciding the step for one of its approvers when it was
    /// taken (`dave@example.com for carol@example.com`): a reminder reaches
    /// them too, an escalation says whom else to chase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<String>,
    /// The audit entry (the change's version) that recorded it.
    pub seq: u64,
}

/// Where a step stands in its cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Steps of the cadence taken or passed over (the next one's index).
    pub taken: u32,
    /// When the next step is due; absent once the breach was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<DateTime<Utc>>,
    /// Escalations so far on this step.
    pub escalations: u32,
    /// The latest step taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Nudge>,
}

impl Step {
    /// When the step's level opened: its deadline less its SLA.
    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.due_at.and_then(|d| d.checked_sub_signed(self.sla.chrono()))
    }

    fn taken(&self) -> u32 {
        self.escalation.as_ref().map_or(0, |e| e.taken)
    }

    /// When the step's next cadence step is due: none unless it is open and
    /// waiting, or once every step was taken.
    pub fn next_nudge_at(&self) -> Option<DateTime<Utc>> {
        if self.is_complete() {
            return None;
        }
        self.cadence.step(self.taken(), self.opened_at()?, self.sla.chrono()).map(|s| s.at)
    }

    /// The step's cadence from its start, as its level opens.
    pub(super) fn start_cadence(&mut self) {
        self.escalation = None;
        let next_at = self.next_nudge_at();
        self.escalation = Some(Escalation { taken: 0, next_at, escalations: 0, last: None });
    }

    /// Who the approvers are, by name.
    fn approvers_named(&self) -> String {
        if self.is_peer_review() {
            return "anyone but the requester (peer review)".into();
        }
        self.groups.iter().chain(&self.users).cloned().collect::<Vec<_>>().join(", ")
    }

    /// The delegates of `delegations` (those in force) who decide this step
    /// for one of its approvers, each as `delegate for delegator`.
    fn delegates(&self, delegations: &[Delegation]) -> Vec<String> {
        delegations
            .iter()
            .filter(|d| d.levels.contains(&self.name) && d.groups.iter().any(|g| self.groups.contains(g)))
            .map(|d| format!("{} for {}", d.delegate, d.delegator))
            .collect()
    }

    /// Takes the latest cadence step due by `now`, if one is, recording it
    /// as the audit entry `seq`; `cab` names the breach's audience, and
    /// `delegations` (those in force) the approvers' delegates.
    fn nudge(&mut self, now: DateTime<Utc>, cab: &str, seq: u64, delegations: &[Delegation]) -> Option<Nudge> {
        if self.is_complete() {
            return None;
        }
        let (i, due) = self.cadence.due(self.taken(), self.opened_at()?, self.sla.chrono(), now)?;
        let (audience, to) = match due.kind {
            NudgeKind::Reminder => (Audience::Approvers, self.approvers_named()),
            NudgeKind::Escalation => (Audience::EscalateTo, self.escalate_to.clone()),
            NudgeKind::Breach => (Audience::Cab, cab.to_owned()),
        };
        let delegates = self.delegates(delegations);
        let nudge = Nudge { kind: due.kind, number: due.number, due_at: due.at, at: now, audience, to, delegates, seq };
        let escalations = match due.kind {
            NudgeKind::Reminder => self.escalation.as_ref().map_or(0, |e| e.escalations),
            NudgeKind::Escalation => due.number,
            NudgeKind::Breach => self.cadence.max_escalations,
        };
        self.escalation = Some(Escalation { taken: i + 1, next_at: None, escalations, last: Some(nudge.clone()) });
        let next_at = self.next_nudge_at();
        if let Some(e) = self.escalation.as_mut() {
            e.next_at = next_at;
        }
        Some(nudge)
    }
}

/// A nudge taken on a plan, with the step it was taken on.
#[derive(Debug, Clone, PartialEq)]
pub struct Nudged {
    pub step: String,
    pub nudge: Nudge,
    pub sla: Span,
}

impl Nudged {
    /// The audit entry's reason: what was due, since when, and who is told.
    pub fn reason(&self) -> String {
        let n = &self.nudge;
        let what = match n.kind {
            NudgeKind::Reminder => format!("reminder {}", n.number),
            NudgeKind::Escalation => format!("escalation {}", n.number),
            NudgeKind::Breach => "SLA breached, escalations exhausted".to_owned(),
        };
        let due = n.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let delegates = match n.delegates.as_slice() {
            [] => String::new(),
            names => format!("; delegates deciding for its approvers: {}", names.join(", ")),
        };
        format!(
            "{what}: {} waits for a decision (SLA {}), step due {due}; told {}: {}{delegates}",
            self.step,
            self.sla,
            n.audience.as_str(),
            n.to
        )
    }
}

impl ApprovalPlan {
    /// When the current level's next cadence step is due: what the due index holds.
    pub fn next_nudge_at(&self) -> Option<DateTime<Utc>> {
        let level = self.current_level()?;
        self.steps.iter().filter(|s| s.level == level).filter_map(Step::next_nudge_at).min()
    }

    /// The steps of the current level with a cadence step due by `now`, by index.
    pub fn nudges_due(&self, now: DateTime<Utc>) -> Vec<usize> {
        let Some(level) = self.current_level() else { return vec![] };
        let due = |s: &Step| s.level == level && s.next_nudge_at().is_some_and(|at| at <= now);
        self.steps.iter().enumerate().filter(|(_, s)| due(s)).map(|(i, _)| i).collect()
    }

    /// Takes step `i`'s latest cadence step due by `now`, recorded by the
    /// audit entry `seq`, naming the delegates of `delegations` (those in
    /// force) who decide it; a breach marks the plan SLA-breached.
    pub fn nudge(
        &mut self,
        i: usize,
        now: DateTime<Utc>,
        cab: &str,
        seq: u64,
        delegations: &[Delegation],
    ) -> Option<Nudged> {
        let step = self.steps.get_mut(i)?;
        let nudge = step.nudge(now, cab, seq, delegations)?;
        if nudge.kind == NudgeKind::Breach {
            self.sla_breached = true;
        }
        Some(Nudged { step: StepRef::of(step).to_string(), nudge, sla: step.sla.clone() })
    }

    /// The nudge the audit entry `seq` recorded, if it recorded one.
    pub fn nudge_recorded_by(&self, seq: u64) -> Option<&Nudge> {
        self.steps.iter().filter_map(|s| s.escalation.as_ref()?.last.as_ref()).find(|n| n.seq == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
    }

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    fn cadence(reminders: &[u8], every: Option<u64>, max: u32) -> Cadence {
        Cadence {
            reminders: reminders.iter().map(|p| Percent(*p)).collect(),
            escalate_every: every.map(|s| Span::new(std::time::Duration::from_secs(s))),
            max_escalations: max,
        }
    }

    fn steps(c: &Cadence, sla: i64) -> Vec<(NudgeKind, u32, i64)> {
        (0..20)
            .map_while(|i| c.step(i, t0(), secs(sla)))
            .map(|s| (s.kind, s.number, (s.at - t0()).num_seconds()))
            .collect()
    }

    #[test]
    fn the_default_cadence_reminds_at_half_escalates_from_the_deadline_every_sla_then_breaches() {
        use NudgeKind::*;
        assert_eq!(
            steps(&Cadence::default(), 20),
            [(Reminder, 1, 10), (Escalation, 1, 20), (Escalation, 2, 40), (Breach, 1, 60)]
        );
    }

    #[test]
    fn a_level_sets_its_reminders_period_and_escalations() {
        use NudgeKind::*;
        let c = cadence(&[25, 75], Some(300), 3);
        assert_eq!(
            steps(&c, 600),
            [
                (Reminder, 1, 150),
                (Reminder, 2, 450),
                (Escalation, 1, 600),
                (Escalation, 2, 900),
                (Escalation, 3, 1200),
                (Breach, 1, 1500)
            ]
        );
        assert_eq!(
            steps(&cadence(&[], None, 0), 60),
            [(Breach, 1, 60)],
            "no reminders, no escalations: the breach at the deadline"
        );
    }

    #[test]
    fn a_late_tick_takes_the_latest_step_due_once() {
        let c = Cadence::default();
        assert_eq!(c.due(0, t0(), secs(20), t0() + secs(9)), None, "nothing due yet");
        assert_eq!(c.due(0, t0(), secs(20), t0() + secs(10)).map(|(i, _)| i), Some(0));
        let (i, step) = c.due(0, t0(), secs(20), t0() + secs(45)).expect("due");
        assert_eq!(
            (i, step.kind, step.number),
            (2, NudgeKind::Escalation, 2),
            "reminder and first escalation collapse"
        );
        assert_eq!(c.due(3, t0(), secs(20), t0() + secs(59)), None, "taken up to the second escalation");
        assert_eq!(c.due(4, t0(), secs(20), t0() + secs(600)), None, "every step taken");
    }

    #[test]
    fn shares_of_the_sla_are_written_as_percentages_below_the_deadline() {
        assert_eq!(Percent::parse("50%"), Ok(Percent(50)));
        assert_eq!(Percent::parse(" 5 %"), Ok(Percent(5)));
        for bad in ["0%", "100%", "50", "half", "-5%"] {
            assert!(Percent::parse(bad).expect_err(bad).contains("write 1% to 99%"), "{bad}");
        }
        assert_eq!(serde_json::to_value(Percent(50)).ok(), Some(serde_json::json!("50%")));
    }
}
