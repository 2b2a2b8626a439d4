//! Calling a router in-process, as the Lambda runtime and the local server do.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An answer: status, JSON body (`Null` if empty or not JSON), and headers.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
}

/// Sends a request; `body` is sent as `application/json` when given.
pub async fn call(router: &Router, method: &str, path: &str, body: Option<Value>) -> Answer {
    send(router, json_request(Request::builder().method(method).uri(path), body)).await
}

fn json_request(mut req: axum::http::request::Builder, body: Option<Value>) -> Request<Body> {
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    req.body(body).expect("request")
}

/// Sends a fully built request.
pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body, headers }
}

/// Sends a request with `token` as its bearer token; `body` as JSON when given.
pub async fn call_as(router: &Router, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let req = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {token}"));
    send(router, json_request(req, body)).await
}

/// A signing key for one test's hub, and the tokens it signs.
#[derive(Clone)]
pub struct Tokens(pub std::sync::Arc<changehub::http::bearer::LocalKey>);

impl Tokens {
    pub fn new() -> Self {
        let secret = [uuid::Uuid::now_v7().into_bytes(), uuid::Uuid::now_v7().into_bytes()].concat();
        Tokens(std::sync::Arc::new(changehub::http::bearer::LocalKey::from_secret(secret)))
    }

    /// A token for `caller`, valid for an hour.
    pub fn of(&self, caller: &changehub::app::Caller) -> String {
        self.0
            .mint(&caller.user, &caller.groups, &caller.tenant, chrono::Utc::now(), chrono::Duration::hours(1))
            .expect("mint")
    }

    /// A token as `changehub replay` mints it: the ingest role in `tenant`, valid for an hour.
    pub fn ingest(&self, tenant: &str) -> String {
        let tenant = changehub::domain::TenantId::parse(tenant).expect("tenant");
        self.0.mint_ingest("replay", &tenant, chrono::Utc::now(), chrono::Duration::hours(1)).expect("mint")
    }

    pub fn authenticator(&self) -> changehub::http::bearer::Authenticator {
        changehub::http::bearer::Authenticator::Local(self.0.clone(), Default::default())
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}
