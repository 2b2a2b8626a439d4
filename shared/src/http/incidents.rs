//! `/incidents`: incident records (from PagerDuty, incident.io,
//! Alertmanager, CloudWatch, or declared here), declaring major incidents,
//! and resolving them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::extract::{JsonBody, PathText};
use super::query::{self, TypedQuery};
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::{ChangeStore, UnrelateRequest};
use crate::app::governance::DeclareIncident;
use crate::app::incidents::IncidentRequest;
use crate::domain::incident::{Incident, Source, Status};
use crate::ports::Clock;

/// `GET /incidents`: every filter optional; `since`/`until` bound `started_at`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentQuery {
    source: Option<Source>,
    external_id: Option<String>,
    service: Option<String>,
    status: Option<Status>,
    major: Option<bool>,
    change_related: Option<bool>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of incident records.
#[derive(serde::Serialize)]
struct IncidentList<'a> {
    incidents: &'a [Incident],
    next_cursor: Option<&'a str>,
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn incident_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/incidents", get(Self::list_incidents).post(Self::declare_incident))
            .route("/incidents/{id}", get(Self::get_incident))
            .route("/incidents/{id}/resolve", post(Self::resolve_incident))
            .route("/incidents/{id}/unrelate", post(Self::unrelate_incident))
    }

    async fn list_incidents(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<IncidentQuery>,
    ) -> Result<Response, ApiError> {
        let req = IncidentRequest {
            source: q.source,
            external_id: q.external_id,
            service: q.service,
            status: q.status,
            major: q.major,
            change_related: q.change_related,
            since: q.since,
            until: q.until,
            limit: q.limit,
            cursor: q.cursor,
        };
        let page = app.incidents(&caller, req).await?;
        Ok(Json(IncidentList { incidents: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    async fn get_incident(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.incident(&caller, &id).await?).into_response())
    }

    async fn declare_incident(
        State(app): AppState<S, C>,
        caller: Caller,
        JsonBody(incident): JsonBody<DeclareIncident>,
    ) -> Result<Response, ApiError> {
        let incident = app.governance().declare_incident(&caller, incident).await?;
        Ok((StatusCode::CREATED, Json(incident)).into_response())
    }

    async fn resolve_incident(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
    ) -> Result<Response, ApiError> {
        app.governance().resolve_incident(&caller, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    /// Removes a wrong tag (cab or admin), with a reason.
    async fn unrelate_incident(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<UnrelateRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.unrelate(&caller, &id, req).await?).into_response())
    }
}
