//! Webhook routes: `POST /webhooks/{source}` (tenant `default`) and
//! `POST /tenants/{tenant}/webhooks/{source}`, and the local `POST /events`
//! for EventBridge-shaped envelopes (what a rule would deliver).
//!
//! Nothing is read from a webhook's body before its tenant and source are
//! known to have a secret, and at most [`WebhookLimits::concurrent_bodies`]
//! bodies are read at once, so unauthenticated requests cannot make the
//! process buffer more than that many times [`MAX_WEBHOOK_BYTES`].

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::app::Caller;
use crate::app::ingest::{DeliveryOutcome, Ingest, IngestError, IngestStore, MAX_WEBHOOK_BYTES, Webhooks};
use crate::domain::TenantId;
use crate::domain::access::Access;
use crate::domain::catalog::Role;
use crate::ingest::Origin;
use crate::ports::{CatalogReader, Clock, EventBus, SecretSource};

/// The webhook routes (served by the ingest Lambda and the local hub).
pub const WEBHOOK_ROUTES: &[(Method, &str)] =
    &[(Method::POST, "/webhooks/{source}"), (Method::POST, "/tenants/{tenant}/webhooks/{source}")];

/// The tenant of `/webhooks/{source}`.
pub const DEFAULT_TENANT: &str = "default";

/// Routes only the local hub serves.
pub const LOCAL_ROUTES: &[(Method, &str)] = &[(Method::POST, "/events")];

const WEBHOOK_SOURCES: [Origin; 6] =
    [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio, Origin::Argocd];

/// How many webhook bodies are read at once by default (each up to
/// [`MAX_WEBHOOK_BYTES`]); more concurrent deliveries are answered 503 with
/// `Retry-After`.
pub const DEFAULT_CONCURRENT_BODIES: usize = 8;

/// Limits of the webhook routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookLimits {
    pub concurrent_bodies: usize,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        Self { concurrent_bodies: DEFAULT_CONCURRENT_BODIES }
    }
}

struct WebhookState<D, B, K, S, C> {
    webhooks: Arc<Webhooks<D, B, K, S, C>>,
    bodies: Semaphore,
}

type Shared<D, B, K, S, C> = Arc<WebhookState<D, B, K, S, C>>;

pub fn webhook_routes<D, B, K, S, C>(webhooks: Arc<Webhooks<D, B, K, S, C>>, limits: WebhookLimits) -> Router
where
    D: IngestStore + 'static,
    B: EventBus + 'static,
    K: CatalogReader + 'static,
    S: SecretSource + 'static,
    C: Clock + 'static,
{
    let state = Arc::new(WebhookState { webhooks, bodies: Semaphore::new(limits.concurrent_bodies.max(1)) });
    Router::new()
        .route("/webhooks/{source}", post(default_tenant::<D, B, K, S, C>))
        .route("/tenants/{tenant}/webhooks/{source}", post(for_tenant::<D, B, K, S, C>))
        .with_state(state)
}

/// `POST /events` (local hub only): AWS events for the token's tenant, from
/// a caller with the admin or ingest role (`changehub replay` mints an ingest token).
pub fn local_routes<D, B, K, C>(ingest: Arc<Ingest<D, B, K, C>>, auth: super::bearer::Authenticator) -> Router
where
    D: IngestStore + 'static,
    B: EventBus + 'static,
    K: CatalogReader + 'static,
    C: Clock + 'static,
{
    Router::new()
        .route("/events", post(aws_event::<D, B, K, C>))
        .route_layer(axum::middleware::from_fn_with_state(std::sync::Arc::new(auth), super::bearer::authenticate))
        .with_state(ingest)
}

fn origin(source: &str) -> Result<Origin, ApiError> {
    WEBHOOK_SOURCES.into_iter().find(|o| o.as_str() == source).ok_or_else(|| {
        let known: Vec<_> = WEBHOOK_SOURCES.iter().map(|o| o.as_str()).collect();
        ApiError::not_found(format!("no webhook source {source:?}; known: {}", known.join(", ")))
    })
}

async fn body(req: Request) -> Result<(HeaderMap, axum::body::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_WEBHOOK_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {MAX_WEBHOOK_BYTES} bytes"),
        )
    })?;
    Ok((parts.headers, bytes))
}

/// A path parameter that does not decode (not UTF-8): the JSON error the
/// route would give for a wrong value, not axum's plain-text rejection.
fn undecodable(name: &str) -> ApiError {
    match name {
        "tenant" => ApiError::invalid("tenant", "tenant must be a slug of a-z, 0-9, '.', '_' or '-'"),
        _ => ApiError::not_found("no such webhook source; known: github, gitlab, pagerduty, alertmanager, incidentio"),
    }
}

async fn default_tenant<D, B, K, S, C>(
    State(state): State<Shared<D, B, K, S, C>>,
    source: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    let Path(source) = source.map_err(|_| undecodable("source"))?;
    let tenant = TenantId::parse(DEFAULT_TENANT)?;
    webhook(&state, &tenant, &source, req).await
}

async fn for_tenant<D, B, K, S, C>(
    State(state): State<Shared<D, B, K, S, C>>,
    params: Result<Path<Vec<(String, String)>>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    // axum's rejection names the parameter that did not decode.
    let Path(params) =
        params.map_err(|r| undecodable(if r.body_text().contains("`tenant`") { "tenant" } else { "source" }))?;
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let tenant = TenantId::parse(get("tenant")).map_err(|e| ApiError::invalid("tenant", e.message))?;
    webhook(&state, &tenant, get("source"), req).await
}

async fn webhook<D, B, K, S, C>(
    state: &WebhookState<D, B, K, S, C>,
    tenant: &TenantId,
    source: &str,
    req: Request,
) -> Result<Response, ApiError>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    let origin = origin(source)?;
    // Refused before a byte of the body is read: a tenant or source without a secret.
    let secrets = match state.webhooks.secrets(tenant, origin).await {
        Ok(secrets) => secrets,
        Err(e) => return answer(Err(e)),
    };
    let Ok(_permit) = state.bodies.try_acquire() else {
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many webhook deliveries are being read at once; retry",
        )
        .into_response();
        busy.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        return Ok(busy);
    };
    let (headers, bytes) = body(req).await?;
    answer(state.webhooks.webhook(tenant, origin, &secrets, &headers, &bytes).await)
}

async fn aws_event<D, B, K, C>(
    State(ingest): State<Arc<Ingest<D, B, K, C>>>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError>
where
    D: IngestStore,
    B: EventBus,
    K: CatalogReader,
    C: Clock,
{
    let view = ingest.catalog.catalog(&caller.tenant).await?;
    Access::new(&caller, &view.catalog.roles)
        .require(&[Role::Admin, Role::Ingest], "sending AWS events")
        .map_err(|e| ApiError::from(crate::app::ChangeError::Forbidden(e)))?;
    let (_, bytes) = body(req).await?;
    answer(ingest.aws_event(&caller.tenant, &bytes).await)
}

fn answer(result: Result<DeliveryOutcome, IngestError>) -> Result<Response, ApiError> {
    match result {
        Ok(DeliveryOutcome::Published(ids)) => {
            Ok((StatusCode::ACCEPTED, Json(json!({"accepted": ids.len(), "events": ids}))).into_response())
        }
        Ok(DeliveryOutcome::Duplicate) => Ok(Json(json!({"duplicate": true})).into_response()),
        Ok(DeliveryOutcome::Ignored(kind)) => Ok(Json(json!({"ignored": kind})).into_response()),
        Err(IngestError::Unauthorized(e)) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))
        }
        Err(e @ IngestError::TooLarge { .. }) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "event_too_large", e.to_string()))
        }
        Err(IngestError::InProgress) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "in_progress",
            "this delivery is being processed by another request; retry",
        )),
        Err(IngestError::Invalid(e)) => Err(match e.field {
            _ if e.malformed => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.message),
            Some(field) => ApiError::invalid(field, e.message),
            None => ApiError::invalid("body", e.message),
        }),
        Err(IngestError::Store(e)) => Err(e.into()),
        Err(IngestError::Secrets(e)) => {
            tracing::error!(error = %e, "secrets unavailable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "webhook secrets are unavailable; retry"))
        }
        Err(IngestError::Bus(e)) => {
            tracing::error!(error = %e, "events not published");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "publish_failed",
                "the events could not be published; retry",
            ))
        }
    }
}
