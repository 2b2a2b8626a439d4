//! `/suppressions`: bulk-change maintenance windows of unauthorized-change
//! alerts (findings inside one are recorded as `suppressed`, nobody paged).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};

use super::extract::{JsonBody, PathText, TypedQuery};
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::suppressions::LiftSuppression;
use crate::domain::finding::suppression::Suppression;
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn suppression_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/suppressions", get(Self::list_suppressions).post(Self::declare_suppression))
            .route("/suppressions/{id}", delete(Self::lift_suppression))
    }

    /// The windows and the latest declarations and lifts.
    async fn list_suppressions(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        let doc = app.governance().suppressions(&caller).await?;
        Ok(Json(serde_json::json!({ "suppressions": doc.windows, "log": doc.log })).into_response())
    }

    async fn declare_suppression(
        State(app): AppState<S, C>,
        caller: Caller,
        JsonBody(window): JsonBody<Suppression>,
    ) -> Result<Response, ApiError> {
        let window = app.governance().declare_suppression(&caller, window).await?;
        Ok((StatusCode::CREATED, Json(window)).into_response())
    }

    async fn lift_suppression(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        TypedQuery(lift): TypedQuery<LiftSuppression>,
    ) -> Result<Response, ApiError> {
        app.governance().lift_suppression(&caller, &id, lift).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}
