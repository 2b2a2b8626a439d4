//! The HTTP API: one axum router, served by the api Lambda (through
//! lambda_http) and by `changehub serve`. The OpenAPI document
//! `openapi.yaml` at the repository root describes exactly these routes.

mod activity;
mod audit;
pub mod bearer;
mod catalog;
mod changes;
pub mod error;
pub mod extract;
mod findings;
pub mod gates;
mod governance;
mod incidents;
mod problems;
pub mod query;
mod reports;
mod suppressions;
pub mod webhooks;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use std::marker::PhantomData;
use std::sync::Arc;
use tracing::Instrument;

use crate::app::Changes;
use crate::app::changes::ChangeStore;
use crate::ports::{ActivityLog, Clock, FindingStore, ProblemStore};
use bearer::Authenticator;
pub use error::ApiError;
pub use extract::{JsonBody, MAX_BODY_BYTES};

/// Every route the router serves: the OpenAPI agreement test checks this list
/// against `openapi.yaml` and against the router itself.
pub const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/"),
    (Method::GET, "/openapi.yaml"),
    (Method::GET, "/health"),
    (Method::POST, "/changes"),
    (Method::GET, "/changes"),
    (Method::GET, "/changes/{id}"),
    (Method::PATCH, "/changes/{id}"),
    (Method::POST, "/changes/{id}/transitions"),
    (Method::GET, "/changes/{id}/audit"),
    (Method::POST, "/changes/{id}/decisions"),
    (Method::POST, "/changes/{id}/reschedule"),
    (Method::POST, "/changes/{id}/checklist/{item}"),
    (Method::POST, "/changes/{id}/review"),
    (Method::POST, "/changes/{id}/clear-suspect"),
    (Method::POST, "/changes/{id}/rework"),
    (Method::GET, "/me"),
    (Method::GET, "/catalog"),
    (Method::PUT, "/catalog"),
    (Method::GET, "/freezes"),
    (Method::POST, "/freezes"),
    (Method::DELETE, "/freezes/{id}"),
    (Method::GET, "/delegations"),
    (Method::POST, "/delegations"),
    (Method::DELETE, "/delegations/{id}"),
    (Method::GET, "/incidents"),
    (Method::POST, "/incidents"),
    (Method::GET, "/incidents/{id}"),
    (Method::POST, "/incidents/{id}/resolve"),
    (Method::POST, "/incidents/{id}/unrelate"),
    (Method::GET, "/reports/pending-reviews"),
    (Method::GET, "/reports/approval-sla"),
    (Method::GET, "/activity"),
    (Method::GET, "/audit/governance"),
    (Method::GET, "/audit/security"),
    (Method::GET, "/problems"),
    (Method::GET, "/problems/{id}"),
    (Method::POST, "/problems/{id}/fix"),
    (Method::POST, "/problems/{id}/close"),
    (Method::POST, "/gates/deployments"),
    (Method::GET, "/findings"),
    (Method::GET, "/findings/{id}"),
    (Method::POST, "/findings/{id}/acknowledge"),
    (Method::POST, "/findings/{id}/link"),
    (Method::POST, "/findings/{id}/dismiss"),
    (Method::GET, "/changes/{id}/evidence"),
    (Method::GET, "/suppressions"),
    (Method::POST, "/suppressions"),
    (Method::DELETE, "/suppressions/{id}"),
];

/// The API as the api Lambda serves it.
pub fn router<S, C>(changes: Arc<Changes<S, C>>, auth: Authenticator) -> Router
where
    S: ChangeStore + ActivityLog + ProblemStore + FindingStore,
    C: Clock + 'static,
{
    finish(change_routes(changes, auth))
}

/// The change API's routes, without the JSON fallbacks and request context.
/// Every route but [`OPEN_PATHS`] needs a bearer token.
pub fn change_routes<S, C>(changes: Arc<Changes<S, C>>, auth: Authenticator) -> Router
where
    S: ChangeStore + ActivityLog + ProblemStore + FindingStore,
    C: Clock + 'static,
{
    // Each resource adds its routes to the one router: merging a router per
    // resource inserted every route twice and dropped the copies, 0.4M of
    // the api function's 2.4M instructions of init (ARCHITECTURE, "Cold start").
    let resources: [AddRoutes<S, C>; 12] = [
        Api::change_routes,
        Api::catalog_routes,
        Api::freeze_routes,
        Api::delegation_routes,
        Api::incident_routes,
        Api::report_routes,
        Api::activity_routes,
        Api::audit_routes,
        Api::problem_routes,
        Api::gate_routes,
        Api::finding_routes,
        Api::suppression_routes,
    ];
    resources
        .into_iter()
        .fold(Router::new(), |routes, add| add(routes))
        // Inside authentication, so that a refusal is recorded with its caller.
        .route_layer(middleware::from_fn_with_state(changes.clone(), Api::record_refusals))
        .route_layer(middleware::from_fn_with_state(Arc::new(auth), bearer::authenticate))
        .route("/", get(index))
        .route("/openapi.yaml", get(openapi))
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
    // `user` is recorded by `bearer::authenticate` once the token is verified.
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

/// What `GET /health` reports besides liveness, under `name`: `changehub
/// serve` adds its chat webhooks' backlog (`webhooks`) and its dead letters
/// (`dead_letters`, see `local`); the api function adds nothing. Added to
/// the router as an `Extension` of [`HealthReports`].
#[derive(Clone)]
pub struct HealthReport {
    pub name: &'static str,
    pub report: Arc<dyn Fn() -> BoxFuture<serde_json::Value> + Send + Sync>,
}

/// The [`HealthReport`]s `GET /health` adds, in order.
#[derive(Clone)]
pub struct HealthReports(pub Vec<HealthReport>);

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// `GET /health`: up, and what the [`HealthReports`] given say.
async fn health(extra: Option<Extension<HealthReports>>) -> Json<serde_json::Value> {
    let mut health = json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")});
    for extra in extra.map(|Extension(reports)| reports.0).unwrap_or_default() {
        health[extra.name] = (extra.report)().await;
    }
    Json(health)
}

/// The change API's paths that need no token: what the API is, its document, its health.
pub const OPEN_PATHS: [&str; 3] = ["/", "/openapi.yaml", "/health"];

/// The OpenAPI document of this API, as committed beside the code.
pub const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

/// `GET /`: what answers here, and where to read on.
async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "changehub",
        "version": env!("CARGO_PKG_VERSION"),
        "links": {"health": "/health", "openapi": "/openapi.yaml"},
    }))
}

/// `GET /openapi.yaml`: the document, as YAML.
async fn openapi() -> ([(HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

/// The change API's handlers, one `impl` block per resource file (`changes`,
/// `catalog`, `governance`, `incidents`, `reports`, `activity`, `audit`), generic over the store
/// and the clock once. Never built: the routers' state is the `Changes` service.
pub(crate) struct Api<S, C>(PhantomData<fn() -> (S, C)>);

type AppState<S, C> = State<Arc<Changes<S, C>>>;

/// The change API's routes before their state is given (`with_state`).
type Routes<S, C> = Router<Arc<Changes<S, C>>>;

/// One resource's routes, added to the router being built.
type AddRoutes<S, C> = fn(Routes<S, C>) -> Routes<S, C>;

/// A page of changes, as `GET /changes` and the reports answer it.
#[derive(serde::Serialize)]
struct ListResponse<'a> {
    changes: &'a [crate::domain::Change],
    next_cursor: Option<&'a str>,
}
