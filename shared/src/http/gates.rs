//! `/gates/deployments`: the deployment gate any CI asks, in one round trip
//! or held as a long poll (`?wait=60s`) while the answer is pending.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json};
use serde::Deserialize;
use std::time::Duration;

use super::extract::JsonBody;
use super::query::TypedQuery;
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::gate::{MAX_WAIT, Wakeups};
use crate::domain::catalog::Span;
use crate::domain::gate::GateRequest;
use crate::ports::{ActivityLog, Clock};

/// `POST /gates/deployments?wait=60s`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateQuery {
    /// How long a pending answer may be held (`30s`, `2m`; at most 5m).
    wait: Option<String>,
}

/// What lets this server hold a pending answer: what wakes it, and the
/// longest it may hold one (less than the server's request timeout). Added
/// as an extension by `changehub serve`; without it answers are given at once.
#[derive(Clone)]
pub struct LongPoll {
    pub wakeups: Wakeups,
    pub longest: Duration,
}

fn wait(q: &GateQuery) -> Result<Duration, ApiError> {
    let Some(raw) = q.wait.as_deref() else { return Ok(Duration::ZERO) };
    let wait = match raw {
        "0" => Duration::ZERO,
        raw => Span::parse(raw).map_err(|e| ApiError::invalid("wait", format!("wait {e}")))?.0,
    };
    if wait > MAX_WAIT {
        return Err(ApiError::invalid("wait", format!("wait must be at most {}s; got {raw:?}", MAX_WAIT.as_secs())));
    }
    Ok(wait)
}

impl<S: ChangeStore + ActivityLog, C: Clock + 'static> Api<S, C> {
    pub(super) fn gate_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes.route("/gates/deployments", post(Self::deployment_gate))
    }

    /// Answers `{allowed, status, code, reason, gated, change}`: 200 whatever
    /// the answer, which is recorded in the activity log. The wait is held
    /// only where the hub is told when to decide again (`changehub serve`).
    async fn deployment_gate(
        State(app): AppState<S, C>,
        caller: Caller,
        long_poll: Option<Extension<LongPoll>>,
        TypedQuery(q): TypedQuery<GateQuery>,
        JsonBody(req): JsonBody<GateRequest>,
    ) -> Result<Response, ApiError> {
        let wait = wait(&q)?;
        let (wait, wakeups) = match &long_poll {
            Some(Extension(poll)) => (wait.min(poll.longest), Some(&poll.wakeups)),
            None => (Duration::ZERO, None),
        };
        let decision = app.gate(&caller, req, wait, wakeups).await?;
        Ok(Json(decision).into_response())
    }
}
