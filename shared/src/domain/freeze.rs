//! Freeze windows: periods in which changes must not be submitted or scheduled.
//!
//! A window covers the whole tenant (no services listed) or only the listed services, and is one-off or recurring:
//! the last business days of every month, or chosen weekdays every week.
//!
//! **Every time here is UTC.** Days, weekdays and times of day are UTC ones; a business day is a whole UTC day,
//! Monday to Friday (public holidays are not known).
//!
//! Occurrences are half-open, `[start, end)`. Recurring days that touch form one occurrence: the last two business
//! days of November 2026 (Friday the 27th and Monday the 30th) freeze 2026-11-27T00:00Z to 2026-12-01T00:00Z, the
//! weekend between them included, and a weekly Saturday-and-Sunday freeze runs from Saturday 00:00 to Monday 00:00.
//! A weekly freeze on all seven whole days is cut into weeks at Monday 00:00.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::ids::ServiceName;
use super::slug::Slug;
use super::validation::FieldError;

/// Longest freeze window id, in characters.
pub const MAX_ID_LEN: usize = Slug::MAX_LEN;
/// Longest freeze window name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 2000;
/// Most services one window may list; a wider freeze should cover the whole tenant.
pub const MAX_WINDOW_SERVICES: usize = 100;
/// Longest one-off freeze.
pub const MAX_ONE_OFF_DAYS: i64 = 366;
/// Most business days a month-end freeze may cover.
pub const MAX_MONTH_END_BUSINESS_DAYS: u8 = 10;

/// A freeze window as stored and as sent by an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// A [`Slug`] without `.`: 1 to 64 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
    pub id: String,
    /// Human name, 1 to 200 characters after trimming.
    pub name: String,
    /// Services frozen; empty freezes the whole tenant.
    #[serde(default)]
    pub services: Vec<ServiceName>,
    /// When the window is in force.
    pub schedule: Schedule,
    /// Why, shown to whoever is blocked; at most 2000 characters.
    #[serde(default)]
    pub reason: String,
}

/// When a freeze window is in force, in UTC. JSON: an object tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// One period, `[start, end)`.
    OneOff { start: DateTime<Utc>, end: DateTime<Utc> },
    /// The last `business_days` business days (Monday to Friday, whole UTC days) of every month, 1 to 10.
    MonthEnd { business_days: u8 },
    /// Every week on `days`, from `start` to `end` UTC time of day (default: the whole day). `end` is after `start`,
    /// so a window never runs past midnight into the next day.
    Weekly {
        days: Vec<Weekday>,
        #[serde(default)]
        start: TimeOfDay,
        #[serde(default = "TimeOfDay::end_of_day")]
        end: TimeOfDay,
    },
}

/// A day of the week; `"mon"` to `"sun"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A UTC time of day to the minute, `00:00` to `24:00` inclusive (`24:00` is the end of the day); `"HH:MM"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

/// One concrete period of a freeze window, half-open: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Occurrence {
    /// First instant frozen.
    pub start: DateTime<Utc>,
    /// First instant no longer frozen.
    pub end: DateTime<Utc>,
}

impl FreezeWindow {
    /// Checks every field; the error names the first bad one by JSON path (`id`, `schedule.end`, ...).
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_window_slug(&self.id) {
            return Err(FieldError::new(
                "id",
                format!(
                    "id must be 1 to {MAX_ID_LEN} of a-z, 0-9, '-', '_', starting with a letter or digit; got {:?}",
                    self.id
                ),
            ));
        }
        let name = self.name.trim();
        if name.is_empty() {
            return Err(FieldError::new("name", "name must not be empty"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new("name", format!("name must be at most {MAX_NAME_CHARS} characters")));
        }
        if self.services.len() > MAX_WINDOW_SERVICES {
            return Err(FieldError::new(
                "services",
                format!("at most {MAX_WINDOW_SERVICES} services per freeze window; leave services empty to freeze all"),
            ));
        }
        for (i, s) in self.services.iter().enumerate() {
            if self.services.get(..i).is_some_and(|before| before.contains(s)) {
                return Err(FieldError::new("services", format!("service {s:?} is listed twice")));
            }
        }
        if self.reason.chars().count() > MAX_REASON_CHARS {
            return Err(FieldError::new("reason", format!("reason must be at most {MAX_REASON_CHARS} characters")));
        }
        self.schedule.validate()
    }

    /// Whether the window covers a change to `services`: it is tenant-wide or lists one of them.
    pub fn applies_to(&self, services: &[ServiceName]) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| services.contains(s))
    }

    /// The earliest occurrence overlapping the change window `[start, end)`; `None` if there is none or the change
    /// window is empty. Looks at no more than a few days or months, whatever the window's length.
    pub fn first_overlap(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Occurrence> {
        if start >= end {
            return None;
        }
        self.schedule.first_ending_after(start).filter(|occ| occ.start < end)
    }

    /// The first occurrence ending after `after`: the one in force at `after`, or else the next one. Recurring
    /// schedules look at most two months ahead.
    pub fn next_occurrence(&self, after: DateTime<Utc>) -> Option<Occurrence> {
        self.schedule.first_ending_after(after)
    }

    /// One line for error messages, e.g. `freeze "Month-end close" (month-end-close): 2026-11-27T00:00:00Z to
    /// 2026-12-01T00:00:00Z; applies to all services`.
    pub fn describe(&self, occ: &Occurrence) -> String {
        let scope = if self.services.is_empty() {
            "all services".to_owned()
        } else {
            self.services.iter().map(ServiceName::as_str).collect::<Vec<_>>().join(", ")
        };
        format!("freeze {:?} ({}): {occ}; applies to {scope}", self.name.trim(), self.id)
    }
}

/// The window that blocks a change to `services` during `[start, end)`: among the windows that apply, the one whose
/// overlapping occurrence starts first (the earlier listed on a tie), with that occurrence.
pub fn blocking<'a>(
    windows: &'a [FreezeWindow],
    services: &[ServiceName],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Option<(&'a FreezeWindow, Occurrence)> {
    windows
        .iter()
        .filter(|w| w.applies_to(services))
        .filter_map(|w| w.first_overlap(start, end).map(|occ| (w, occ)))
        .min_by_key(|(_, occ)| occ.start)
}

impl Schedule {
    fn validate(&self) -> Result<(), FieldError> {
        match self {
            Schedule::OneOff { start, end } => {
                for (field, t) in [("schedule.start", start), ("schedule.end", end)] {
                    if !(2000..=9998).contains(&t.year()) {
                        return Err(FieldError::new(field, "time must be between the years 2000 and 9998"));
                    }
                }
                if end <= start {
                    return Err(FieldError::new("schedule.end", "end must be after start"));
                }
                if *end - *start > TimeDelta::days(MAX_ONE_OFF_DAYS) {
                    return Err(FieldError::new(
                        "schedule.end",
                        format!("a one-off freeze lasts at most {MAX_ONE_OFF_DAYS} days"),
                    ));
                }
            }
            Schedule::MonthEnd { business_days } => {
                if !(1..=MAX_MONTH_END_BUSINESS_DAYS).contains(business_days) {
                    return Err(FieldError::new(
                        "schedule.business_days",
                        format!("business_days must be 1 to {MAX_MONTH_END_BUSINESS_DAYS}"),
                    ));
                }
            }
            Schedule::Weekly { days, start, end } => {
                if days.is_empty() {
                    return Err(FieldError::new("schedule.days", "name at least one day"));
                }
                for (i, d) in days.iter().enumerate() {
                    if days.get(..i).is_some_and(|before| before.contains(d)) {
                        return Err(FieldError::new("schedule.days", format!("{} is listed twice", d.as_str())));
                    }
                }
                if *start >= TimeOfDay::END_OF_DAY {
                    return Err(FieldError::new("schedule.start", "start must be before 24:00"));
                }
                if end <= start {
                    return Err(FieldError::new(
                        "schedule.end",
                        "end must be after start (a weekly freeze cannot pass midnight; 24:00 ends the day)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The first occurrence whose end is after `t`. Occurrences never overlap, so this is also the earliest one that
    /// can overlap anything from `t` on.
    fn first_ending_after(&self, t: DateTime<Utc>) -> Option<Occurrence> {
        match self {
            Schedule::OneOff { start, end } => {
                (start < end && *end > t).then_some(Occurrence { start: *start, end: *end })
            }
            Schedule::MonthEnd { business_days } => {
                let (year, month) = (t.year(), t.month());
                if let Some(occ) = month_end_occurrence(year, month, *business_days)
                    && occ.end > t
                {
                    return Some(occ);
                }
                let (year, month) = if month == 12 { (year.checked_add(1)?, 1) } else { (year, month + 1) };
                month_end_occurrence(year, month, *business_days).filter(|occ| occ.end > t)
            }
            Schedule::Weekly { days, start, end } => {
                if end <= start {
                    return None;
                }
                // The occurrence holding `t`, if any, includes `t`'s day; otherwise the next one starts within a week.
                let mut day = t.date_naive();
                for _ in 0..8 {
                    if is_selected(days, day) {
                        let occ = weekly_occurrence(days, *start, *end, day);
                        if occ.end > t {
                            return Some(occ);
                        }
                    }
                    day = day.succ_opt()?;
                }
                None
            }
        }
    }
}

/// The month-end occurrence of `year`-`month`: from the `n`th-last business day 00:00 to the day after the last one.
fn month_end_occurrence(year: i32, month: u32, n: u8) -> Option<Occurrence> {
    let mut day = (28..=31).rev().find_map(|d| NaiveDate::from_ymd_opt(year, month, d))?;
    let mut last = None;
    let mut count = 0u8;
    for _ in 0..31 {
        if is_business_day(day) {
            let last = *last.get_or_insert(day);
            count = count.saturating_add(1);
            if count == n {
                return Some(Occurrence {
                    start: at(day, TimeOfDay::START_OF_DAY),
                    end: at(last, TimeOfDay::END_OF_DAY),
                });
            }
        }
        day = day.pred_opt().filter(|d| d.month() == month)?;
    }
    None
}

/// The weekly occurrence holding selected day `day`. Whole-day windows join neighbouring selected days into one
/// occurrence, cut at Monday 00:00 when all seven days are selected; other windows are one slot per day.
fn weekly_occurrence(days: &[Weekday], start: TimeOfDay, end: TimeOfDay, day: NaiveDate) -> Occurrence {
    if start != TimeOfDay::START_OF_DAY || end != TimeOfDay::END_OF_DAY {
        return Occurrence { start: at(day, start), end: at(day, end) };
    }
    let every_day = Weekday::ALL.iter().all(|w| days.contains(w));
    let joins = |d: NaiveDate| is_selected(days, d) && !(every_day && d.weekday() == chrono::Weekday::Mon);
    let mut first = day;
    for _ in 0..6 {
        match first.pred_opt() {
            Some(prev) if joins(first) && is_selected(days, prev) => first = prev,
            _ => break,
        }
    }
    let mut last = day;
    for _ in 0..6 {
        match last.succ_opt() {
            Some(next) if joins(next) => last = next,
            _ => break,
        }
    }
    Occurrence { start: at(first, TimeOfDay::START_OF_DAY), end: at(last, TimeOfDay::END_OF_DAY) }
}

fn is_selected(days: &[Weekday], day: NaiveDate) -> bool {
    days.contains(&Weekday::from(day.weekday()))
}

fn is_business_day(day: NaiveDate) -> bool {
    day.weekday().num_days_from_monday() < 5
}

/// The instant `time` on `day`, UTC; past chrono's last representable instant it saturates there.
fn at(day: NaiveDate, time: TimeOfDay) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN)
        .and_utc()
        .checked_add_signed(TimeDelta::minutes(i64::from(time.0)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Freeze window ids: slugs, like service names, but without `.`.
fn is_window_slug(s: &str) -> bool {
    Slug::is_valid(s) && !s.contains('.')
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// The JSON name, `"mon"` to `"sun"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }
}

impl From<chrono::Weekday> for Weekday {
    fn from(d: chrono::Weekday) -> Self {
        match d {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

impl From<Weekday> for chrono::Weekday {
    fn from(d: Weekday) -> Self {
        match d {
            Weekday::Mon => chrono::Weekday::Mon,
            Weekday::Tue => chrono::Weekday::Tue,
            Weekday::Wed => chrono::Weekday::Wed,
            Weekday::Thu => chrono::Weekday::Thu,
            Weekday::Fri => chrono::Weekday::Fri,
            Weekday::Sat => chrono::Weekday::Sat,
            Weekday::Sun => chrono::Weekday::Sun,
        }
    }
}

impl TimeOfDay {
    /// `00:00`, the default start.
    pub const START_OF_DAY: Self = Self(0);
    /// `24:00`, the default end.
    pub const END_OF_DAY: Self = Self(24 * 60);

    /// `hour:minute`; `None` unless it lies within `00:00..=24:00`.
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        let minutes = u16::from(hour) * 60 + u16::from(minute);
        (minute < 60 && minutes <= Self::END_OF_DAY.0).then_some(Self(minutes))
    }

    /// Minutes since midnight, `0..=1440`.
    pub fn minutes(self) -> u16 {
        self.0
    }

    fn end_of_day() -> Self {
        Self::END_OF_DAY
    }
}

impl FromStr for TimeOfDay {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("time of day must be \"HH:MM\" from 00:00 to 24:00; got {s:?}");
        let (h, m) = s.split_once(':').ok_or_else(invalid)?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let (h, m) = (h.parse::<u8>().map_err(|_| invalid())?, m.parse::<u8>().map_err(|_| invalid())?);
        Self::new(h, m).ok_or_else(invalid)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        t.to_string()
    }
}

impl Occurrence {
    /// Whether `t` falls within `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for Occurrence {
    /// `2026-11-27T00:00:00Z to 2026-12-01T00:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to {}",
            self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            self.end.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid test time")
    }

    fn occ(start: DateTime<Utc>, end: DateTime<Utc>) -> Occurrence {
        Occurrence { start, end }
    }

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).expect("service")
    }

    fn window(schedule: Schedule) -> FreezeWindow {
        FreezeWindow {
            id: "month-end-close".into(),
            name: "Month-end close".into(),
            services: vec![],
            schedule,
            reason: String::new(),
        }
    }

    fn month_end(n: u8) -> FreezeWindow {
        window(Schedule::MonthEnd { business_days: n })
    }

    fn weekly(days: &[Weekday], start: (u8, u8), end: (u8, u8)) -> FreezeWindow {
        window(Schedule::Weekly {
            days: days.to_vec(),
            start: TimeOfDay::new(start.0, start.1).expect("start"),
            end: TimeOfDay::new(end.0, end.1).expect("end"),
        })
    }

    fn one_off(start: DateTime<Utc>, end: DateTime<Utc>) -> FreezeWindow {
        window(Schedule::OneOff { start, end })
    }

    // ---- month end ----

    #[test]
    fn month_end_covers_last_two_business_days_of_november_2026() {
        // Friday 27th and Monday 30th: one occurrence, the weekend between them included.
        let w = month_end(2);
        let expected = occ(utc(2026, 11, 27, 0, 0), utc(2026, 12, 1, 0, 0));
        assert_eq!(w.first_overlap(utc(2026, 11, 28, 10, 0), utc(2026, 11, 28, 11, 0)), Some(expected));
        assert_eq!(w.first_overlap(utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0)), Some(expected));
        assert_eq!(w.first_overlap(utc(2026, 11, 26, 0, 0), utc(2026, 11, 27, 0, 0)), None);
        assert_eq!(w.first_overlap(utc(2026, 12, 1, 0, 0), utc(2026, 12, 2, 0, 0)), None);
    }

    #[test]
    fn month_end_ending_on_a_weekend_stops_after_the_last_friday() {
        // May 2026 ends on Sunday: Thursday 28th and Friday 29th, until Saturday 00:00.
        let w = month_end(2);
        let expected = occ(utc(2026, 5, 28, 0, 0), utc(2026, 5, 30, 0, 0));
        assert_eq!(w.next_occurrence(utc(2026, 5, 1, 0, 0)), Some(expected));
        assert_eq!(w.first_overlap(utc(2026, 5, 30, 0, 0), utc(2026, 6, 1, 0, 0)), None);
        assert_eq!(w.first_overlap(utc(2026, 5, 29, 23, 59), utc(2026, 5, 30, 1, 0)), Some(expected));
    }

    #[test]
    fn month_end_single_business_day_runs_to_midnight() {
        // 31 December 2026 is a Thursday.
        let w = month_end(1);
        let expected = occ(utc(2026, 12, 31, 0, 0), utc(2027, 1, 1, 0, 0));
        assert_eq!(w.next_occurrence(utc(2026, 12, 5, 0, 0)), Some(expected));
        // January 2026 ends on Saturday: Friday the 30th.
        assert_eq!(w.next_occurrence(utc(2026, 1, 1, 0, 0)), Some(occ(utc(2026, 1, 30, 0, 0), utc(2026, 1, 31, 0, 0))));
    }

    #[test]
    fn month_end_ten_business_days_span_two_weeks() {
        // February 2026 has 20 business days, the last on Friday the 27th.
        let w = month_end(10);
        assert_eq!(w.next_occurrence(utc(2026, 2, 1, 0, 0)), Some(occ(utc(2026, 2, 16, 0, 0), utc(2026, 2, 28, 0, 0))));
    }

    #[test]
    fn month_end_next_occurrence_moves_to_next_month_once_this_one_ended() {
        let w = month_end(2);
        // Still in force at its last instant, then December's.
        let nov = occ(utc(2026, 11, 27, 0, 0), utc(2026, 12, 1, 0, 0));
        assert_eq!(w.next_occurrence(utc(2026, 11, 30, 23, 59)), Some(nov));
        // 31 December 2026 is a Thursday: Wednesday 30th and Thursday 31st.
        let dec = occ(utc(2026, 12, 30, 0, 0), utc(2027, 1, 1, 0, 0));
        assert_eq!(w.next_occurrence(utc(2026, 12, 1, 0, 0)), Some(dec));
        assert_eq!(w.next_occurrence(utc(2026, 11, 30, 23, 59) + TimeDelta::minutes(1)), Some(dec));
    }

    #[test]
    fn first_overlap_returns_the_earliest_of_several_occurrences() {
        let w = month_end(1);
        // A change from mid-November to mid-December sees November's occurrence first.
        let got = w.first_overlap(utc(2026, 11, 15, 0, 0), utc(2026, 12, 31, 12, 0));
        assert_eq!(got, Some(occ(utc(2026, 11, 30, 0, 0), utc(2026, 12, 1, 0, 0))));
    }

    // ---- weekly ----

    #[test]
    fn weekly_window_wraps_nothing_past_midnight() {
        // 2026-03-06 is a Friday.
        let w = weekly(&[Weekday::Fri], (22, 0), (24, 0));
        let fri = occ(utc(2026, 3, 6, 22, 0), utc(2026, 3, 7, 0, 0));
        assert_eq!(w.first_overlap(utc(2026, 3, 7, 0, 0), utc(2026, 3, 7, 1, 0)), None);
        assert_eq!(w.first_overlap(utc(2026, 3, 6, 23, 0), utc(2026, 3, 7, 1, 0)), Some(fri));
        assert_eq!(w.first_overlap(utc(2026, 3, 6, 12, 0), utc(2026, 3, 6, 22, 0)), None);
        // And an end before the start is refused rather than read as running overnight.
        let overnight = weekly(&[Weekday::Fri], (22, 0), (2, 0));
        assert_eq!(overnight.validate().expect_err("overnight").field, "schedule.end");
    }

    #[test]
    fn weekly_whole_days_join_into_one_occurrence() {
        let weekend = weekly(&[Weekday::Sat, Weekday::Sun], (0, 0), (24, 0));
        let expected = occ(utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 0, 0));
        assert_eq!(weekend.first_overlap(utc(2026, 3, 8, 12, 0), utc(2026, 3, 8, 13, 0)), Some(expected));
        assert_eq!(weekend.next_occurrence(utc(2026, 3, 2, 9, 0)), Some(expected));
        // Across the week boundary too: Sunday to Tuesday 00:00.
        let sun_mon = weekly(&[Weekday::Mon, Weekday::Sun], (0, 0), (24, 0));
        let expected = occ(utc(2026, 3, 8, 0, 0), utc(2026, 3, 10, 0, 0));
        assert_eq!(sun_mon.first_overlap(utc(2026, 3, 9, 12, 0), utc(2026, 3, 9, 13, 0)), Some(expected));
    }

    #[test]
    fn weekly_every_day_is_cut_into_weeks_at_monday() {
        let w = weekly(&Weekday::ALL, (0, 0), (24, 0));
        let expected = occ(utc(2026, 3, 2, 0, 0), utc(2026, 3, 9, 0, 0));
        assert_eq!(w.first_overlap(utc(2026, 3, 5, 12, 0), utc(2026, 3, 12, 0, 0)), Some(expected));
        assert_eq!(w.next_occurrence(utc(2026, 3, 9, 0, 0)), Some(occ(utc(2026, 3, 9, 0, 0), utc(2026, 3, 16, 0, 0))));
    }

    #[test]
    fn weekly_part_days_stay_separate_occurrences() {
        let w = weekly(&[Weekday::Mon, Weekday::Tue], (9, 0), (17, 30));
        assert_eq!(
            w.first_overlap(utc(2026, 3, 2, 18, 0), utc(2026, 3, 4, 0, 0)),
            Some(occ(utc(2026, 3, 3, 9, 0), utc(2026, 3, 3, 17, 30)))
        );
        // Wednesday to Sunday: nothing.
        assert_eq!(w.first_overlap(utc(2026, 3, 4, 0, 0), utc(2026, 3, 9, 0, 0)), None);
        // The next one after Tuesday evening is the following Monday.
        assert_eq!(
            w.next_occurrence(utc(2026, 3, 3, 17, 30)),
            Some(occ(utc(2026, 3, 9, 9, 0), utc(2026, 3, 9, 17, 30)))
        );
    }

    // ---- one-off and general ----

    #[test]
    fn one_off_is_half_open() {
        let (s, e) = (utc(2026, 12, 20, 0, 0), utc(2027, 1, 4, 0, 0));
        let w = one_off(s, e);
        assert_eq!(w.first_overlap(utc(2026, 12, 19, 0, 0), s), None);
        assert_eq!(w.first_overlap(e, utc(2027, 1, 5, 0, 0)), None);
        assert_eq!(w.first_overlap(e - TimeDelta::nanoseconds(1), e), Some(occ(s, e)));
        assert_eq!(w.next_occurrence(utc(2026, 1, 1, 0, 0)), Some(occ(s, e)));
        assert_eq!(w.next_occurrence(e), None);
    }

    #[test]
    fn empty_or_reversed_change_window_overlaps_nothing() {
        let t = utc(2026, 11, 30, 12, 0);
        for w in [
            month_end(2),
            weekly(&Weekday::ALL, (0, 0), (24, 0)),
            one_off(t - TimeDelta::days(1), t + TimeDelta::days(1)),
        ] {
            assert_eq!(w.first_overlap(t, t), None);
            assert_eq!(w.first_overlap(t, t - TimeDelta::hours(1)), None);
            assert!(w.first_overlap(t, t + TimeDelta::seconds(1)).is_some());
        }
    }

    #[test]
    fn applies_to_tenant_wide_or_shared_service() {
        let mut w = month_end(1);
        assert!(w.applies_to(&[svc("payments")]));
        assert!(w.applies_to(&[]));
        w.services = vec![svc("payments"), svc("ledger")];
        assert!(w.applies_to(&[svc("web"), svc("ledger")]));
        assert!(!w.applies_to(&[svc("web")]));
        assert!(!w.applies_to(&[]));
    }

    #[test]
    fn blocking_picks_the_earliest_applicable_occurrence() {
        let mut payments = one_off(utc(2026, 11, 29, 0, 0), utc(2026, 11, 30, 0, 0));
        payments.id = "payments-only".into();
        payments.services = vec![svc("payments")];
        let mut web = one_off(utc(2026, 11, 20, 0, 0), utc(2026, 11, 21, 0, 0));
        web.id = "web-only".into();
        web.services = vec![svc("web")];
        let close = month_end(2);
        let windows = [payments, web, close];
        let (start, end) = (utc(2026, 11, 15, 0, 0), utc(2026, 12, 2, 0, 0));

        let (w, o) = blocking(&windows, &[svc("payments")], start, end).expect("blocked");
        assert_eq!((w.id.as_str(), o), ("month-end-close", occ(utc(2026, 11, 27, 0, 0), utc(2026, 12, 1, 0, 0))));
        let (w, o) = blocking(&windows, &[svc("web")], start, end).expect("blocked");
        assert_eq!((w.id.as_str(), o.start), ("web-only", utc(2026, 11, 20, 0, 0)));
        assert!(blocking(&windows, &[svc("payments")], start, utc(2026, 11, 20, 0, 0)).is_none());
        assert!(blocking(&[], &[svc("payments")], start, end).is_none());
    }

    #[test]
    fn blocking_prefers_the_earlier_listed_window_on_a_tie() {
        let mut first = month_end(2);
        first.id = "first".into();
        let mut second = weekly(&[Weekday::Fri], (0, 0), (24, 0));
        second.id = "second".into();
        let windows = [first, second];
        let (w, _) = blocking(&windows, &[], utc(2026, 11, 27, 12, 0), utc(2026, 11, 27, 13, 0)).expect("blocked");
        assert_eq!(w.id, "first");
    }

    #[test]
    fn describe_names_the_window_period_and_services() {
        let mut w = month_end(2);
        let o = occ(utc(2026, 11, 27, 0, 0), utc(2026, 12, 1, 0, 0));
        let period = "2026-11-27T00:00:00Z to 2026-12-01T00:00:00Z";
        assert_eq!(
            w.describe(&o),
            format!("freeze \"Month-end close\" (month-end-close): {period}; applies to all services")
        );
        w.services = vec![svc("payments"), svc("ledger")];
        w.name = "  Q4 \"close\"  ".into();
        assert_eq!(
            w.describe(&o),
            format!(r#"freeze "Q4 \"close\"" (month-end-close): {period}; applies to payments, ledger"#)
        );
        // Sub-second instants keep their fraction.
        let odd = occ(o.start + TimeDelta::milliseconds(250), o.end);
        assert!(w.describe(&odd).contains("2026-11-27T00:00:00.250Z to"), "{}", w.describe(&odd));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let windows = [
            month_end(1),
            month_end(10),
            weekly(&Weekday::ALL, (0, 0), (24, 0)),
            weekly(&[Weekday::Fri, Weekday::Sat], (0, 0), (24, 0)),
            weekly(&[Weekday::Sun], (23, 0), (24, 0)),
            one_off(min, max),
        ];
        for w in &windows {
            for (s, e) in [(min, max), (min, min + TimeDelta::days(31)), (max - TimeDelta::days(31), max), (max, min)] {
                if let Some(o) = w.first_overlap(s, e) {
                    assert!(o.start < e && o.end > s && o.start < o.end, "{w:?} {o:?}");
                    let _ = w.describe(&o);
                }
            }
            for t in [min, max, max - TimeDelta::days(1)] {
                if let Some(o) = w.next_occurrence(t) {
                    assert!(o.end > t && o.start < o.end, "{w:?} {o:?}");
                }
            }
        }
        // The whole of chrono's range holds the whole of any week.
        assert!(weekly(&Weekday::ALL, (0, 0), (24, 0)).first_overlap(max - TimeDelta::hours(1), max).is_some());
    }

    // ---- validation ----

    fn valid() -> FreezeWindow {
        FreezeWindow {
            id: "xmas_2026".into(),
            name: "Christmas".into(),
            services: vec![svc("payments")],
            schedule: Schedule::OneOff { start: utc(2026, 12, 20, 0, 0), end: utc(2027, 1, 4, 0, 0) },
            reason: "Skeleton staff.".into(),
        }
    }

    fn field_of(w: FreezeWindow) -> String {
        w.validate().expect_err("invalid").field
    }

    #[test]
    fn valid_windows_pass() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(month_end(1).validate(), Ok(()));
        assert_eq!(month_end(10).validate(), Ok(()));
        assert_eq!(weekly(&[Weekday::Sat, Weekday::Sun], (0, 0), (24, 0)).validate(), Ok(()));
        assert_eq!(weekly(&[Weekday::Mon], (23, 59), (24, 0)).validate(), Ok(()));
        let s = utc(2026, 1, 1, 0, 0);
        assert_eq!(one_off(s, s + TimeDelta::days(366)).validate(), Ok(()));
        assert_eq!(FreezeWindow { id: "9".into(), ..valid() }.validate(), Ok(()));
        assert_eq!(FreezeWindow { id: "a".repeat(64), ..valid() }.validate(), Ok(()));
    }

    #[test]
    fn bad_ids_name_the_id_field() {
        for id in ["", "Upper", "-lead", "_lead", "has.dot", "has space", "ünï", &"a".repeat(65)] {
            assert_eq!(field_of(FreezeWindow { id: id.into(), ..valid() }), "id", "{id:?}");
        }
    }

    #[test]
    fn bad_names_and_reasons_name_their_fields() {
        assert_eq!(field_of(FreezeWindow { name: "   ".into(), ..valid() }), "name");
        assert_eq!(field_of(FreezeWindow { name: "x".repeat(201), ..valid() }), "name");
        assert_eq!(FreezeWindow { name: format!("  {}  ", "é".repeat(200)), ..valid() }.validate(), Ok(()));
        assert_eq!(field_of(FreezeWindow { reason: "r".repeat(2001), ..valid() }), "reason");
        assert_eq!(FreezeWindow { reason: "r".repeat(2000), ..valid() }.validate(), Ok(()));
    }

    #[test]
    fn bad_services_name_the_services_field() {
        assert_eq!(field_of(FreezeWindow { services: vec![svc("a"), svc("b"), svc("a")], ..valid() }), "services");
        let many = (0..=MAX_WINDOW_SERVICES).map(|i| svc(&format!("s{i}"))).collect();
        assert_eq!(field_of(FreezeWindow { services: many, ..valid() }), "services");
    }

    #[test]
    fn bad_one_off_schedules_name_start_or_end() {
        let s = utc(2026, 12, 20, 0, 0);
        let cases = [
            (s, s, "schedule.end"),
            (s, s - TimeDelta::seconds(1), "schedule.end"),
            (s, s + TimeDelta::days(366) + TimeDelta::seconds(1), "schedule.end"),
            (utc(1999, 12, 31, 0, 0), s, "schedule.start"),
            (utc(9998, 12, 31, 0, 0), utc(9999, 1, 1, 0, 0), "schedule.end"),
        ];
        for (start, end, field) in cases {
            assert_eq!(field_of(one_off(start, end)), field, "{start} {end}");
        }
    }

    #[test]
    fn bad_recurring_schedules_name_their_field() {
        assert_eq!(field_of(month_end(0)), "schedule.business_days");
        assert_eq!(field_of(month_end(11)), "schedule.business_days");
        assert_eq!(field_of(weekly(&[], (0, 0), (24, 0))), "schedule.days");
        assert_eq!(field_of(weekly(&[Weekday::Mon, Weekday::Tue, Weekday::Mon], (0, 0), (24, 0))), "schedule.days");
        assert_eq!(field_of(weekly(&[Weekday::Mon], (24, 0), (24, 0))), "schedule.start");
        assert_eq!(field_of(weekly(&[Weekday::Mon], (9, 0), (9, 0))), "schedule.end");
        assert_eq!(field_of(weekly(&[Weekday::Mon], (9, 0), (8, 59))), "schedule.end");
    }

    // ---- JSON ----

    #[test]
    fn one_off_json_shape_round_trips() {
        let w = valid();
        let v = json!({
            "id": "xmas_2026",
            "name": "Christmas",
            "services": ["payments"],
            "schedule": {"kind": "one_off", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"},
            "reason": "Skeleton staff."
        });
        assert_eq!(serde_json::to_value(&w).expect("json"), v);
        assert_eq!(serde_json::from_value::<FreezeWindow>(v).expect("parse"), w);
    }

    #[test]
    fn month_end_json_shape_round_trips() {
        let w = month_end(2);
        let v = json!({
            "id": "month-end-close",
            "name": "Month-end close",
            "services": [],
            "schedule": {"kind": "month_end", "business_days": 2},
            "reason": ""
        });
        assert_eq!(serde_json::to_value(&w).expect("json"), v);
        assert_eq!(serde_json::from_value::<FreezeWindow>(v).expect("parse"), w);
        // services and reason may be left out.
        let short = json!({
            "id": "month-end-close",
            "name": "Month-end close",
            "schedule": {"kind": "month_end", "business_days": 2}
        });
        assert_eq!(serde_json::from_value::<FreezeWindow>(short).expect("parse"), w);
    }

    #[test]
    fn weekly_json_shape_round_trips_with_hh_mm_times() {
        let w = weekly(&[Weekday::Fri, Weekday::Sat], (18, 30), (24, 0));
        let v = json!({
            "id": "month-end-close",
            "name": "Month-end close",
            "services": [],
            "schedule": {"kind": "weekly", "days": ["fri", "sat"], "start": "18:30", "end": "24:00"},
            "reason": ""
        });
        assert_eq!(serde_json::to_value(&w).expect("json"), v);
        assert_eq!(serde_json::from_value::<FreezeWindow>(v).expect("parse"), w);
    }

    #[test]
    fn weekly_times_default_to_the_whole_day() {
        let s: Schedule = serde_json::from_value(json!({"kind": "weekly", "days": ["sat", "sun"]})).expect("parse");
        assert_eq!(
            s,
            Schedule::Weekly {
                days: vec![Weekday::Sat, Weekday::Sun],
                start: TimeOfDay::START_OF_DAY,
                end: TimeOfDay::END_OF_DAY
            }
        );
    }

    #[test]
    fn one_off_times_with_offsets_are_read_as_utc() {
        let s: Schedule = serde_json::from_value(
            json!({"kind": "one_off", "start": "2026-12-20T01:00:00+01:00", "end": "2026-12-21T00:00:00Z"}),
        )
        .expect("parse");
        assert_eq!(s, Schedule::OneOff { start: utc(2026, 12, 20, 0, 0), end: utc(2026, 12, 21, 0, 0) });
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let base = json!({"id": "x", "name": "X", "schedule": {"kind": "month_end", "business_days": 2}});
        assert!(serde_json::from_value::<FreezeWindow>(base.clone()).is_ok());
        let bad = [
            json!({"id": "x", "name": "X", "schedule": {"kind": "month_end", "business_days": 2}, "extra": 1}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "month_end", "business_days": 2, "extra": 1}}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "yearly"}}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "weekly", "days": ["monday"]}}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "weekly", "days": ["Mon"]}}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "weekly", "days": ["mon"], "end": "25:00"}}),
            json!({"id": "x", "name": "X", "schedule": {"kind": "month_end", "business_days": 256}}),
            json!({"id": "x", "name": "X", "services": ["Bad"], "schedule": {"kind": "month_end", "business_days": 2}}),
        ];
        for v in bad {
            assert!(serde_json::from_value::<FreezeWindow>(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn time_of_day_parses_only_hh_mm_within_the_day() {
        for (s, minutes) in [("00:00", 0), ("09:05", 545), ("23:59", 1439), ("24:00", 1440)] {
            let t: TimeOfDay = s.parse().expect(s);
            assert_eq!((t.minutes(), t.to_string().as_str()), (minutes, s));
        }
        for s in
            ["", "9:00", "09:0", "0900", "24:01", "25:00", "12:60", "-1:00", "+1:00", "12:3a", "12:30:00", "１２:00"]
        {
            assert!(s.parse::<TimeOfDay>().is_err(), "{s:?}");
        }
        assert_eq!(TimeOfDay::new(24, 1), None);
        assert_eq!(TimeOfDay::new(12, 60), None);
    }

    // ---- properties ----

    /// Independent oracle: is instant `t` inside a freeze of `schedule`?
    fn frozen(schedule: &Schedule, t: DateTime<Utc>) -> bool {
        match schedule {
            Schedule::OneOff { start, end } => *start <= t && t < *end,
            Schedule::MonthEnd { business_days } => {
                let last_n = last_business_days(t.year(), t.month(), *business_days);
                match (last_n.first(), last_n.last()) {
                    (Some(first), Some(last)) => *first <= t.date_naive() && t.date_naive() <= *last,
                    _ => false,
                }
            }
            Schedule::Weekly { days, start, end } => {
                let minute = t.hour() * 60 + t.minute();
                days.contains(&Weekday::from(t.weekday()))
                    && u32::from(start.minutes()) <= minute
                    && minute < u32::from(end.minutes())
            }
        }
    }

    /// The last `n` business days of a month, oldest first, by listing the whole month.
    fn last_business_days(year: i32, month: u32, n: u8) -> Vec<NaiveDate> {
        let all: Vec<NaiveDate> = (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
            .filter(|d| !matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun))
            .collect();
        all[all.len().saturating_sub(usize::from(n))..].to_vec()
    }

    use chrono::Timelike;

    fn realistic_instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2000-01-01 to 2100-01-01, any second.
        (946_684_800i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
    }

    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let (lo, hi) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
        prop_oneof![
            4 => realistic_instant(),
            1 => (lo..=hi).prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
            1 => prop_oneof![lo..lo + 40 * 86_400, hi - 40 * 86_400..=hi]
                .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range")),
        ]
    }

    fn valid_schedule() -> impl Strategy<Value = Schedule> {
        let times = prop_oneof![Just((0u16, 1440u16)), (0u16..1440).prop_flat_map(|s| (Just(s), s + 1..=1440))];
        prop_oneof![
            (realistic_instant(), 1i64..=366 * 86_400)
                .prop_map(|(start, len)| Schedule::OneOff { start, end: start + TimeDelta::seconds(len) }),
            (1u8..=10).prop_map(|business_days| Schedule::MonthEnd { business_days }),
            (proptest::sample::subsequence(Weekday::ALL.to_vec(), 1..=7), times)
                .prop_map(|(days, (s, e))| { Schedule::Weekly { days, start: TimeOfDay(s), end: TimeOfDay(e) } }),
        ]
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            valid_schedule(),
            (any_instant(), any_instant()).prop_map(|(start, end)| Schedule::OneOff { start, end }),
            any::<u8>().prop_map(|business_days| Schedule::MonthEnd { business_days }),
            (
                proptest::collection::vec(proptest::sample::select(Weekday::ALL.to_vec()), 0..10),
                0u16..=1440,
                0u16..=1440
            )
                .prop_map(|(days, s, e)| Schedule::Weekly { days, start: TimeOfDay(s), end: TimeOfDay(e) }),
        ]
    }

    /// Hourly samples of `[start, end)`, plus its last second.
    fn samples(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out: Vec<_> = (0..)
            .map_while(|h| start.checked_add_signed(TimeDelta::hours(h)).filter(|t| *t < end))
            .take(32 * 24)
            .collect();
        if let Some(last) = end.checked_sub_signed(TimeDelta::seconds(1)).filter(|t| *t >= start) {
            out.push(last);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// What first_overlap returns overlaps the change window, is a whole occurrence of the schedule, and
        /// nothing in the change window is frozen before it.
        #[test]
        fn first_overlap_is_a_real_occurrence_overlapping_the_window(
            schedule in valid_schedule(),
            start in any_instant(),
            len in 0i64..=31 * 86_400,
        ) {
            let end = start.checked_add_signed(TimeDelta::seconds(len)).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let w = window(schedule.clone());
            prop_assert_eq!(w.validate(), Ok(()));
            let Some(o) = w.first_overlap(start, end) else { return Ok(()) };
            prop_assert!(o.start < o.end && o.start < end && o.end > start, "{:?} does not overlap", o);
            // Frozen throughout (at its ends and hourly), and the instants just outside it are not.
            prop_assert!(frozen(&schedule, o.start) && frozen(&schedule, o.end - TimeDelta::nanoseconds(1)));
            for t in samples(o.start, o.end) {
                prop_assert!(frozen(&schedule, t), "{} inside {:?} is not frozen", t, o);
            }
            let every_whole_day = matches!(&schedule, Schedule::Weekly { days, start, end }
                if days.len() == 7 && start.minutes() == 0 && end.minutes() == 1440);
            if !every_whole_day {
                if let Some(before) = o.start.checked_sub_signed(TimeDelta::nanoseconds(1)) {
                    prop_assert!(!frozen(&schedule, before), "{:?} could start earlier", o);
                }
                if o.end < DateTime::<Utc>::MAX_UTC {
                    prop_assert!(!frozen(&schedule, o.end), "{:?} could end later", o);
                }
            }
            match &schedule {
                Schedule::OneOff { start, end } => prop_assert_eq!(o, occ(*start, *end)),
                Schedule::MonthEnd { business_days } => {
                    let days = last_business_days(o.start.year(), o.start.month(), *business_days);
                    let (first, last) = (days[0], days[days.len() - 1]);
                    prop_assert_eq!(o.start, first.and_time(NaiveTime::MIN).and_utc());
                    // The day after the last one, or chrono's last instant when there is no such day.
                    let end =
                        last.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, |d| d.and_time(NaiveTime::MIN).and_utc());
                    prop_assert_eq!(o.end, end);
                }
                Schedule::Weekly { days, start: from, end: to } => {
                    prop_assert!(days.contains(&Weekday::from(o.start.weekday())));
                    prop_assert_eq!(o.start.hour() * 60 + o.start.minute(), u32::from(from.minutes()));
                    prop_assert!(o.end - o.start <= TimeDelta::days(7));
                    if !(from.minutes() == 0 && to.minutes() == 1440) {
                        prop_assert_eq!(o.end - o.start, TimeDelta::minutes(i64::from(to.minutes() - from.minutes())));
                    }
                }
            }
            // Earliest: nothing in the change window before it is frozen.
            for t in samples(start, o.start.min(end)) {
                prop_assert!(!frozen(&schedule, t), "{} is frozen before {:?}", t, o);
            }
        }

        /// When first_overlap finds nothing, no hourly sample of the change window is frozen.
        #[test]
        fn no_overlap_means_nothing_in_the_window_is_frozen(
            schedule in valid_schedule(),
            start in any_instant(),
            len in 0i64..=31 * 86_400,
        ) {
            let end = start.checked_add_signed(TimeDelta::seconds(len)).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let w = window(schedule.clone());
            if w.first_overlap(start, end).is_none() {
                for t in samples(start, end) {
                    prop_assert!(!frozen(&schedule, t), "{} is frozen but no overlap was found", t);
                }
            }
        }

        /// next_occurrence is the one in force at `after`, or the first after it.
        #[test]
        fn next_occurrence_is_current_or_next(schedule in valid_schedule(), after in realistic_instant()) {
            let w = window(schedule.clone());
            let o = w.next_occurrence(after);
            if let Schedule::OneOff { end, .. } = &schedule {
                prop_assert_eq!(o.is_some(), *end > after);
            } else {
                prop_assert!(o.is_some(), "recurring schedules always have a next occurrence");
            }
            if let Some(o) = o {
                prop_assert!(o.end > after);
                prop_assert_eq!(frozen(&schedule, after), o.contains(after));
                prop_assert_eq!(w.first_overlap(after, o.end), Some(o));
            }
        }

        /// Nothing panics, for any schedule (valid or not) and any timestamps chrono can hold.
        #[test]
        fn never_panics(schedule in any_schedule(), a in any::<i64>(), b in any::<i64>(), len in 0i64..=40 * 86_400) {
            let w = window(schedule);
            let _ = w.validate();
            let clamp = |s: i64| {
                let s = s.clamp(DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
                DateTime::from_timestamp(s, 0).expect("clamped")
            };
            let (a, b) = (clamp(a), clamp(b));
            for (s, e) in [(a, b), (b, a), (a, a.checked_add_signed(TimeDelta::seconds(len)).unwrap_or(a))] {
                if let Some(o) = w.first_overlap(s, e) {
                    prop_assert!(o.start < e && o.end > s);
                    let _ = w.describe(&o);
                }
                let _ = w.next_occurrence(s);
                let _ = blocking(std::slice::from_ref(&w), &[], s, e);
            }
        }
    }
}
