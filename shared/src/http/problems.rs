//! `/problems`: problem records opened by recurring incidents, their fix and closing.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{JsonBody, PathText};
use super::query::TypedQuery;
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::problems::{CloseRequest, FixRequest, ProblemListRequest};
use crate::domain::problem::{Problem, ProblemId};
use crate::ports::{ActivityLog, Clock, ProblemStore};

/// `GET /problems`: every filter optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemsQuery {
    service: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of problems.
#[derive(serde::Serialize)]
struct ProblemList<'a> {
    problems: &'a [Problem],
    next_cursor: Option<&'a str>,
}

impl<S: ChangeStore + ActivityLog + ProblemStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn problem_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/problems", get(Self::list_problems))
            .route("/problems/{id}", get(Self::get_problem))
            .route("/problems/{id}/fix", post(Self::fix_problem))
            .route("/problems/{id}/close", post(Self::close_problem))
    }

    async fn list_problems(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<ProblemsQuery>,
    ) -> Result<Response, ApiError> {
        let req = ProblemListRequest { service: q.service, status: q.status, limit: q.limit, cursor: q.cursor };
        let page = app.problems(&caller, req).await?;
        Ok(Json(ProblemList { problems: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    async fn get_problem(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
    ) -> Result<Response, ApiError> {
        let id = ProblemId::parse(&id).map_err(crate::app::ChangeError::from)?;
        Ok(Json(app.problem(&caller, &id).await?).into_response())
    }

    async fn fix_problem(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<FixRequest>,
    ) -> Result<Response, ApiError> {
        let id = ProblemId::parse(&id).map_err(crate::app::ChangeError::from)?;
        Ok(Json(app.link_fix(&caller, &id, &req).await?).into_response())
    }

    async fn close_problem(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<CloseRequest>,
    ) -> Result<Response, ApiError> {
        let id = ProblemId::parse(&id).map_err(crate::app::ChangeError::from)?;
        Ok(Json(app.close_problem(&caller, &id, &req).await?).into_response())
    }
}
