//! `/activity`: the hub events the hub accepted, newest first.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::query::{self, TypedQuery};
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::activity::ActivityRequest;
use crate::app::changes::ChangeStore;
use crate::ports::{Activity, ActivityLog, Clock};

/// `GET /activity`: every filter optional; `since`/`until` bound the event time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    service: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    detail_type: Option<String>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of the activity log.
#[derive(serde::Serialize)]
struct ActivityList<'a> {
    activity: &'a [Activity],
    next_cursor: Option<&'a str>,
}

impl<S: ChangeStore + ActivityLog, C: Clock + 'static> Api<S, C> {
    pub(super) fn activity_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes.route("/activity", get(Self::list_activity))
    }

    async fn list_activity(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<ActivityQuery>,
    ) -> Result<Response, ApiError> {
        let req = ActivityRequest {
            service: q.service,
            source: q.source,
            detail_type: q.detail_type,
            since: q.since,
            until: q.until,
            limit: q.limit,
            cursor: q.cursor,
        };
        let page = app.activity(&caller, req).await?;
        Ok(Json(ActivityList { activity: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }
}
