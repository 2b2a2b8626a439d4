//! "Starting soon": a scheduled change's reminder, due the catalog's lead
//! (`changes.starting_soon`, default 1h) before its planned start. It is
//! armed when the change is scheduled, armed again when its planned start
//! moves, and taken once by the escalation tick, which records it on the
//! change (so it is not due again) with the audit entry that announces it.
//! It is due only while the change is scheduled: cancelling it or starting
//! its implementation takes it off the due index in the same write.
//!
//! A tick that comes after the planned start (the hub was down) still takes
//! the reminder once, and says so: the change was planned to start N min ago
//! and has not started. Never once it started: it is no longer scheduled.
//!
//! "Freeze starting": each freeze window's next occurrence is told the same
//! lead before it starts ([`FreezeNotices`], kept in the tenant's freezes
//! document, whose earliest notice is its due entry). A tick that comes after
//! the occurrence started skips it: the freeze is in force, the gates already
//! refuse changes, and "a freeze starts" would be stale.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::Span;
use super::change::{Change, ChangeState};
use super::freeze::{FreezeWindow, Occurrence};

/// A scheduled change's "starting soon" reminder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartingSoon {
    /// When it is due: the planned start less the lead.
    pub due_at: DateTime<Utc>,
    /// How long before the planned start people are told.
    pub lead: Span,
    /// When a tick took it; absent while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
}

/// A reminder taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub at: DateTime<Utc>,
    /// The audit entry (the change's version) that recorded it.
    pub seq: u64,
}

impl StartingSoon {
    /// The reminder of a change planned to start at `start`, `lead` ahead; none when the lead is zero (off).
    pub fn arm(start: DateTime<Utc>, lead: &Span) -> Option<StartingSoon> {
        if lead.0.is_zero() {
            return None;
        }
        let due_at = start.checked_sub_signed(lead.chrono()).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Some(StartingSoon { due_at, lead: lead.clone(), sent: None })
    }
}

/// A reminder taken by a tick, as the tick reports it and the audit entry explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminded {
    pub planned_start: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl Reminded {
    /// Whether the tick came after the planned start.
    pub fn late(&self) -> bool {
        self.at >= self.planned_start
    }

    /// The audit entry's reason: when the change starts, relative to the tick.
    pub fn reason(&self) -> String {
        let start = self.planned_start.to_rfc3339_opts(SecondsFormat::Secs, true);
        let due = self.due_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        if self.late() {
            let ago = Span::new((self.at - self.planned_start).to_std().unwrap_or_default()).for_people();
            format!("planned to start at {start}, {ago} ago, and not started yet (reminder due {due})")
        } else {
            let until = Span::new((self.planned_start - self.at).to_std().unwrap_or_default()).for_people();
            format!("starts at {start}, in {until} (reminder due {due})")
        }
    }
}

impl Change {
    /// Arms the "starting soon" reminder `lead` before the planned start, as
    /// the change is scheduled; a zero lead turns it off.
    pub fn arm_starting_soon(&mut self, lead: &Span) {
        self.starting_soon = StartingSoon::arm(self.planned_start, lead);
    }

    /// Moves the planned start to `start` and, once scheduled, arms the
    /// reminder again `lead` before it: a reminder already sent goes out
    /// again before the new start. A window moved without moving its start
    /// keeps its reminder as it was.
    pub fn reschedule_start(&mut self, start: DateTime<Utc>, lead: &Span) {
        if start == self.planned_start {
            return;
        }
        self.planned_start = start;
        if self.state == ChangeState::Scheduled {
            self.arm_starting_soon(lead);
        }
    }

    /// When the reminder is due: while the change is scheduled and it was not sent.
    pub fn starting_soon_at(&self) -> Option<DateTime<Utc>> {
        let soon = self.starting_soon.as_ref().filter(|s| s.sent.is_none())?;
        (self.state == ChangeState::Scheduled).then_some(soon.due_at)
    }

    /// Takes the reminder if it is due by `now`, recording it as the audit entry `seq`.
    pub fn take_starting_soon(&mut self, now: DateTime<Utc>, seq: u64) -> Option<Reminded> {
        let due_at = self.starting_soon_at().filter(|at| *at <= now)?;
        let soon = self.starting_soon.as_mut()?;
        soon.sent = Some(Sent { at: now, seq });
        Some(Reminded { planned_start: self.planned_start, due_at, at: now })
    }
}

/// A freeze window's occurrence, and when its "freeze starting" notice is
/// due: the lead before it starts. What a freezes document's due entry holds
/// for each window (re-armed to the window's next occurrence once taken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeStart {
    /// The window's id.
    pub window: String,
    pub occurrence: Occurrence,
    pub due_at: DateTime<Utc>,
}

/// The next "freeze starting" notice of each window: for its first
/// occurrence starting after `after` (a recurring window's next one),
/// `lead` before it; earliest due first. None with a zero lead.
pub fn next_freeze_starts(windows: &[FreezeWindow], lead: &Span, after: DateTime<Utc>) -> Vec<FreezeStart> {
    if lead.0.is_zero() {
        return vec![];
    }
    let mut starts: Vec<FreezeStart> = windows
        .iter()
        .filter_map(|w| {
            let mut occurrence = w.next_occurrence(after)?;
            if occurrence.start <= after {
                // In force at `after` (or just taken): the one after it.
                occurrence = w.next_occurrence(occurrence.end).filter(|o| o.start > after)?;
            }
            let due_at = occurrence.start.checked_sub_signed(lead.chrono()).unwrap_or(DateTime::<Utc>::MIN_UTC);
            Some(FreezeStart { window: w.id.clone(), occurrence, due_at })
        })
        .collect();
    starts.sort_by(|a, b| (a.due_at, &a.window).cmp(&(b.due_at, &b.window)));
    starts
}

/// The "freeze starting" notices of a tenant's windows, as its freezes
/// document keeps them: each window's next notice, and the occurrence each
/// window was last told of (so that saving the document again, or a second
/// tick, never tells one twice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeNotices {
    /// Each window's next notice, earliest due first; the first is the document's due entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<FreezeStart>,
    /// By window id, the start of the occurrence last taken (told, or skipped as late).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub taken: BTreeMap<String, DateTime<Utc>>,
}

/// The notices a tick took: those to send (the window has not started) and
/// those skipped because it had (the tick came late).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreezeNoticesTaken {
    pub send: Vec<FreezeStart>,
    pub late: Vec<FreezeStart>,
}

impl FreezeNotices {
    /// When the next notice is due, if one is.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.next.first().map(|s| s.due_at)
    }

    /// Arms each window's next notice `lead` before its next occurrence
    /// that starts after `now` and was not taken yet: what saving the
    /// document does (a lifted window's notice goes with it) and what a tick
    /// does once it took the due ones. A zero lead arms none.
    pub fn arm(&mut self, windows: &[FreezeWindow], lead: &Span, now: DateTime<Utc>) {
        self.taken.retain(|id, _| windows.iter().any(|w| &w.id == id));
        let first =
            |w: &FreezeWindow, after| next_freeze_starts(std::slice::from_ref(w), lead, after).into_iter().next();
        let mut next: Vec<FreezeStart> = windows
            .iter()
            .filter_map(|w| {
                let start = first(w, now)?;
                match self.taken.get(&w.id) {
                    Some(taken) if *taken == start.occurrence.start => first(w, start.occurrence.start),
                    _ => Some(start),
                }
            })
            .collect();
        next.sort_by(|a, b| (a.due_at, &a.window).cmp(&(b.due_at, &b.window)));
        self.next = next;
    }

    /// Takes the notices due by `now` and arms the next ones: none when
    /// nothing is due (another tick took them). A notice whose occurrence
    /// already started is skipped as late, never sent.
    pub fn take(&mut self, windows: &[FreezeWindow], lead: &Span, now: DateTime<Utc>) -> Option<FreezeNoticesTaken> {
        let due: Vec<FreezeStart> = self.next.iter().filter(|s| s.due_at <= now).cloned().collect();
        if due.is_empty() {
            return None;
        }
        for s in &due {
            self.taken.insert(s.window.clone(), s.occurrence.start);
        }
        let (send, late) = due.into_iter().partition(|s| s.occurrence.start > now);
        self.arm(windows, lead, now);
        Some(FreezeNoticesTaken { send, late })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::Due;
    use crate::domain::change::PostReview;
    use crate::domain::new_change::NewChange;
    use crate::domain::{ChangeId, TenantId};
    use chrono::{Duration, TimeZone};

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default() + Duration::minutes(min)
    }

    fn lead(text: &str) -> Span {
        Span::parse(text).expect("span")
    }

    /// A change planned for 10:00, scheduled at 08:00 with a one-hour lead.
    fn scheduled() -> Change {
        let mut c = NewChange::basic("Upgrade payments DB", &["payments"], "production", t(60), t(120))
            .validate()
            .expect("valid")
            .into_draft(ChangeId::new(), TenantId::parse("acme").expect("tenant"), "alice".into(), t(-120));
        for to in [ChangeState::Submitted, ChangeState::Approved, ChangeState::Scheduled] {
            c = c.transition(to, t(-60)).expect("legal");
        }
        c.arm_starting_soon(&lead("1h"));
        c
    }

    #[test]
    fn a_scheduled_change_is_due_its_lead_before_its_planned_start() {
        let c = scheduled();
        assert_eq!(c.starting_soon_at(), Some(t(0)));
        assert_eq!(c.due(), Some(Due::StartingSoon(t(0))));
        let mut quick = c.clone();
        quick.arm_starting_soon(&lead("5m"));
        assert_eq!(quick.starting_soon_at(), Some(t(55)));
    }

    #[test]
    fn a_zero_lead_turns_the_reminder_off() {
        let mut c = scheduled();
        c.arm_starting_soon(&Span::new(std::time::Duration::ZERO));
        assert_eq!((c.starting_soon.as_ref(), c.due()), (None, None));
    }

    #[test]
    fn the_reminder_is_taken_once_when_due() {
        let mut c = scheduled();
        assert_eq!(c.take_starting_soon(t(-1), 5), None, "not due yet");
        let reminded = c.take_starting_soon(t(1), 5).expect("due");
        assert_eq!(reminded, Reminded { planned_start: t(60), due_at: t(0), at: t(1) });
        assert_eq!(reminded.reason(), "starts at 2026-12-01T10:00:00Z, in 59 min (reminder due 2026-12-01T09:00:00Z)");
        assert_eq!(c.starting_soon.as_ref().and_then(|s| s.sent.clone()), Some(Sent { at: t(1), seq: 5 }));
        assert_eq!((c.due(), c.take_starting_soon(t(2), 6)), (None, None), "sent: due no more");
    }

    #[test]
    fn a_late_tick_says_the_change_should_have_started() {
        let mut c = scheduled();
        let reminded = c.take_starting_soon(t(75), 5).expect("still due");
        assert!(reminded.late());
        assert_eq!(
            reminded.reason(),
            "planned to start at 2026-12-01T10:00:00Z, 15 min ago, and not started yet (reminder due 2026-12-01T09:00:00Z)"
        );
    }

    #[test]
    fn only_a_scheduled_change_waits_for_its_reminder() {
        for to in [ChangeState::Implementing, ChangeState::Cancelled] {
            let mut c = scheduled().transition(to, t(1)).expect("legal");
            assert_eq!((c.due(), c.take_starting_soon(t(2), 9)), (None, None), "{to}");
        }
    }

    #[test]
    fn moving_the_planned_start_arms_the_reminder_again() {
        let mut c = scheduled();
        c.take_starting_soon(t(1), 5).expect("sent");
        c.reschedule_start(t(60), &lead("1h"));
        assert_eq!(c.due(), None, "the same start: not sent again");
        c.reschedule_start(t(24 * 60), &lead("2h"));
        assert_eq!(c.planned_start, t(24 * 60));
        assert_eq!(
            c.due(),
            Some(Due::StartingSoon(t(22 * 60))),
            "a new start: a new reminder, the catalog's lead ahead"
        );
        let mut approved = scheduled();
        approved.state = ChangeState::Approved;
        approved.starting_soon = None;
        approved.reschedule_start(t(90), &lead("1h"));
        assert_eq!(approved.starting_soon, None, "armed when scheduled, not before");
    }

    #[test]
    fn an_open_review_keeps_its_due_entry_over_the_reminder() {
        let mut c = scheduled();
        c.review = Some(PostReview { due_at: t(48 * 60), done: None });
        assert_eq!(c.due(), Some(Due::Review(t(48 * 60))), "the pending-reviews report lists every open review");
    }

    fn window(id: &str, schedule: serde_json::Value) -> FreezeWindow {
        serde_json::from_value(serde_json::json!({"id": id, "name": id, "schedule": schedule})).expect("window")
    }

    #[test]
    fn each_window_is_due_its_lead_before_its_next_occurrence_starts() {
        // 2026-12-01 is a Tuesday; the freeze covers Saturdays and Sundays.
        let weekend = window("weekend", serde_json::json!({"kind": "weekly", "days": ["sat", "sun"]}));
        let once = window(
            "release",
            serde_json::json!({"kind": "one_off", "start": "2026-12-02T18:00:00Z", "end": "2026-12-03T06:00:00Z"}),
        );
        let starts = next_freeze_starts(&[weekend.clone(), once], &lead("1d"), t(0));
        let got: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> =
            starts.iter().map(|s| (s.window.as_str(), s.occurrence.start, s.due_at)).collect();
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        assert_eq!(
            got,
            [
                ("release", at("2026-12-02T18:00:00Z"), at("2026-12-01T18:00:00Z")),
                ("weekend", at("2026-12-05T00:00:00Z"), at("2026-12-04T00:00:00Z")),
            ]
        );
        let next = next_freeze_starts(std::slice::from_ref(&weekend), &lead("1d"), at("2026-12-05T00:00:00Z"));
        assert_eq!(next[0].occurrence.start, at("2026-12-12T00:00:00Z"), "taken: re-armed to the next occurrence");
        let in_force = next_freeze_starts(std::slice::from_ref(&weekend), &lead("1d"), at("2026-12-06T10:00:00Z"));
        assert_eq!(in_force[0].occurrence.start, at("2026-12-12T00:00:00Z"), "never the one already in force");
        assert!(next_freeze_starts(&[weekend], &Span::new(std::time::Duration::ZERO), t(0)).is_empty(), "off");
    }

    #[test]
    fn a_tenants_next_notice_is_the_earliest_over_its_windows_recurring_ones_included() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let weekend = window("weekend", serde_json::json!({"kind": "weekly", "days": ["sat", "sun"]}));
        let close = window(
            "close",
            serde_json::json!({"kind": "one_off", "start": "2026-12-04T12:00:00Z", "end": "2026-12-04T18:00:00Z"}),
        );
        let windows = [weekend, close];
        let mut notices = FreezeNotices::default();
        notices.arm(&windows, &lead("1h"), t(0));
        assert_eq!(notices.due_at(), Some(at("2026-12-04T11:00:00Z")), "the one-off comes first");
        assert_eq!(notices.next[1].due_at, at("2026-12-04T23:00:00Z"), "then Saturday's, an hour ahead");
        let mut off = FreezeNotices::default();
        off.arm(&windows, &Span::new(std::time::Duration::ZERO), t(0));
        assert_eq!(off.due_at(), None, "a zero lead arms nothing");
    }

    #[test]
    fn each_occurrence_is_taken_once_and_the_next_one_armed() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let windows = [window("weekend", serde_json::json!({"kind": "weekly", "days": ["sat", "sun"]}))];
        let mut notices = FreezeNotices::default();
        notices.arm(&windows, &lead("1h"), t(0));
        assert_eq!(notices.take(&windows, &lead("1h"), at("2026-12-04T22:00:00Z")), None, "not due yet");
        let taken = notices.take(&windows, &lead("1h"), at("2026-12-04T23:10:00Z")).expect("due");
        assert_eq!((taken.send.len(), taken.late.len()), (1, 0));
        assert_eq!(taken.send[0].occurrence.start, at("2026-12-05T00:00:00Z"));
        assert_eq!(notices.due_at(), Some(at("2026-12-11T23:00:00Z")), "re-armed to next Saturday");
        assert_eq!(notices.take(&windows, &lead("1h"), at("2026-12-04T23:20:00Z")), None, "taken: once");
        let mut saved = notices.clone();
        saved.arm(&windows, &lead("1h"), at("2026-12-04T23:30:00Z"));
        assert_eq!(saved.due_at(), Some(at("2026-12-11T23:00:00Z")), "saving again does not tell it twice");
        saved.arm(&[], &lead("1h"), at("2026-12-04T23:30:00Z"));
        assert_eq!(saved, FreezeNotices::default(), "a lifted window's notice goes");
    }

    #[test]
    fn a_late_tick_skips_an_occurrence_already_started() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let windows = [window("weekend", serde_json::json!({"kind": "weekly", "days": ["sat", "sun"]}))];
        let mut notices = FreezeNotices::default();
        notices.arm(&windows, &lead("1h"), t(0));
        let taken = notices.take(&windows, &lead("1h"), at("2026-12-05T02:00:00Z")).expect("due");
        assert_eq!((taken.send.len(), taken.late.len()), (0, 1), "started 2 h ago: not sent");
        assert_eq!(notices.due_at(), Some(at("2026-12-11T23:00:00Z")));
        let mut short = FreezeNotices::default();
        short.arm(&windows, &lead("1h"), at("2026-12-04T23:50:00Z"));
        let soon = short.take(&windows, &lead("1h"), at("2026-12-04T23:55:00Z")).expect("due");
        assert_eq!(soon.send.len(), 1, "declared within the lead: told at once, before it starts");
    }
}
