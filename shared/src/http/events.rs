//! `POST /events`: EventBridge-shaped envelopes (what a rule would deliver),
//! accepted by the local hub so AWS-native events can be replayed into it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::error::ApiError;
use super::extract::JsonBody;
use crate::app::ingest::{self, Accepted, IngestError};
use crate::domain::HubEvent;
use crate::ports::{Clock, Dedupe, EventBus};

/// Routes the local hub serves in addition to [`super::ROUTES`].
pub const LOCAL_ROUTES: &[(axum::http::Method, &str)] = &[(axum::http::Method::POST, "/events")];

pub struct EventsState<D, B, C> {
    pub dedupe: D,
    pub bus: B,
    pub clock: C,
}

/// The envelope EventBridge delivers to a target.
#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    resources: Vec<String>,
    detail: Value,
}

pub fn router<D, B, C>(state: Arc<EventsState<D, B, C>>) -> Router
where
    D: Dedupe + 'static,
    B: EventBus + 'static,
    C: Clock + 'static,
{
    Router::new().route("/events", post(accept::<D, B, C>)).with_state(state)
}

async fn accept<D, B, C>(
    State(s): State<Arc<EventsState<D, B, C>>>,
    JsonBody(env): JsonBody<Envelope>,
) -> Result<Response, ApiError>
where
    D: Dedupe,
    B: EventBus,
    C: Clock,
{
    for (field, value) in [("id", &env.id), ("source", &env.source), ("detail-type", &env.detail_type)] {
        if value.trim().is_empty() || value.chars().count() > 256 {
            return Err(ApiError::invalid(field, format!("{field} must be 1 to 256 characters")));
        }
    }
    if !env.detail.is_object() {
        return Err(ApiError::invalid("detail", "detail must be a JSON object"));
    }
    let key = format!("event:{}:{}", env.source, env.id);
    let event = HubEvent {
        id: env.id,
        source: env.source,
        detail_type: env.detail_type,
        time: env.time,
        resources: env.resources,
        detail: env.detail,
    };
    match ingest::accept(&s.dedupe, &s.bus, &s.clock, &key, std::slice::from_ref(&event)).await {
        Ok(Accepted::Published) => {
            Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true, "id": event.id}))).into_response())
        }
        Ok(Accepted::Duplicate) => Ok(Json(json!({"duplicate": true, "id": event.id})).into_response()),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::Bus(e)) => {
            tracing::error!(error = %e, "event not published");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "publish_failed",
                "the event could not be published; retry",
            ))
        }
    }
}
