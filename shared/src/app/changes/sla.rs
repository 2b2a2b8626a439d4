//! Mean time to approve: approval-wait counters bumped in the same write as
//! the decision that closes a step (and the escalation write that escalates
//! or breaches it), and `GET /reports/approval-sla`, which reads them back.
//!
//! A step's wait runs from when its level opened (its deadline less its
//! SLA) to the decision, by the events' own times. Each is counted, in the
//! decision's month, under its level's name, its service (the change's
//! services for a step of no service, such as the peer review), that
//! service's owner group (its team) and the change type: a count, a sum of
//! seconds and a histogram of [`WAIT_BUCKETS`], from which the report's
//! percentiles come (to bucket resolution).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::BTreeMap;

use super::{ChangeError, ChangeStore, Changes, month_of};
use crate::domain::access::Caller;
use crate::domain::approval::{ApprovalPlan, Step};
use crate::domain::catalog::Catalog;
use crate::domain::{Change, FieldError};
use crate::ports::{Clock, WAIT_BUCKETS, WaitBump, WaitCounts, WaitDimension, WaitKey};

/// The most months one report spans.
pub const MAX_REPORT_MONTHS: usize = 12;

/// The counter keys a wait of `step` on `change` counts under in `month`.
pub(crate) fn wait_keys(change: &Change, step: &Step, catalog: &Catalog, month: &str) -> Vec<WaitKey> {
    let services: Vec<_> = match &step.service {
        Some(s) => vec![s.clone()],
        None => change.services.clone(),
    };
    let mut teams: Vec<String> =
        services.iter().filter_map(|s| catalog.service(s)).map(|s| s.owner_group.clone()).collect();
    teams.sort();
    teams.dedup();
    let key =
        |dimension, name: String| WaitKey { tenant: change.tenant.clone(), month: month.to_owned(), dimension, name };
    let mut keys = vec![key(WaitDimension::Level, step.name.clone())];
    keys.extend(services.iter().map(|s| key(WaitDimension::Service, s.to_string())));
    keys.extend(teams.into_iter().map(|t| key(WaitDimension::Team, t)));
    keys.push(key(WaitDimension::ChangeType, change.change_type.as_str().to_owned()));
    keys
}

/// The waits a decision at `now` closes: each step of the level open in
/// `before` that `after` completed, or that a rejection closed.
pub(crate) fn decision_waits(
    change: &Change,
    before: &ApprovalPlan,
    after: &ApprovalPlan,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Vec<WaitBump> {
    let Some(level) = before.current_level() else { return vec![] };
    let month = month_of(now);
    let closed = |a: &Step| a.is_complete() || after.rejected.is_some();
    before
        .steps
        .iter()
        .zip(&after.steps)
        .filter(|(b, a)| b.level == level && !b.is_complete() && closed(a))
        .filter_map(|(b, _)| Some((b, b.opened_at()?)))
        .flat_map(|(b, opened)| {
            let waited = u64::try_from((now - opened).num_seconds()).unwrap_or(0);
            wait_keys(change, b, catalog, &month).into_iter().map(move |key| WaitBump {
                key,
                waited: Some(waited),
                escalations: 0,
                breaches: 0,
            })
        })
        .collect()
}

/// What an escalation (`breach` false) or the breach of `step` at `now` adds.
pub(crate) fn nudge_waits(
    change: &Change,
    step: &Step,
    breach: bool,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Vec<WaitBump> {
    wait_keys(change, step, catalog, &month_of(now))
        .into_iter()
        .map(|key| WaitBump { key, waited: None, escalations: u64::from(!breach), breaches: u64::from(breach) })
        .collect()
}

/// `GET /reports/approval-sla`'s months: `period`, or `from`..=`to`, each `YYYY-MM`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPeriod {
    pub period: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One row of the report: a level, service, team or change type.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlaRow {
    pub key: String,
    /// Steps decided (approved or rejected).
    pub count: u64,
    /// Mean wait in seconds, rounded (none when nothing was decided).
    pub mean_seconds: Option<u64>,
    /// The upper bound of the histogram bucket holding the median wait
    /// (bucket resolution; the last bucket reads 30 days).
    pub p50_seconds: Option<u64>,
    pub p90_seconds: Option<u64>,
    pub escalations: u64,
    pub breaches: u64,
}

/// The approval SLA report of a span of months.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalSla {
    pub from: String,
    pub to: String,
    /// The level with the longest mean wait, if any step was decided.
    pub bottleneck: Option<String>,
    /// Upper bounds (seconds) of the histogram's buckets, which percentiles resolve to.
    pub buckets: Vec<u64>,
    pub levels: Vec<SlaRow>,
    pub services: Vec<SlaRow>,
    pub teams: Vec<SlaRow>,
    pub change_types: Vec<SlaRow>,
}

/// A month `YYYY-MM` named by `field`.
fn month(field: &str, value: &str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 7)
        .ok_or_else(|| FieldError::new(field, format!("{field} must be a month written YYYY-MM, not {value:?}")))
}

impl SlaPeriod {
    /// The months asked for, oldest first (the month of `now` when none are named).
    pub fn months(&self, now: DateTime<Utc>) -> Result<Vec<String>, FieldError> {
        let (from, to) = match (&self.period, &self.from, &self.to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(FieldError::new("period", "give period, or from and to, not both"));
            }
            (Some(p), None, None) => (month("period", p)?, month("period", p)?),
            (None, Some(f), Some(t)) => (month("from", f)?, month("to", t)?),
            (None, Some(_), None) => return Err(FieldError::new("to", "from needs to: the last month of the span")),
            (None, None, Some(_)) => return Err(FieldError::new("from", "to needs from: the first month of the span")),
            (None, None, None) => {
                let m = month("period", &month_of(now))?;
                (m, m)
            }
        };
        if from > to {
            return Err(FieldError::new("from", "from must not be after to"));
        }
        let span = (to.year() - from.year()) * 12 + i32::try_from(to.month()).unwrap_or(0)
            - i32::try_from(from.month()).unwrap_or(0)
            + 1;
        if span > MAX_REPORT_MONTHS as i32 {
            return Err(FieldError::new("to", format!("a report spans at most {MAX_REPORT_MONTHS} months")));
        }
        let months = (0..span.unsigned_abs())
            .filter_map(|i| from.checked_add_months(chrono::Months::new(i)))
            .map(|m| format!("{:04}-{:02}", m.year(), m.month()))
            .collect();
        Ok(months)
    }
}

/// The upper bound of the bucket the `percent`th percentile of `c` falls in.
fn percentile(c: &WaitCounts, percent: u64) -> Option<u64> {
    if c.decided == 0 {
        return None;
    }
    let rank = (c.decided * percent).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, n) in c.buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return WAIT_BUCKETS.get(i).or(WAIT_BUCKETS.last()).copied();
        }
    }
    WAIT_BUCKETS.last().copied()
}

impl SlaRow {
    fn of(key: String, c: &WaitCounts) -> SlaRow {
        SlaRow {
            key,
            count: c.decided,
            mean_seconds: (c.decided > 0).then(|| (c.wait_seconds + c.decided / 2) / c.decided),
            p50_seconds: percentile(c, 50),
            p90_seconds: percentile(c, 90),
            escalations: c.escalations,
            breaches: c.breaches,
        }
    }
}

/// The report of `counted` (each month's counters), rows slowest first.
pub fn approval_sla(months: &[String], counted: Vec<(WaitDimension, String, WaitCounts)>) -> ApprovalSla {
    let mut merged: BTreeMap<(WaitDimension, String), WaitCounts> = BTreeMap::new();
    for (dimension, name, counts) in counted {
        merged.entry((dimension, name)).or_default().add(&counts);
    }
    let rows = |dimension: WaitDimension| {
        let mut rows: Vec<SlaRow> = merged
            .iter()
            .filter(|((d, _), _)| *d == dimension)
            .map(|((_, name), c)| SlaRow::of(name.clone(), c))
            .collect();
        // Slowest first; levels never decided (only escalated) after those decided.
        rows.sort_by(|a, b| b.mean_seconds.cmp(&a.mean_seconds).then_with(|| a.key.cmp(&b.key)));
        rows
    };
    let levels = rows(WaitDimension::Level);
    ApprovalSla {
        from: months.first().cloned().unwrap_or_default(),
        to: months.last().cloned().unwrap_or_default(),
        bottleneck: levels.iter().find(|r| r.count > 0).map(|r| r.key.clone()),
        buckets: WAIT_BUCKETS.to_vec(),
        levels,
        services: rows(WaitDimension::Service),
        teams: rows(WaitDimension::Team),
        change_types: rows(WaitDimension::ChangeType),
    }
}

impl<S: ChangeStore, C: Clock> Changes<S, C> {
    /// `GET /reports/approval-sla`: mean time to approve per level, service,
    /// team and change type over the months asked (one store query per month).
    pub async fn approval_sla(&self, caller: &Caller, period: &SlaPeriod) -> Result<ApprovalSla, ChangeError> {
        self.reader(caller, "reading reports").await?;
        let months = period.months(self.clock.now())?;
        let mut counted = vec![];
        for month in &months {
            counted.extend(self.store.waits(&caller.tenant, month).await?);
        }
        Ok(approval_sla(&months, counted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn period(p: Option<&str>, from: Option<&str>, to: Option<&str>) -> SlaPeriod {
        SlaPeriod { period: p.map(String::from), from: from.map(String::from), to: to.map(String::from) }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).single().unwrap_or_default()
    }

    #[test]
    fn months_default_to_the_current_one_and_span_at_most_twelve() {
        assert_eq!(period(None, None, None).months(now()), Ok(vec!["2026-11".to_owned()]));
        assert_eq!(period(Some("2026-02"), None, None).months(now()), Ok(vec!["2026-02".to_owned()]));
        let span = period(None, Some("2025-12"), Some("2026-11")).months(now()).unwrap_or_default();
        assert_eq!((span.len(), span.first().map(String::as_str)), (12, Some("2025-12")));
        let too_long = period(None, Some("2025-11"), Some("2026-11")).months(now());
        assert!(matches!(too_long, Err(e) if e.field == "to"));
        for (p, field) in [
            (period(Some("2026-1"), None, None), "period"),
            (period(Some("2026-00"), None, None), "period"),
            (period(None, Some("2026-03"), Some("2026-02")), "from"),
            (period(None, None, Some("2026-02")), "from"),
            (period(Some("2026-02"), None, Some("2026-02")), "period"),
        ] {
            assert!(matches!(p.months(now()), Err(ref e) if e.field == field), "{p:?}");
        }
    }

    fn counts(waits: &[u64]) -> WaitCounts {
        let mut c = WaitCounts::default();
        for w in waits {
            let key = WaitKey {
                tenant: crate::domain::TenantId::parse("acme").unwrap_or_else(|_| unreachable!()),
                month: "2026-11".into(),
                dimension: WaitDimension::Level,
                name: "x".into(),
            };
            c.add(&WaitCounts::of(&WaitBump { key, waited: Some(*w), escalations: 0, breaches: 0 }));
        }
        c
    }

    #[test]
    fn percentiles_are_the_bounds_of_their_buckets() {
        // Ten waits: 9 of a minute or less, one of two days.
        let c = counts(&[10, 20, 30, 40, 50, 60, 60, 60, 60, 2 * 86_400]);
        assert_eq!((percentile(&c, 50), percentile(&c, 90)), (Some(60), Some(60)));
        let c = counts(&[10, 20, 30, 40, 50, 60, 60, 60, 2 * 86_400, 2 * 86_400]);
        assert_eq!(percentile(&c, 90), Some(2 * 86_400));
        assert_eq!(percentile(&counts(&[90 * 86_400]), 50), Some(30 * 86_400), "beyond the last bound");
        assert_eq!(percentile(&WaitCounts::default(), 50), None);
        let row = SlaRow::of("x".into(), &counts(&[100, 201]));
        assert_eq!(row.mean_seconds, Some(151), "rounded to the nearest second");
    }

    #[test]
    fn rows_are_slowest_first_and_name_the_bottleneck() {
        let row = |name: &str, waits: &[u64]| (WaitDimension::Level, name.to_owned(), counts(waits));
        let escalated =
            (WaitDimension::Level, "cab".to_owned(), WaitCounts { escalations: 2, ..WaitCounts::default() });
        let report = approval_sla(&["2026-11".into()], vec![row("lead", &[60]), row("security", &[3600]), escalated]);
        let keys: Vec<&str> = report.levels.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["security", "lead", "cab"]);
        assert_eq!(report.bottleneck.as_deref(), Some("security"));
    }
}
