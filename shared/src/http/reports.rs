//! `/reports`: cross-change views for reviewers.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;

use super::query::TypedQuery;
use super::{Api, ApiError, AppState, ListResponse};
use crate::app::changes::ChangeStore;
use crate::app::{Caller, Changes};
use crate::ports::Clock;

/// `GET /reports/pending-reviews`: a page of changes awaiting their post-implementation review.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn report_routes() -> Router<Arc<Changes<S, C>>> {
        Router::new().route("/reports/pending-reviews", get(Self::pending_reviews))
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
