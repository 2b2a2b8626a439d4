//! `/incidents`: declared incidents, and resolving them.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

use super::extract::{JsonBody, PathText};
use super::{Api, ApiError, AppState};
use crate::app::changes::ChangeStore;
use crate::app::governance::DeclareIncident;
use crate::app::{Caller, Changes};
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn incident_routes() -> Router<Arc<Changes<S, C>>> {
        Router::new()
            .route("/incidents", get(Self::list_incidents).post(Self::declare_incident))
            .route("/incidents/{id}/resolve", post(Self::resolve_incident))
    }

    async fn list_incidents(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        Ok(Json(app.governance().incidents(&caller).await?).into_response())
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
}
