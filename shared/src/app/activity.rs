//! The activity log: every hub event the hub accepted, per tenant, for a
//! configurable period. Ingest writes it ([`crate::app::ingest`]); people
//! read it here (`GET /activity`, `changehub activity`).

use chrono::{DateTime, Utc};

use super::changes::{ChangeError, ChangeStore, Changes, page};
use crate::config::ConfigError;
use crate::domain::access::Caller;
use crate::domain::new_change::in_supported_range;
use crate::domain::{FieldError, ServiceName};
use crate::ingest::Origin;
use crate::ingest::canonical::{DETAIL_TYPES, detail_type};
use crate::ports::{Activity, ActivityLog, ActivityQuery, Clock, GATE_DETAIL_TYPE, GATE_SOURCE, Page};

/// How long the log keeps an event by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention configurable (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;
/// The variable the ingest functions (and `changehub serve`) read it from.
pub const RETENTION_VARIABLE: &str = "CHANGEHUB_ACTIVITY_RETENTION_DAYS";

/// A retention outside 1 to [`MAX_RETENTION_DAYS`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the activity retention must be 1 to {MAX_RETENTION_DAYS} days; got {0}")]
pub struct InvalidRetention(pub u32);

/// How long the activity log keeps an event, counted from when the hub
/// accepted it (its TTL), in whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityRetention {
    days: u32,
}

impl Default for ActivityRetention {
    fn default() -> Self {
        Self { days: DEFAULT_RETENTION_DAYS }
    }
}

impl ActivityRetention {
    /// `days`, from 1 to [`MAX_RETENTION_DAYS`].
    pub fn days(days: u32) -> Result<Self, InvalidRetention> {
        if (1..=MAX_RETENTION_DAYS).contains(&days) { Ok(Self { days }) } else { Err(InvalidRetention(days)) }
    }

    /// [`RETENTION_VARIABLE`] (default [`DEFAULT_RETENTION_DAYS`]), read once at start.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(crate::config::optional(RETENTION_VARIABLE).as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { name: RETENTION_VARIABLE, message };
        match value {
            None => Ok(Self::default()),
            Some(v) => {
                let days =
                    v.parse::<u32>().map_err(|_| invalid(format!("expected a whole number of days; got {v:?}")))?;
                Self::days(days).map_err(|e| invalid(e.to_string()))
            }
        }
    }

    pub fn as_days(self) -> u32 {
        self.days
    }

    /// When a row accepted at `received_at` leaves the log.
    pub fn expiry(self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        received_at.checked_add_signed(chrono::Duration::days(i64::from(self.days))).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A `since`/`until` pair of a listing: each in the supported years, `until` not before `since`.
pub(crate) fn time_range(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<(), FieldError> {
    for (field, t) in [("since", since), ("until", until)] {
        if t.is_some_and(|t| !in_supported_range(t)) {
            return Err(FieldError::new(field, format!("{field} must be between the years 2000 and 9998")));
        }
    }
    match (since, until) {
        (Some(since), Some(until)) if until < since => Err(FieldError::new("until", "until must not be before since")),
        _ => Ok(()),
    }
}

/// `GET /activity?service=&source=&type=&since=&until=`: every filter optional.
#[derive(Debug, Clone, Default)]
pub struct ActivityRequest {
    pub service: Option<String>,
    /// An origin (`github`) or a hub event source (`changehub.github`).
    pub source: Option<String>,
    /// A `detail-type`, as written or as its schema file's stem.
    pub detail_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl<S: ChangeStore + ActivityLog, C: Clock> Changes<S, C> {
    /// A page of the caller's tenant's activity, newest first. Any role that
    /// reads changes reads it. One store query, whatever the log holds.
    pub async fn activity(&self, caller: &Caller, req: ActivityRequest) -> Result<Page<Activity>, ChangeError> {
        self.reader(caller, "reading the activity log").await?;
        let service = req.service.as_deref().map(ServiceName::parse).transpose()?.map(|s| s.as_str().to_owned());
        let source = req.source.as_deref().map(event_source).transpose()?;
        let detail_type = req
            .detail_type
            .as_deref()
            .map(|t| {
                detail_type(t).or_else(|| gate_type(t)).ok_or_else(|| {
                    let known = format!("{}, {GATE_DETAIL_TYPE}", DETAIL_TYPES.join(", "));
                    FieldError::new("type", format!("type must be one of {known}; got {t:?}"))
                })
            })
            .transpose()?
            .map(str::to_owned);
        time_range(req.since, req.until)?;
        let (limit, after) = page(req.limit, req.cursor.as_deref())?;
        let query = ActivityQuery {
            tenant: caller.tenant.clone(),
            since: req.since,
            until: req.until,
            service,
            source,
            detail_type,
            now: self.clock.now(),
            limit,
            after,
        };
        Ok(self.store.activity(&query).await?)
    }
}

/// The hub event source a `source` filter names: an origin (`github`) or
/// the source itself (`changehub.github`).
fn event_source(name: &str) -> Result<String, FieldError> {
    let origin = name.strip_prefix(crate::domain::event::SOURCE_PREFIX).unwrap_or(name);
    if GATE_SOURCE.strip_prefix(crate::domain::event::SOURCE_PREFIX) == Some(origin) {
        return Ok(GATE_SOURCE.to_owned());
    }
    Origin::parse(origin).map(Origin::source).ok_or_else(|| {
        FieldError::new(
            "source",
            format!(
                "source must be one of github, gitlab, pagerduty, alertmanager, incidentio, aws, gate; got {name:?}"
            ),
        )
    })
}

/// The deployment gate's rows' type, as a person writes it (any case, or hyphenated).
fn gate_type(name: &str) -> Option<&'static str> {
    GATE_DETAIL_TYPE.eq_ignore_ascii_case(&name.trim().replace('-', " ")).then_some(GATE_DETAIL_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_defaults_to_thirty_days_and_refuses_what_is_not_a_day_count() {
        assert_eq!(ActivityRetention::parse(None).map(ActivityRetention::as_days).ok(), Some(30));
        assert_eq!(ActivityRetention::parse(Some("7")).map(ActivityRetention::as_days).ok(), Some(7));
        for bad in ["0", "3651", "-1", "30d", "many"] {
            let err = ActivityRetention::parse(Some(bad)).expect_err(bad).to_string();
            assert!(err.contains(RETENTION_VARIABLE), "{bad}: {err}");
        }
    }

    #[test]
    fn a_row_expires_its_retention_after_it_was_received() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T22:00:00Z").expect("time").with_timezone(&Utc);
        let seven = ActivityRetention::days(7).expect("7 days");
        assert_eq!(seven.expiry(at).to_rfc3339(), "2026-12-08T22:00:00+00:00");
        assert_eq!(ActivityRetention::days(0), Err(InvalidRetention(0)));
        assert_eq!(InvalidRetention(0).to_string(), "the activity retention must be 1 to 3650 days; got 0");
    }

    #[test]
    fn a_source_filter_is_an_origin_or_an_event_source() {
        assert_eq!(event_source("github").as_deref(), Ok("changehub.github"));
        assert_eq!(event_source("changehub.aws").as_deref(), Ok("changehub.aws"));
        let err = event_source("changehub.change").expect_err("not an ingest source");
        assert_eq!(err.field, "source");
    }
}
