//! `/audit`: the tenant's governance trail and its security events, and the
//! layer that records every refused write (403) as a security event.

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ErrorMessage;
use super::query::{self, TypedQuery};
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::security::SecurityRequest;
use crate::domain::AuditEntry;
use crate::ports::{Clock, SecurityEvent};

/// `GET /audit/governance`: a page of the trail.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /audit/security`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityEventsQuery {
    #[serde(default, deserialize_with = "query::rfc3339")]
    since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "query::rfc3339")]
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(serde::Serialize)]
struct TrailResponse<'a> {
    entries: &'a [AuditEntry],
    next_cursor: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct SecurityResponse<'a> {
    events: &'a [SecurityEvent],
    next_cursor: Option<&'a str>,
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn audit_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/audit/governance", get(Self::governance_trail))
            .route("/audit/security", get(Self::security_events))
    }

    async fn governance_trail(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<TrailQuery>,
    ) -> Result<Response, ApiError> {
        let page = app.governance().trail(&caller, q.limit, q.cursor).await?;
        Ok(Json(TrailResponse { entries: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    async fn security_events(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<SecurityEventsQuery>,
    ) -> Result<Response, ApiError> {
        let req = SecurityRequest { since: q.since, until: q.until, limit: q.limit, cursor: q.cursor };
        let page = app.security_events(&caller, req).await?;
        Ok(Json(SecurityResponse { events: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    /// Records a write refused with 403 as a security event: the caller, the
    /// route (`POST /changes/{id}/decisions`), the path and the message they
    /// were given. One write per refusal. A refusal that cannot be recorded
    /// is not answered as if it had been: the store's error (503 to retry) is.
    pub(super) async fn record_refusals(State(app): AppState<S, C>, req: Request, next: Next) -> Response {
        let method = req.method().clone();
        if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return next.run(req).await;
        }
        let caller = req.extensions().get::<Caller>().cloned();
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
        let target = req.uri().path().to_owned();
        let response = next.run(req).await;
        if let (StatusCode::FORBIDDEN, Some(caller)) = (response.status(), caller) {
            let reason = response.extensions().get::<ErrorMessage>().map_or("", |m| m.0.as_str());
            let action = format!("{method} {route}");
            if let Err(e) = app.record_refusal(&caller, &action, &target, reason).await {
                tracing::error!(error = %e, action = %action, "the refusal could not be recorded as a security event");
                return ApiError::from(e).into_response();
            }
        }
        response
    }
}
