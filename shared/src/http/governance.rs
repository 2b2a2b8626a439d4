//! `/freezes`: the tenant's change freeze windows; `/delegations`: approvers'
//! out-of-office delegations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::json;

use super::extract::{JsonBody, PathText, TypedQuery};
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::delegations::RevokeDelegation;
use crate::app::governance::LiftFreeze;
use crate::domain::delegation::NewDelegation;
use crate::domain::freeze::FreezeWindow;
use crate::ports::Clock;

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn freeze_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/freezes", get(Self::list_freezes).post(Self::put_freeze))
            .route("/freezes/{id}", delete(Self::delete_freeze))
    }

    pub(super) fn delegation_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/delegations", get(Self::list_delegations).post(Self::delegate))
            .route("/delegations/{id}", delete(Self::revoke_delegation))
    }

    async fn list_delegations(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        let now = app.clock.now();
        let delegations: Vec<serde_json::Value> = app
            .governance()
            .delegations(&caller)
            .await?
            .into_iter()
            .map(|d| json!({ "active": d.is_active(now), "delegation": d }))
            .collect();
        Ok(Json(json!({ "delegations": delegations })).into_response())
    }

    async fn delegate(
        State(app): AppState<S, C>,
        caller: Caller,
        JsonBody(req): JsonBody<NewDelegation>,
    ) -> Result<Response, ApiError> {
        let delegation = app.governance().delegate(&caller, req).await?;
        Ok((StatusCode::CREATED, Json(delegation)).into_response())
    }

    async fn revoke_delegation(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        TypedQuery(revoke): TypedQuery<RevokeDelegation>,
    ) -> Result<Response, ApiError> {
        let delegation = app.governance().revoke_delegation(&caller, &id, revoke.reason).await?;
        Ok(Json(delegation).into_response())
    }

    /// The windows in force, each with who declared it, and the latest
    /// declarations and lifts (who, when, why).
    async fn list_freezes(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        let freezes = app.governance().freezes(&caller).await?;
        let now = app.clock.now();
        let windows: Vec<serde_json::Value> = freezes
            .windows
            .iter()
            .map(|w| {
                let declared = freezes.declared.get(&w.id);
                json!({
                    "window": w,
                    "next_occurrence": w.next_occurrence(now),
                    "declared_by": declared.map(|d| &d.by),
                    "declared_at": declared.map(|d| d.at),
                })
            })
            .collect();
        Ok(Json(json!({ "freezes": windows, "log": freezes.log })).into_response())
    }

    async fn put_freeze(
        State(app): AppState<S, C>,
        caller: Caller,
        JsonBody(window): JsonBody<FreezeWindow>,
    ) -> Result<Response, ApiError> {
        let window = app.governance().put_freeze(&caller, window).await?;
        Ok((StatusCode::CREATED, Json(window)).into_response())
    }

    async fn delete_freeze(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        TypedQuery(lift): TypedQuery<LiftFreeze>,
    ) -> Result<Response, ApiError> {
        app.governance().delete_freeze(&caller, &id, lift).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}
