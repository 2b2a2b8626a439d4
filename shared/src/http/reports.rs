//! `/reports`: cross-change views for reviewers: emergency changes awaiting
//! their review, and the approval SLA (mean time to approve).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::query::TypedQuery;
use super::{Api, ApiError, AppState, ListResponse, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::changes::sla::SlaPeriod;
use crate::ports::Clock;

/// `GET /reports/pending-reviews`: a page of changes awaiting their post-implementation review.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn report_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/reports/pending-reviews", get(Self::pending_reviews))
            .route("/reports/approval-sla", get(Self::approval_sla))
    }

    /// `GET /reports/approval-sla?period=YYYY-MM` (or `from` and `to`): mean time to approve per level, service, team and change type.
    async fn approval_sla(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<SlaPeriod>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.approval_sla(&caller, &q).await?).into_response())
    }

    async fn pending_reviews(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<PageQuery>,
    ) -> Result<Response, ApiError> {
        let page = app.pending_reviews(&caller, q.limit, q.cursor).await?;
        Ok(Json(ListResponse { changes: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }
}
