//! Webhook routes: `POST /webhooks/{source}` (tenant `default`) and
//! `POST /tenants/{tenant}/webhooks/{source}`, and the local `POST /events`
//! for EventBridge-shaped envelopes (what a rule would deliver).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use super::error::ApiError;
use crate::app::Caller;
use crate::app::ingest::{Ingest, IngestError, MAX_WEBHOOK_BYTES, Outcome};
use crate::domain::TenantId;
use crate::domain::access::Access;
use crate::domain::catalog::Role;
use crate::ingest::Origin;
use crate::ports::{CatalogReader, Clock, Dedupe, EventBus, SecretSource};

/// The webhook routes (served by the ingest Lambda and the local hub).
pub const WEBHOOK_ROUTES: &[(Method, &str)] =
    &[(Method::POST, "/webhooks/{source}"), (Method::POST, "/tenants/{tenant}/webhooks/{source}")];

/// Routes only the local hub serves.
pub const LOCAL_ROUTES: &[(Method, &str)] = &[(Method::POST, "/events")];

const WEBHOOK_SOURCES: [Origin; 5] =
    [Origin::Github, Origin::Gitlab, Origin::Pagerduty, Origin::Alertmanager, Origin::Incidentio];

type Shared<D, B, K, S, C> = Arc<Ingest<D, B, K, S, C>>;

pub fn webhook_routes<D, B, K, S, C>(ingest: Shared<D, B, K, S, C>) -> Router
where
    D: Dedupe + 'static,
    B: EventBus + 'static,
    K: CatalogReader + 'static,
    S: SecretSource + 'static,
    C: Clock + 'static,
{
    Router::new()
        .route("/webhooks/{source}", post(default_tenant::<D, B, K, S, C>))
        .route("/tenants/{tenant}/webhooks/{source}", post(for_tenant::<D, B, K, S, C>))
        .with_state(ingest)
}

/// `POST /events` (local hub only): AWS events for the token's tenant, from
/// a caller with the admin or ingest role (`changehub replay` mints an ingest token).
pub fn local_routes<D, B, K, S, C>(ingest: Shared<D, B, K, S, C>, auth: super::auth::Authenticator) -> Router
where
    D: Dedupe + 'static,
    B: EventBus + 'static,
    K: CatalogReader + 'static,
    S: SecretSource + 'static,
    C: Clock + 'static,
{
    Router::new()
        .route("/events", post(aws_event::<D, B, K, S, C>))
        .route_layer(axum::middleware::from_fn_with_state(std::sync::Arc::new(auth), super::auth::authenticate))
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
    State(ingest): State<Shared<D, B, K, S, C>>,
    source: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError>
where
    D: Dedupe,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    let Path(source) = source.map_err(|_| undecodable("source"))?;
    let tenant = TenantId::parse("default")?;
    webhook(&ingest, &tenant, &source, req).await
}

async fn for_tenant<D, B, K, S, C>(
    State(ingest): State<Shared<D, B, K, S, C>>,
    params: Result<Path<Vec<(String, String)>>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError>
where
    D: Dedupe,
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
    webhook(&ingest, &tenant, get("source"), req).await
}

async fn webhook<D, B, K, S, C>(
    ingest: &Ingest<D, B, K, S, C>,
    tenant: &TenantId,
    source: &str,
    req: Request,
) -> Result<Response, ApiError>
where
    D: Dedupe,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    let origin = origin(source)?;
    let (headers, bytes) = body(req).await?;
    answer(ingest.webhook(tenant, origin, &headers, &bytes).await)
}

async fn aws_event<D, B, K, S, C>(
    State(ingest): State<Shared<D, B, K, S, C>>,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError>
where
    D: Dedupe,
    B: EventBus,
    K: CatalogReader,
    S: SecretSource,
    C: Clock,
{
    let view = ingest.catalog.catalog(&caller.tenant).await?;
    Access::new(&caller, &view.catalog.roles)
        .require(&[Role::Admin, Role::Ingest], "sending AWS events")
        .map_err(|e| ApiError::from(crate::app::ChangeError::Forbidden(e)))?;
    let (_, bytes) = body(req).await?;
    answer(ingest.aws_event(&caller.tenant, &bytes).await)
}

fn answer(result: Result<Outcome, IngestError>) -> Result<Response, ApiError> {
    match result {
        Ok(Outcome::Published(ids)) => {
            Ok((StatusCode::ACCEPTED, Json(json!({"accepted": ids.len(), "events": ids}))).into_response())
        }
        Ok(Outcome::Duplicate) => Ok(Json(json!({"duplicate": true})).into_response()),
        Ok(Outcome::Ignored(kind)) => Ok(Json(json!({"ignored": kind})).into_response()),
        Err(IngestError::Unauthorized(e)) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.check)),
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
