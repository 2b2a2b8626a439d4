//! The HTTP API: one axum router, served by the api Lambda (through
//! lambda_http) and by `changehub serve`. The OpenAPI document
//! `openapi.yaml` at the repository root describes exactly these routes.

pub mod bearer;
pub mod error;
pub mod extract;
pub mod webhooks;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

use crate::app::changes::ChangeStore;
use crate::app::changes::{DecisionRequest, NoteRequest, RescheduleRequest};
use crate::app::{Caller, Changes, ListRequest, TransitionRequest};
use crate::domain::{ChangeId, NewChange};
use crate::ports::Clock;
use bearer::Authenticator;
pub use error::ApiError;
use extract::{CatalogBody, ChangeIdPath, PathText, QueryParams};
pub use extract::{JsonBody, MAX_BODY_BYTES};

/// Every route the router serves: the OpenAPI agreement test checks this list
/// against `openapi.yaml` and against the router itself.
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/health"),
    (Method::POST, "/changes"),
    (Method::GET, "/changes"),
    (Method::GET, "/changes/{id}"),
    (Method::POST, "/changes/{id}/transitions"),
    (Method::GET, "/changes/{id}/audit"),
    (Method::POST, "/changes/{id}/decisions"),
    (Method::POST, "/changes/{id}/reschedule"),
    (Method::POST, "/changes/{id}/checklist/{item}"),
    (Method::POST, "/changes/{id}/review"),
    (Method::GET, "/me"),
    (Method::GET, "/catalog"),
    (Method::PUT, "/catalog"),
    (Method::GET, "/freezes"),
    (Method::POST, "/freezes"),
    (Method::DELETE, "/freezes/{id}"),
    (Method::GET, "/incidents"),
    (Method::POST, "/incidents"),
    (Method::POST, "/incidents/{id}/resolve"),
    (Method::GET, "/reports/pending-reviews"),
];

/// The API as the api Lambda serves it.
pub fn router<S, C>(changes: Arc<Changes<S, C>>, auth: Authenticator) -> Router
where
    S: ChangeStore,
    C: Clock + 'static,
{
    finish(change_routes(changes, auth))
}

/// The change API's routes, without the JSON fallbacks and request context.
/// Every route but `/health` needs a bearer token.
pub fn change_routes<S, C>(changes: Arc<Changes<S, C>>, auth: Authenticator) -> Router
where
    S: ChangeStore,
    C: Clock + 'static,
{
    Router::new()
        .route("/changes", post(create::<S, C>).get(list::<S, C>))
        .route("/changes/{id}", get(get_change::<S, C>))
        .route("/changes/{id}/transitions", post(transition::<S, C>))
        .route("/changes/{id}/audit", get(audit::<S, C>))
        .route("/changes/{id}/decisions", post(decide::<S, C>))
        .route("/changes/{id}/reschedule", post(reschedule::<S, C>))
        .route("/changes/{id}/checklist/{item}", post(checklist_item::<S, C>))
        .route("/changes/{id}/review", post(review::<S, C>))
        .route("/me", get(me::<S, C>))
        .route("/freezes", get(list_freezes::<S, C>).post(put_freeze::<S, C>))
        .route("/freezes/{id}", axum::routing::delete(delete_freeze::<S, C>))
        .route("/incidents", get(list_incidents::<S, C>).post(declare_incident::<S, C>))
        .route("/incidents/{id}/resolve", post(resolve_incident::<S, C>))
        .route("/reports/pending-reviews", get(pending_reviews::<S, C>))
        .route("/catalog", get(get_catalog::<S, C>).put(put_catalog::<S, C>))
        .route_layer(middleware::from_fn_with_state(Arc::new(auth), bearer::authenticate))
        .route("/health", get(health))
        .with_state(changes)
}

/// Adds what every served router has: JSON 404/405 answers and a request span.
pub fn finish(routes: Router) -> Router {
    routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_context))
}

/// One span per request carrying its correlation id, echoed as `x-request-id`,
/// and the acting user once authenticated.
async fn request_context(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // `user` is recorded by `auth::authenticate` once the token is verified.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        user = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "response"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn route_not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[derive(serde::Serialize)]
struct ListResponse<'a> {
    changes: &'a [crate::domain::Change],
    next_cursor: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct AuditResponse<'a> {
    change_id: ChangeId,
    entries: &'a [crate::domain::AuditEntry],
}

type AppState<S, C> = State<Arc<Changes<S, C>>>;

async fn create<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    JsonBody(input): JsonBody<NewChange>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let change = app.create(&caller, input).await?;
    let location = format!("/changes/{}", change.id);
    let mut response = (StatusCode::CREATED, Json(change)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn get_change<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let change = app.get(&caller, &id).await?;
    Ok(Json(change).into_response())
}

fn parse_time(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("{name} must be an RFC 3339 time such as 2026-12-01T22:00:00Z; got {raw:?}"),
                )
            })
        })
        .transpose()
}

async fn list<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    const KNOWN: [&str; 5] = ["service", "from", "to", "limit", "cursor"];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown query parameter; known: {}", KNOWN.join(", ")),
        ));
    }
    let limit = parse_limit(&params)?;
    let req = ListRequest {
        service: params.get("service").cloned(),
        from: parse_time(&params, "from")?,
        to: parse_time(&params, "to")?,
        limit,
        cursor: params.get("cursor").cloned(),
    };
    let page = app.list(&caller, req).await?;
    Ok(Json(ListResponse { changes: &page.items, next_cursor: page.next.as_deref() }).into_response())
}

async fn transition<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
    JsonBody(req): JsonBody<TransitionRequest>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let change = app.transition(&caller, &id, req).await?;
    Ok(Json(change).into_response())
}

async fn audit<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let entries = app.audit(&caller, &id).await?;
    Ok(Json(AuditResponse { change_id: id, entries: &entries }).into_response())
}

#[derive(serde::Serialize)]
struct MeResponse<'a> {
    user: &'a str,
    tenant: &'a str,
    groups: &'a [String],
    roles: Vec<crate::domain::catalog::Role>,
}

/// Who the token says the caller is, and what their groups grant: the first thing to check on a 403.
async fn me<S, C>(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let roles = app.roles(&caller).await?.into_iter().collect();
    let body = MeResponse { user: &caller.user, tenant: caller.tenant.as_str(), groups: &caller.groups, roles };
    Ok(Json(body).into_response())
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

async fn get_catalog<S, C>(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let view = app.catalog.read(&caller).await?;
    let mut response = Json(json!({"version": view.version, "catalog": view.catalog})).into_response();
    response.headers_mut().insert(header::ETAG, etag(view.version));
    Ok(response)
}

/// The version an `If-Match` header names: `"3"`, `3` or `W/"3"`.
fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = raw.to_str().unwrap_or("").trim();
    if text == "*" {
        // Any current version: no precondition beyond the version read just before the write.
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<u64>().map(Some).map_err(|_| {
        ApiError::invalid(
            "if-match",
            format!("If-Match must be the version an earlier GET returned, such as \"3\"; got {text:?}"),
        )
    })
}

async fn put_catalog<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: CatalogBody,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let expected = if_match(&headers)?;
    let view = app.catalog.replace(&caller, body.0, expected, &app.clock).await?;
    let mut response = Json(crate::app::catalog::CatalogSummary::of(&view)).into_response();
    response.headers_mut().insert(header::ETAG, etag(view.version));
    Ok(response)
}

async fn decide<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    Ok(Json(app.decide(&caller, &id, req).await?).into_response())
}

async fn reschedule<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
    JsonBody(req): JsonBody<RescheduleRequest>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    Ok(Json(app.reschedule(&caller, &id, req).await?).into_response())
}

async fn checklist_item<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
    PathText((_, item)): PathText<(String, String)>,
    JsonBody(req): JsonBody<NoteRequest>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    Ok(Json(app.complete_item(&caller, &id, &item, req).await?).into_response())
}

async fn review<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    ChangeIdPath(id): ChangeIdPath,
    JsonBody(req): JsonBody<NoteRequest>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    Ok(Json(app.review(&caller, &id, req).await?).into_response())
}

async fn list_freezes<S, C>(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let freezes = app.governance().freezes(&caller).await?;
    let now = app.clock.now();
    let windows: Vec<serde_json::Value> =
        freezes.windows.iter().map(|w| json!({"window": w, "next_occurrence": w.next_occurrence(now)})).collect();
    Ok(Json(json!({ "freezes": windows })).into_response())
}

async fn put_freeze<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    JsonBody(window): JsonBody<crate::domain::freeze::FreezeWindow>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let window = app.governance().put_freeze(&caller, window).await?;
    Ok((StatusCode::CREATED, Json(window)).into_response())
}

async fn delete_freeze<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    PathText(id): PathText<String>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    app.governance().delete_freeze(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_incidents<S, C>(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    Ok(Json(app.governance().incidents(&caller).await?).into_response())
}

async fn declare_incident<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    JsonBody(incident): JsonBody<crate::app::governance::DeclareIncident>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    let incident = app.governance().declare_incident(&caller, incident).await?;
    Ok((StatusCode::CREATED, Json(incident)).into_response())
}

async fn resolve_incident<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    PathText(id): PathText<String>,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    app.governance().resolve_incident(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pending_reviews<S, C>(
    State(app): AppState<S, C>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError>
where
    S: ChangeStore,
    C: Clock,
{
    const KNOWN: [&str; 2] = ["limit", "cursor"];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown query parameter; known: {}", KNOWN.join(", ")),
        ));
    }
    let limit = parse_limit(&params)?;
    let page = app.pending_reviews(&caller, limit, params.get("cursor").cloned()).await?;
    Ok(Json(ListResponse { changes: &page.items, next_cursor: page.next.as_deref() }).into_response())
}

fn parse_limit(params: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    params
        .get("limit")
        .map(|raw| {
            raw.parse::<usize>()
                .map_err(|_| ApiError::invalid("limit", format!("limit must be a whole number; got {raw:?}")))
        })
        .transpose()
}
