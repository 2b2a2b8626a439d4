//! `/catalog` and `/me`: the tenant's catalog, and what it grants the caller.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::extract::CatalogBody;
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::catalog::CatalogSummary;
use crate::app::changes::ChangeStore;
use crate::domain::catalog::Role;
use crate::ports::Clock;

#[derive(serde::Serialize)]
struct MeResponse<'a> {
    user: &'a str,
    tenant: &'a str,
    groups: &'a [String],
    roles: Vec<Role>,
}

impl<S: ChangeStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn catalog_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes.route("/me", get(Self::me)).route("/catalog", get(Self::get_catalog).put(Self::put_catalog))
    }

    /// Who the token says the caller is, and what their groups grant: the first thing to check on a 403.
    async fn me(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        let roles = app.roles(&caller).await?.into_iter().collect();
        let body = MeResponse { user: &caller.user, tenant: caller.tenant.as_str(), groups: &caller.groups, roles };
        Ok(Json(body).into_response())
    }

    async fn get_catalog(State(app): AppState<S, C>, caller: Caller) -> Result<Response, ApiError> {
        let view = app.catalog.read(&caller).await?;
        let mut response = Json(json!({"version": view.version, "catalog": view.catalog})).into_response();
        response.headers_mut().insert(header::ETAG, etag(view.version));
        Ok(response)
    }

    async fn put_catalog(
        State(app): AppState<S, C>,
        caller: Caller,
        headers: HeaderMap,
        body: CatalogBody,
    ) -> Result<Response, ApiError> {
        let expected = if_match(&headers)?;
        let view = app.catalog.replace(&caller, body.0, expected, &app.clock).await?;
        let mut response = Json(CatalogSummary::of(&view)).into_response();
        response.headers_mut().insert(header::ETAG, etag(view.version));
        Ok(response)
    }
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header names: `"3"`, `3` or `W/"3"`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
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
