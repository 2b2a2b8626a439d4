//! `/changes`: create, read, list, move and decide changes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::extract::{ChangeIdPath, JsonBody, PathText};
use super::query::{self, TypedQuery};
use super::{Api, ApiError, AppState, ListResponse, Routes};
use crate::app::changes::{
    ChangeStore, DecisionReceipt, DecisionRequest, EditRequest, NoteRequest, RescheduleRequest, ReviewRequest,
};
use crate::app::{Caller, ListRequest, TransitionRequest};
use crate::domain::{ChangeId, ChangeState, ChangeType, NewChange};
use crate::ports::Clock;

/// `GET /changes`: the tenant's changes in a time range, filtered, a page at a time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    state: Option<ChangeState>,
    #[serde(rename = "type")]
    change_type: Option<ChangeType>,
    requester: Option<String>,
    approver: Option<String>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    from: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    to: Option<DateTime<Utc>>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(serde::Serialize)]
struct AuditResponse<'a> {
    change_id: ChangeId,
    entries: &'a [crate::domain::AuditEntry],
}

/// The answer to a decision: the change, and which steps the decision counted for.
#[derive(serde::Serialize)]
struct DecisionAnswer<'a> {
    #[serde(flatten)]
    change: &'a crate::domain::Change,
    decision: &'a DecisionReceipt,
}

/// 201 with the new change and its `Location`.
fn created(change: crate::domain::Change) -> Response {
    let location = format!("/changes/{}", change.id);
    let mut response = (StatusCode::CREATED, Json(change)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn change_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/changes", post(Self::create).get(Self::list))
            .route("/changes/{id}", get(Self::get_change).patch(Self::edit))
            .route("/changes/{id}/transitions", post(Self::transition))
            .route("/changes/{id}/audit", get(Self::audit))
            .route("/changes/{id}/decisions", post(Self::decide))
            .route("/changes/{id}/reschedule", post(Self::reschedule))
            .route("/changes/{id}/checklist/{item}", post(Self::checklist_item))
            .route("/changes/{id}/review", post(Self::review))
            .route("/changes/{id}/clear-suspect", post(Self::clear_suspect))
            .route("/changes/{id}/rework", post(Self::rework))
    }

    async fn create(
        State(app): AppState<S, C>,
        caller: Caller,
        JsonBody(input): JsonBody<NewChange>,
    ) -> Result<Response, ApiError> {
        Ok(created(app.create(&caller, input).await?))
    }

    async fn edit(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<EditRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.edit(&caller, &id, req).await?).into_response())
    }

    async fn rework(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<EditRequest>,
    ) -> Result<Response, ApiError> {
        Ok(created(app.rework(&caller, &id, req).await?))
    }

    async fn get_change(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
    ) -> Result<Response, ApiError> {
        let change = app.get(&caller, &id).await?;
        Ok(Json(change).into_response())
    }

    async fn list(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<ListQuery>,
    ) -> Result<Response, ApiError> {
        let req = ListRequest {
            service: q.service,
            from: q.from,
            to: q.to,
            limit: q.limit,
            cursor: q.cursor,
            state: q.state,
            change_type: q.change_type,
            requester: q.requester,
            approver: q.approver,
        };
        let page = app.list(&caller, req).await?;
        Ok(Json(ListResponse { changes: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    async fn transition(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<TransitionRequest>,
    ) -> Result<Response, ApiError> {
        let change = app.transition(&caller, &id, req).await?;
        Ok(Json(change).into_response())
    }

    async fn audit(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
    ) -> Result<Response, ApiError> {
        let entries = app.audit(&caller, &id).await?;
        Ok(Json(AuditResponse { change_id: id, entries: &entries }).into_response())
    }

    async fn decide(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<DecisionRequest>,
    ) -> Result<Response, ApiError> {
        let decided = app.decide(&caller, &id, req).await?;
        Ok(Json(DecisionAnswer { change: &decided.change, decision: &decided.receipt }).into_response())
    }

    async fn reschedule(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<RescheduleRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.reschedule(&caller, &id, req).await?).into_response())
    }

    async fn checklist_item(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        PathText((_, item)): PathText<(String, String)>,
        JsonBody(req): JsonBody<NoteRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.complete_item(&caller, &id, &item, req).await?).into_response())
    }

    async fn review(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<ReviewRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.review(&caller, &id, req).await?).into_response())
    }

    async fn clear_suspect(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        JsonBody(req): JsonBody<NoteRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.clear_suspect(&caller, &id, req).await?).into_response())
    }
}
